import Foundation
import MothershipTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Plain binds are served by the relay's worker threads (`relay_workers`, one per core by
/// default), each connection on one worker from accept to close: kept-alive connections, bodies,
/// framing and landing, checked through the binary.
@Suite("Workers end to end")
struct WorkersEndToEndTests {
    typealias Relay = RelayEndToEndTests

    /// The names of the process's threads.
    static func threadNames(of pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap {
            try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func keptAliveConnectionsAreServedOnTheWorkers() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        // One worker per core by default (or as many as the suite's driver configuration sets).
        let workers =
            ProcessInfo.processInfo.environment["MOTHERSHIP_TEST_RELAY_WORKERS"].flatMap { Int($0) }
            ?? sysconf(Int32(_SC_NPROCESSORS_ONLN))
        #expect(Self.threadNames(of: mothership.pid).filter { $0.hasPrefix("mothership-w") }.count == workers)
        let connection = try RawConnection(port: relay)
        let first = try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/first")))
        let second = try ShipEcho(
            try await connection.exchange(
                RawConnection.request("GET", "/second?x=1", ["X-Forwarded-For: 198.51.100.1", "Foo: bar"])))
        #expect(second.path == "/second?x=1")
        #expect(second.all("x-forwarded-for") == ["198.51.100.1, 127.0.0.1"])
        #expect(second.header("x-forwarded-proto") == "http")
        let requestID = try #require(second.header("x-request-id"))
        #expect(requestID.count == 32 && requestID != first.header("x-request-id"))
        // The ship connection was pooled on the worker: the ship sees one connection.
        #expect(second.peer == first.peer)

        // Lengths, chunks, HEAD, bodiless statuses, a body that ends with the ship's connection.
        let size = 2_000_000
        let big = try await connection.exchange(RawConnection.request("GET", "/big?n=\(size)"))
        #expect(big.header("content-length") == "\(size)" && big.body == RawConnection.pattern(size))
        let head = try await connection.exchange(RawConnection.request("HEAD", "/big?n=\(size)"))
        #expect(head.status == 200 && head.header("content-length") == "\(size)" && head.body.isEmpty)
        let chunked = try await connection.exchange(RawConnection.request("GET", "/chunked"))
        #expect(String(decoding: chunked.body, as: UTF8.self) == "first,second,third")
        for code in [204, 304] {
            let bodiless = try await connection.exchange(RawConnection.request("GET", "/status/\(code)"))
            #expect(bodiless.status == code && bodiless.body.isEmpty)
        }
        let closeDelimited = try await connection.exchange(RawConnection.request("GET", "/raw10"))
        #expect(closeDelimited.header("transfer-encoding") == "chunked")
        #expect(closeDelimited.text == "close-delimited body")

        // Pipelined requests are answered in order.
        try await connection.send(
            RawConnection.request("GET", "/pipelined-1") + RawConnection.request("GET", "/pipelined-2"))
        let pipelined = [try await connection.response(), try await connection.response()]
        #expect(try pipelined.map { try ShipEcho($0).path } == ["/pipelined-1", "/pipelined-2"])

        // Bodies with a length stream through; a ship that answers before the body has
        // all arrived gets the rest dropped, and the connection goes on.
        let upload = RawConnection.pattern(1 << 20)
        let posted = try ShipEcho(
            try await connection.exchange(RawConnection.request("POST", "/upload", body: upload)))
        #expect(posted.method == "POST" && posted.bodyLength == upload.count && posted.bodyOK)
        let early = try await connection.exchange(
            RawConnection.request("POST", "/early", body: RawConnection.pattern(8_000_000)))
        #expect(early.status == 413)
        #expect(
            try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/after-early"))).path
                == "/after-early")

        // A chunked body, and the connection goes on.
        var chunkedUpload = RawConnection.request("POST", "/upload-chunked", ["Transfer-Encoding: chunked"])
        chunkedUpload += Array("5\r\nhello\r\n0\r\n\r\n".utf8)
        let postedChunked = try ShipEcho(try await connection.exchange(chunkedUpload))
        #expect(postedChunked.bodyLength == 5)
        #expect(
            try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/after"))).path
                == "/after")

        // A malformed head on a kept-alive connection is refused as on a first request.
        let malformed = try RawConnection(port: relay)
        #expect(try await malformed.exchange(RawConnection.request("GET", "/warm")).status == 200)
        let refused = try await malformed.exchange(
            Array("GET /x HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n".utf8))
        #expect(refused.status == 400)
        #expect(await malformed.closes(within: 5))

        // An HTTP/1.0 client that keeps its connection: a chunked answer arrives as data, then closes.
        let old = try RawConnection(port: relay)
        let keepAlive = Array("GET /old HTTP/1.0\r\nHost: relay.test\r\nConnection: keep-alive\r\n\r\n".utf8)
        #expect(try await old.exchange(keepAlive).status == 200)
        let dechunked = try await old.exchange(
            Array("GET /chunked HTTP/1.0\r\nHost: relay.test\r\nConnection: keep-alive\r\n\r\n".utf8))
        #expect(dechunked.version == "HTTP/1.0" && dechunked.header("transfer-encoding") == nil)
        #expect(String(decoding: dechunked.body, as: UTF8.self) == "first,second,third")
        #expect(await old.closes(within: 5))
    }

    @Test(.timeLimit(.minutes(1)))
    func keptAliveConnectionsGet404And503And502WhenAShipRefusesThenTheBreakerOpens() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Relay.directory()
        defer { directory.remove() }
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/api.*"]"#))
            \(Relay.ship("gone", port: LoopbackPorts.free(), routes: #"["http:/refused.*"]"#, mode: "refuse", healthcheck: false))
            [[fleet.web]]
            name = "down"
            command = "sleep"
            args = ["300"]
            bind = "127.0.0.1:\(LoopbackPorts.free())"
            healthcheck = "/"
            critical = false
            routes = ["http:/down.*"]
            """, waitingFor: ["listening on", "listener-closed"])
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        // The web ship may still be starting: 503s until it is ready.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await connection.exchange(RawConnection.request("GET", "/api/warm")).status != 200 {
            #expect(ContinuousClock.now < deadline, "web never became ready")
            try await Task.sleep(for: .milliseconds(100))
        }
        let missing = try await connection.exchange(RawConnection.request("GET", "/nothing"))
        #expect(missing.status == 404)
        let down = try await connection.exchange(RawConnection.request("GET", "/down/1"))
        #expect(down.status == 503 && down.header("retry-after") == "1", "\(down.text)")
        #expect(down.text.contains("ship 'down' is not ready"), "\(down.text)")
        for attempt in 1...5 {
            let (response, elapsed) = try await connection.timedExchange(
                RawConnection.request("GET", "/refused-\(attempt)"))
            #expect(response.status == 502, "attempt \(attempt): \(response.text)")
            #expect(response.text.contains("ship 'gone'"), "\(response.text)")
            #expect(elapsed < .seconds(2), "attempt \(attempt): \(elapsed)")
        }
        let open = try await connection.exchange(RawConnection.request("GET", "/refused-6"))
        #expect(open.status == 503 && open.text.contains("circuit open"), "\(open.text)")
        // The connection is still in step and still served.
        #expect(
            try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/api/after"))).path
                == "/api/after")
    }

    @Test(.timeLimit(.minutes(1)))
    func aClientThatStopsReadingHoldsTheShipBack() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let stalled = try RawConnection(port: relay)
        #expect(try await stalled.exchange(RawConnection.request("GET", "/warm")).status == 200)
        let residentBefore = try #require(Relay.residentKilobytes(of: mothership.pid))
        try await stalled.send(RawConnection.request("GET", "/big?n=100000000"))
        try await Task.sleep(for: .milliseconds(1500))
        let residentStalled = try #require(Relay.residentKilobytes(of: mothership.pid))
        // Without backpressure the relay would hold most of the 100 MB.
        #expect(residentStalled - residentBefore < 20_000, "\(residentBefore) kB → \(residentStalled) kB")
        // Reading again, nothing is lost; the connection serves the next request.
        // (More than the sockets' buffers hold, so that the worker holds the ship back meanwhile.)
        let size = 8_000_000
        let slow = try RawConnection(port: relay)
        #expect(try await slow.exchange(RawConnection.request("GET", "/warm")).status == 200)
        try await slow.send(RawConnection.request("GET", "/big?n=\(size)"))
        try await Task.sleep(for: .milliseconds(700))
        let whole = try await slow.response(timeout: 30)
        #expect(whole.body.count == size && whole.body == RawConnection.pattern(size))
        #expect(try ShipEcho(try await slow.exchange(RawConnection.request("GET", "/next"))).path == "/next")
        stalled.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func sigtermClosesIdleKeptAliveConnectionsAndLetsABusyOneFinish() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let idle = try RawConnection(port: relay)
        #expect(try await idle.exchange(RawConnection.request("GET", "/idle-1")).status == 200)
        #expect(try await idle.exchange(RawConnection.request("GET", "/idle-2")).status == 200)
        let busy = try RawConnection(port: relay)
        #expect(try await busy.exchange(RawConnection.request("GET", "/warm")).status == 200)
        try await busy.send(RawConnection.request("GET", "/sleep?s=3"), thenAfter: 0.3) {
            mothership.signal(SIGTERM)
        }
        #expect(await idle.closes(within: 5))
        let answer = try await busy.response()
        #expect(try ShipEcho(answer).path == "/sleep?s=3")
        #expect(answer.header("connection")?.lowercased() == "close")
        #expect(await busy.closes(within: 5))
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func relayWorkersSetsTheNumberOfWorkerThreadsAndEachServes() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let relay = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership]
            relay_workers = 3
            metrics_port = \(metrics)

            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }
        #expect(Self.threadNames(of: mothership.pid).filter { $0.hasPrefix("mothership-w") }.count == 3)
        // Connections spread over the workers' sockets: each one answers.
        for index in 1...12 {
            let connection = try RawConnection(port: relay)
            #expect(try await connection.exchange(RawConnection.request("GET", "/\(index)")).status == 200)
            #expect(
                try await connection.exchange(RawConnection.request("GET", "/\(index)/again")).status == 200)
        }
        // The relay says at start where each bind runs, and /metrics counts requests per worker and
        // the open connections per bind (`last` is still open).
        #expect(mothership.output.contains("relay bind 'http' on 3 worker threads"), "\(mothership.output)")
        let last = try RawConnection(port: relay)
        #expect(try await last.exchange(RawConnection.request("GET", "/last")).status == 200)
        let text = try await RawConnection.offPool { try Relay.fetch("http://127.0.0.1:\(metrics)/metrics") }
        func value(_ line: Substring) -> Double? { line.split(separator: " ").last.flatMap { Double($0) } }
        let perWorker = text.split(separator: "\n").filter {
            $0.hasPrefix("mothership_relay_worker_requests_total{worker=")
        }
        #expect(perWorker.count == 3, "\(perWorker)")
        #expect(perWorker.compactMap(value).reduce(0, +) == 25, "requests counted per worker: \(perWorker)")
        let open = text.split(separator: "\n").first { $0.hasPrefix("mothership_connections{bind=\"http\"}") }
        #expect((open.flatMap(value) ?? 0) >= 1, "\(open ?? "no mothership_connections in \(text)")")
    }
}
