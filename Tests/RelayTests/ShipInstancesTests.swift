import Foundation
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

/// A ship's instance set changing under load, through a relay on its worker threads and real
/// sockets: four kept-alive clients send requests back to back while the set moves between one
/// instance, two, the other one and one that is not ready, a few hundred times. Not one request
/// fails, both instances serve, and once an instance is retired it gets nothing more.
@Suite("Ship instances", .timeLimit(.minutes(1)))
struct ShipInstancesTests {
    @Test func theInstanceSetChangesUnderLoadWithoutAFailedRequest() async throws {
        let one = try await Backend.start(name: "1")
        let two = try await Backend.start(name: "2")
        let relayPort = ProcessInspector.freePort()
        let loaded = ManifestLoader.load(
            text: """
                [mothership.bind]
                http = "127.0.0.1:\(relayPort)"

                [[fleet.web]]
                name = "app"
                command = "sleep"
                bind = "tcp://127.0.0.1:\(one.port)"
                routes = [{ bind = "http", pattern = "/.*" }]
                """)
        let manifest = try #require(loaded.manifest, "\(loaded.diagnostics)")
        let directory = UpstreamDirectory(ships: ["app"])
        directory.set(ship: "app", ready: true)
        let relay = RelayServer(
            manifest: manifest, directory: directory, manifestDirectory: "/",
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await relay.start()

        let first = ShipInstance(id: 1, address: .tcp(host: "127.0.0.1", port: one.port))
        let second = ShipInstance(id: 2, address: .tcp(host: "127.0.0.1", port: two.port))
        let notReady = ShipInstance(id: 2, address: .tcp(host: "127.0.0.1", port: two.port), ready: false)
        // Always at least one ready instance: no request may be refused.
        let sets: [[ShipInstance]] = [
            [first], [first, second], [second], [second, first], [first, notReady],
        ]
        // The clients and the changes each on a thread of their own (blocking sockets and sleeps
        // must not hold the tasks' shared threads).
        let done = Atomic<Bool>(false)
        async let changes = Self.onThread { () -> Int in
            var index = 0
            while !done.load(ordering: .relaxed) {
                index += 1
                directory.set(ship: "app", instances: sets[index % sets.count])
                usleep(2_000)
            }
            return index
        }
        let results = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await Self.onThread {
                        let client = try BlockingClient(port: relayPort)
                        defer { client.close() }
                        return try (0..<400).map { _ in try client.get() }
                    }
                }
            }
            var all: [String] = []
            for try await answers in group { all += answers }
            return all
        }
        done.store(true, ordering: .relaxed)
        let changed = try await changes
        #expect(changed > 20, "the set changed \(changed) times during the load")
        #expect(results.count == 1600)
        let failed = results.filter { !$0.hasPrefix("200 ") }
        #expect(failed.isEmpty, "\(failed.count) failed: \(failed.prefix(3))")
        #expect(results.contains("200 1") && results.contains("200 2"), "both instances served")

        // Instance 1 retired: it gets nothing more, on a kept-alive connection or a new one.
        directory.set(ship: "app", instances: [second])
        let before = one.requests
        let client = try BlockingClient(port: relayPort)
        for _ in 0..<50 { #expect(try client.get() == "200 2") }
        client.close()
        for _ in 0..<10 {
            let fresh = try BlockingClient(port: relayPort)
            #expect(try fresh.get() == "200 2")
            fresh.close()
        }
        #expect(one.requests == before, "a retired instance got \(one.requests - before) requests")

        await relay.drain()
        try await one.channel.close()
        try await two.channel.close()
    }

    /// Runs `body` on a thread of its own.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }

    /// A backend that answers every request head with 200 and its name, keeping the connection.
    final class Backend: Sendable {
        let channel: any Channel
        let port: Int
        private let counter: Counter

        final class Counter: Sendable {
            let value = Atomic<Int>(0)
        }

        var requests: Int { counter.value.load(ordering: .relaxed) }

        private init(channel: any Channel, port: Int, counter: Counter) {
            self.channel = channel
            self.port = port
            self.counter = counter
        }

        static func start(name: String) async throws -> Backend {
            let port = ProcessInspector.freePort()
            let counter = Counter()
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Answers(name: name, counter: counter))
                    }
                }
                .bind(host: "127.0.0.1", port: port).get()
            return Backend(channel: channel, port: port, counter: counter)
        }

        final class Answers: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            typealias OutboundOut = ByteBuffer
            let name: String
            let counter: Counter
            private var pending = ""

            init(name: String, counter: Counter) {
                self.name = name
                self.counter = counter
            }

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                pending += String(buffer: unwrapInboundIn(data))
                while let end = pending.range(of: "\r\n\r\n") {
                    pending.removeSubrange(..<end.upperBound)
                    counter.value.add(1, ordering: .relaxed)
                    context.writeAndFlush(
                        wrapOutboundOut(
                            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n\(name)")),
                        promise: nil)
                }
            }
        }
    }

    /// One kept-alive connection, one request at a time; each answer as "STATUS BODY".
    final class BlockingClient {
        let fd: CInt

        init(port: Int) throws {
            fd = try WorkerTunnelTests.connect(port: port)
        }

        func get() throws -> String {
            try WorkerTunnelTests.writeAll(fd, Array("GET /x HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
            let head = try WorkerTunnelTests.readHead(fd)
            guard let statusLine = head.split(separator: "\r\n").first else { return "no answer" }
            let status = statusLine.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
            let length =
                head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let body = try WorkerTunnelTests.read(fd, count: length)
            return "\(status) \(String(decoding: body, as: UTF8.self))"
        }

        func close() { Glibc.close(fd) }
    }
}
