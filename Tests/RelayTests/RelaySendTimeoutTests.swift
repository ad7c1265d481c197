import Logging
import MothershipTestSupport
import NIOCore
import NIOPosix
import ShipManifest
import Synchronization
import Testing

@testable import Relay

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §4's send timeout (60 s, here a fraction of a second): a client that takes nothing of a
/// response is reset and its ship connection freed, on a connection's first request and on a
/// kept-alive one.
/// Linux's `POLLRDHUP` (not imported into Swift).
private let pollReadHangUp: Int32 = 0x2000

@Suite("Relay send timeout", .timeLimit(.minutes(1)))
struct RelaySendTimeoutTests {
    static let limit = TimeAmount.milliseconds(300)

    /// A relay in front of one ship that answers `GET /big?n=N` with N bytes, on every request.
    struct Harness {
        let relay: RelayServer
        let relayPort: Int
        let ship: any Channel
        let shipConnections: ShipConnections

        static func start(send: TimeAmount = .seconds(30)) async throws -> Harness {
            let relayPort = ProcessInspector.freePort()
            let shipPort = ProcessInspector.freePort()
            let connections = ShipConnections()
            let ship = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SizedAnswers(connections))
                    }
                }
                .bind(host: "127.0.0.1", port: shipPort).get()
            let text = """
                [mothership.bind]
                http = "127.0.0.1:\(relayPort)"

                [[fleet.web]]
                name = "big"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(shipPort)"
                routes = [{ bind = "http", pattern = "/.*" }]
                """
            let loaded = ManifestLoader.load(text: text)
            let manifest = try #require(loaded.manifest, "\(loaded.diagnostics)")
            let directory = UpstreamDirectory(ships: manifest.ships.map(\.name))
            directory.set(ship: "big", ready: true)
            var limits = RelayLimits()
            limits.sendTimeout = send
            let relay = RelayServer(
                manifest: manifest, directory: directory, manifestDirectory: "/", limits: limits,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            try await relay.start()
            return Harness(relay: relay, relayPort: relayPort, ship: ship, shipConnections: connections)
        }

        func stop() async {
            await relay.drain()
            try? await ship.close()
        }
    }

    /// The ship's open connections (its side), counted as they open and close.
    final class ShipConnections: Sendable {
        private let open = Mutex(0)
        func opened() { open.withLock { $0 += 1 } }
        func closed() { open.withLock { $0 -= 1 } }
        var count: Int { open.withLock { $0 } }
    }

    /// Answers each request head (`/big?n=N`) with N bytes; keeps the connection.
    final class SizedAnswers: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var head = ""
        private let connections: ShipConnections
        init(_ connections: ShipConnections) { self.connections = connections }
        func channelActive(context: ChannelHandlerContext) {
            connections.opened()
            context.fireChannelActive()
        }
        func channelInactive(context: ChannelHandlerContext) {
            connections.closed()
            context.fireChannelInactive()
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            head += String(buffer: unwrapInboundIn(data))
            while let end = head.range(of: "\r\n\r\n") {
                let line = head[..<end.lowerBound].split(separator: "\r\n").first ?? ""
                head = String(head[end.upperBound...])
                let count = Int(line.split(separator: "n=").last?.split(separator: " ").first ?? "") ?? 2
                var answer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: \(count)\r\n\r\n")
                answer.writeRepeatingByte(UInt8(ascii: "x"), count: count)
                context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
            }
        }
    }

    /// A blocking client socket with a small receive buffer (so that the relay's sends stall soon).
    final class StallingClient {
        let fd: CInt

        init(port: Int, receiveBuffer: CInt? = 4096) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            try #require(connected == 0, "connect: \(errno)")
        }

        deinit { close(fd) }

        func send(_ text: String) {
            _ = text.withCString { Glibc.send(fd, $0, strlen($0), 0) }
        }

        /// Reads until `count` bytes of a response arrived (a small answer, read whole).
        func read(bytes count: Int) -> Int {
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 65536)
            while total < count {
                let got = recv(fd, &buffer, buffer.count, 0)
                if got <= 0 { break }
                total += got
            }
            return total
        }

        /// Seconds until the relay resets or closes the connection (polled without reading, so the
        /// client takes nothing meanwhile), or nil within `deadline` seconds.
        func secondsUntilClosed(deadline: Double) -> Double? {
            let clock = ContinuousClock()
            let start = clock.now
            while true {
                var entry = pollfd(fd: fd, events: Int16(pollReadHangUp), revents: 0)
                _ = poll(&entry, 1, 50)
                let elapsed = start.duration(to: clock.now)
                let seconds =
                    Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if entry.revents & Int16(POLLHUP | POLLERR | pollReadHangUp) != 0 { return seconds }
                if seconds > deadline { return nil }
            }
        }
    }

    /// On a connection's first request and on a kept-alive one (its second request).
    @Test(arguments: [false, true])
    func aClientThatTakesNothingOfItsResponseIsResetAfterTheSendTimeout(keptAlive: Bool) async throws {
        let harness = try await Harness.start(send: Self.limit)
        let client = try StallingClient(port: harness.relayPort)
        if keptAlive {
            client.send("GET /big?n=10 HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(client.read(bytes: 48) >= 48)  // the whole small answer
        }
        client.send("GET /big?n=67108864 HTTP/1.1\r\nHost: a\r\n\r\n")
        let seconds = client.secondsUntilClosed(deadline: 20)
        let shipClosed = try await Self.eventually { harness.shipConnections.count == 0 }
        await harness.stop()
        let closedAfter = try #require(seconds, "the relay never closed a client that took nothing")
        #expect(closedAfter >= 0.25, "closed after \(closedAfter) s, before the send timeout")
        #expect(shipClosed, "the ship's connection was freed with the client")
    }

    /// The timeout is for a client that takes nothing for its whole length, not a sum of pauses: a
    /// client that stops reading for a while, again and again, each time for less than the timeout,
    /// gets all of its response. (Pauses of 500 ms against a 3 s timeout, for 8 s.)
    @Test func aClientThatPausesShorterThanTheTimeoutIsNeverCutOff() async throws {
        let harness = try await Harness.start(send: .seconds(3))
        let client = try StallingClient(port: harness.relayPort, receiveBuffer: nil)
        let size = 64 << 20
        client.send("GET /big?n=\(size) HTTP/1.1\r\nHost: a\r\n\r\n")
        var total = 0
        var ended = false
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let clock = ContinuousClock()
        let start = clock.now
        // The pauses as they really were: on a loaded machine a 500 ms sleep can last longer.
        var lastRead = clock.now
        var longestPause = Duration.zero
        reading: while start.duration(to: clock.now) < .seconds(8) {
            try await Task.sleep(for: .milliseconds(500))
            longestPause = max(longestPause, lastRead.duration(to: clock.now))
            // Up to 2 MiB each time: the response outlasts the test, so the relay stalls in every pause.
            var taken = 0
            while taken < 2 << 20 {
                let got = recv(client.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if got == 0 || (got < 0 && errno != EAGAIN) {
                    ended = true
                    break reading
                }
                if got < 0 { break }
                taken += got
            }
            total += taken
            lastRead = clock.now
        }
        await harness.stop()
        // Cut off only if some pause really reached the timeout (the machine, not the relay).
        #expect(
            !ended || longestPause >= .seconds(3),
            "cut off after \(total) bytes, longest pause \(longestPause)")
        #expect(total > 0 && total < size)
    }

    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }
}
