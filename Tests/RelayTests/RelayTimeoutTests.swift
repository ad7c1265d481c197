import Logging
import MothershipTestSupport
import NIOCore
import NIOPosix
import ShipManifest
import Testing

@testable import Relay

/// The relay's timeouts of SPEC §4 (header read 30 s, idle keep-alive 60 s, first byte 60 s), with the
/// same code and real sockets but limits of a fraction of a second: too long to wait for through the
/// binary, which has no knob for them.
@Suite("Relay timeouts", .timeLimit(.minutes(1)))
struct RelayTimeoutTests {
    static let limit = TimeAmount.milliseconds(300)

    /// A relay on a free port: `/silent…` goes to a ship that accepts and never answers, anything
    /// else to a ship that is not ready (answered 503 by the relay itself).
    struct Harness {
        let relay: RelayServer
        let relayPort: Int
        let silentShip: any Channel

        static func start() async throws -> Harness {
            let relayPort = ProcessInspector.freePort()
            let silentPort = ProcessInspector.freePort()
            let downPort = ProcessInspector.freePort()
            let silentShip = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: silentPort).get()
            let text = """
                [mothership.bind]
                http = "127.0.0.1:\(relayPort)"

                [[fleet.web]]
                name = "silent"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(silentPort)"
                routes = [{ bind = "http", pattern = "/silent.*" }]

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
            var limits = RelayLimits()
            limits.headerReadTimeout = RelayTimeoutTests.limit
            limits.idleTimeout = RelayTimeoutTests.limit
            limits.firstByteTimeout = RelayTimeoutTests.limit
            let relay = RelayServer(
                manifest: manifest, directory: directory, manifestDirectory: "/", limits: limits,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            try await relay.start()
            return Harness(relay: relay, relayPort: relayPort, silentShip: silentShip)
        }

        func stop() async {
            await relay.drain()
            try? await silentShip.close()
        }

        /// Connects, sends `text`, and returns what the relay sent until it closed the connection,
        /// with how long that took.
        func untilClosed(after text: String) async throws -> (received: String, seconds: Double) {
            let collector = Collector()
            let clock = ContinuousClock()
            let started = clock.now
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: relayPort)
                // Sent on the event loop as soon as connected: a busy test process must not delay
                // the bytes past the relay's (short) header timeout.
                .flatMap { channel in channel.writeAndFlush(ByteBuffer(string: text)).map { channel } }
                .get()
            try await channel.closeFuture.get()
            let elapsed = started.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return (collector.received, seconds)
        }
    }

    /// Everything one connection received.
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private(set) var received = ""
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
        }
    }

    @Test func aClientThatNeverFinishesItsHeadIsClosedAfterTheHeaderReadTimeout() async throws {
        let harness = try await Harness.start()
        let (received, seconds) = try await harness.untilClosed(after: "GET / HTTP/1.1\r\nHost: a\r\nX-Slow")
        await harness.stop()
        #expect(received.isEmpty, "a half-sent head gets no answer: \(received)")
        #expect(seconds >= 0.25 && seconds < 10, "closed after \(seconds) s")
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        let harness = try await Harness.start()
        let (received, seconds) = try await harness.untilClosed(after: "GET /any HTTP/1.1\r\nHost: a\r\n\r\n")
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(received)")
        #expect(!received.contains("Connection: close"), "the answer kept the connection: \(received)")
        #expect(seconds >= 0.25 && seconds < 10, "closed after \(seconds) s")
    }

    @Test func aShipThatNeverAnswersGets504AfterTheFirstByteTimeout() async throws {
        let harness = try await Harness.start()
        let (received, seconds) = try await harness.untilClosed(
            after: "GET /silent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        await harness.stop()
        #expect(received.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"), "\(received)")
        #expect(received.contains("no response within"), "\(received)")
        #expect(seconds >= 0.25 && seconds < 10, "answered after \(seconds) s")
    }
}
