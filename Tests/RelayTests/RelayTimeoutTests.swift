import Logging
import MothershipTestSupport
import NIOCore
import NIOPosix
import ShipManifest
import Testing

@testable import Relay

/// The relay's timeouts of SPEC §4 (header read 30 s, idle keep-alive 60 s, first byte 60 s, the
/// drain's 10 s), with the same code and real sockets but limits of a fraction of a second: too long
/// to wait for through the binary, which has no knob for them.
@Suite("Relay timeouts", .timeLimit(.minutes(1)))
struct RelayTimeoutTests {
    static let limit = TimeAmount.milliseconds(300)
    /// For a timeout that a first request must not meet before it is answered.
    static let answeredLimit = TimeAmount.seconds(3)

    /// A relay on a free port: `/silent…` goes to a ship that accepts and never answers, `/once…`
    /// to one that answers the first request on a connection and no other, `/ws…` to one that
    /// switches protocols and echoes, anything else to a ship that is not ready (answered 503 by the
    /// relay itself).
    struct Harness {
        let relay: RelayServer
        let relayPort: Int
        let silentShip: any Channel
        let onceShip: any Channel
        let echoShip: any Channel

        /// Only the timeout a test is about is short: a loaded machine that delays the client's
        /// first write must not trip the header-read timeout of a test that is about another.
        static func start(
            headerRead: TimeAmount = .seconds(30), idle: TimeAmount = .seconds(30),
            firstByte: TimeAmount = .seconds(30), drain: TimeAmount = .seconds(10)
        ) async throws -> Harness {
            let relayPort = ProcessInspector.freePort()
            let silentPort = ProcessInspector.freePort()
            let oncePort = ProcessInspector.freePort()
            let echoPort = ProcessInspector.freePort()
            let downPort = ProcessInspector.freePort()
            let silentShip = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: silentPort).get()
            let onceShip = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AnswersOnce())
                    }
                }
                .bind(host: "127.0.0.1", port: oncePort).get()
            let echoShip = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SwitchingEcho())
                    }
                }
                .bind(host: "127.0.0.1", port: echoPort).get()
            let text = """
                [mothership.bind]
                http = "127.0.0.1:\(relayPort)"

                [[fleet.web]]
                name = "silent"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(silentPort)"
                routes = [{ bind = "http", pattern = "/silent.*" }]

                [[fleet.web]]
                name = "once"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(oncePort)"
                routes = [{ bind = "http", pattern = "/once.*" }]

                [[fleet.web]]
                name = "echo"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(echoPort)"
                routes = [{ bind = "http", pattern = "/ws.*" }]

                [[fleet.web]]
                name = "down"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(downPort)"
                routes = [{ bind = "http", pattern = "/.*" }]
                """
            let loaded = ManifestLoader.load(text: text)
            let manifest = try #require(loaded.manifest, "\(loaded.diagnostics)")
            let directory = UpstreamDirectory(ships: manifest.ships.map(\.name))
            directory.set(ship: "silent", ready: true)
            directory.set(ship: "once", ready: true)
            directory.set(ship: "echo", ready: true)
            var limits = RelayLimits()
            limits.headerReadTimeout = headerRead
            limits.idleTimeout = idle
            limits.firstByteTimeout = firstByte
            limits.drainTimeout = drain
            let relay = RelayServer(
                manifest: manifest, directory: directory, manifestDirectory: "/", limits: limits,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            try await relay.start()
            return Harness(
                relay: relay, relayPort: relayPort, silentShip: silentShip, onceShip: onceShip,
                echoShip: echoShip)
        }

        func stop() async {
            await relay.drain()
            try? await silentShip.close()
            try? await onceShip.close()
            try? await echoShip.close()
        }

        /// Connects, sends `text` as soon as connected, and returns what the relay sent until it
        /// closed the connection, with how long that took.
        func untilClosed(after text: String, followUp: (after: String, text: String)? = nil) async throws -> (
            received: String, seconds: Double
        ) {
            let collector = Collector(greeting: text, followUp: followUp)
            let clock = ContinuousClock()
            let started = clock.now
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: relayPort).get()
            try await channel.closeFuture.get()
            let elapsed = started.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return (collector.received, seconds)
        }
    }

    /// A ship that answers the first request head on a connection and ignores everything after it.
    final class AnswersOnce: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var head = ""
        private var answered = false
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            head += String(buffer: unwrapInboundIn(data))
            guard head.contains("\r\n\r\n") else { return }
            answered = true
            context.writeAndFlush(
                wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
                promise: nil)
        }
    }

    /// A ship that answers the first request head with 101 and then echoes every byte.
    final class SwitchingEcho: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var head = ""
        private var switched = false
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            if switched {
                context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
                return
            }
            head += String(buffer: bytes)
            guard let end = head.range(of: "\r\n\r\n") else { return }
            switched = true
            let answer =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            context.writeAndFlush(
                wrapOutboundOut(ByteBuffer(string: answer + head[end.upperBound...])), promise: nil)
        }
    }

    /// Sends its greeting on connect (on the event loop, no hop) and keeps everything received;
    /// sends `followUp`, if any, once what it received ends with `after`.
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let greeting: String
        private var followUp: (after: String, text: String)?
        private(set) var received = ""
        init(greeting: String, followUp: (after: String, text: String)? = nil) {
            self.greeting = greeting
            self.followUp = followUp
        }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: greeting)), promise: nil)
            context.fireChannelActive()
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            if let followUp, received.hasSuffix(followUp.after) {
                self.followUp = nil
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: followUp.text)), promise: nil)
            }
        }
    }

    @Test func aClientThatNeverFinishesItsHeadIsClosedAfterTheHeaderReadTimeout() async throws {
        let harness = try await Harness.start(headerRead: Self.limit)
        let (received, seconds) = try await harness.untilClosed(after: "GET / HTTP/1.1\r\nHost: a\r\nX-Slow")
        await harness.stop()
        #expect(received.isEmpty, "a half-sent head gets no answer: \(received)")
        #expect(seconds >= 0.25 && seconds < 10, "closed after \(seconds) s")
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        let harness = try await Harness.start(idle: Self.limit)
        let (received, seconds) = try await harness.untilClosed(after: "GET /any HTTP/1.1\r\nHost: a\r\n\r\n")
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(received)")
        #expect(!received.contains("Connection: close"), "the answer kept the connection: \(received)")
        #expect(seconds >= 0.25 && seconds < 10, "closed after \(seconds) s")
    }

    /// After a proxied answer (the connection kept alive with its ship connection pooled) the same
    /// idle timeout holds.
    @Test func anIdleConnectionAfterAProxiedAnswerIsClosedAfterTheIdleTimeout() async throws {
        let harness = try await Harness.start(idle: Self.limit)
        let (received, seconds) = try await harness.untilClosed(
            after: "GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 200 OK\r\n") && received.hasSuffix("\r\n\r\nok"), "\(received)")
        #expect(seconds >= 0.25 && seconds < 10, "closed after \(seconds) s")
    }

    @Test func aShipThatNeverAnswersGets504AfterTheFirstByteTimeout() async throws {
        let harness = try await Harness.start(firstByte: Self.limit)
        let (received, seconds) = try await harness.untilClosed(
            after: "GET /silent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"), "\(received)")
        #expect(received.contains("no response within"), "\(received)")
        #expect(seconds >= 0.25 && seconds < 10, "answered after \(seconds) s")
    }

    /// The usual case: the second request on a client connection goes over the ship connection the
    /// first one left in the pool, and its first-byte timeout counts from the request too.
    @Test func aPooledShipConnectionThatGoesSilentGets504AfterTheFirstByteTimeout() async throws {
        // The first request must be answered within the same limit: long enough for a loaded
        // machine (300 ms was not, with the whole suite running on two cores).
        let harness = try await Harness.start(firstByte: Self.answeredLimit)
        let (received, seconds) = try await harness.untilClosed(
            after:
                "GET /once HTTP/1.1\r\nHost: a\r\n\r\nGET /once-more HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        await harness.stop()
        // The first answer, then the 504 for the second (a new ship connection would have answered).
        #expect(received.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(received)")
        #expect(received.contains("\r\n\r\nokHTTP/1.1 504 Gateway Timeout\r\n"), "\(received)")
        #expect(seconds >= 2.9 && seconds < 20, "answered after \(seconds) s")
    }

    /// The same with the second request sent once the first is answered (over the pooled ship
    /// connection, which goes silent).
    @Test func aPooledShipConnectionThatGoesSilentAfterAnAnswerGets504AfterTheFirstByteTimeout() async throws
    {
        let harness = try await Harness.start(firstByte: Self.answeredLimit)
        let (received, seconds) = try await harness.untilClosed(
            after: "GET /once HTTP/1.1\r\nHost: a\r\n\r\n",
            followUp: (
                after: "\r\n\r\nok", text: "GET /once-more HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            ))
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(received)")
        #expect(received.contains("\r\n\r\nokHTTP/1.1 504 Gateway Timeout\r\n"), "\(received)")
        #expect(received.contains("no response within"), "\(received)")
        #expect(seconds >= 2.9 && seconds < 20, "answered after \(seconds) s")
    }

    /// Draining on shutdown (SPEC §4) is bounded for tunnels too: an open WebSocket keeps the relay
    /// for the drain timeout, then closes.
    @Test func anOpenTunnelIsClosedWhenTheDrainTimeoutEnds() async throws {
        let harness = try await Harness.start(drain: Self.limit)
        let collector = Collector(
            greeting: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: harness.relayPort).get()
        let received = { try await channel.eventLoop.submit { collector.received }.get() }
        #expect(try await Self.eventually { try await received().hasPrefix("HTTP/1.1 101 ") })
        try await channel.writeAndFlush(ByteBuffer(string: "ping\n"))
        #expect(try await Self.eventually { try await received().hasSuffix("\r\n\r\nping\n") })

        let clock = ContinuousClock()
        let started = clock.now
        await harness.stop()
        let elapsed = started.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(10), "drained in \(elapsed)")
        #expect(try await Self.eventually { !channel.isActive }, "the tunnel's client is closed")
    }

    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<250 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }
}
