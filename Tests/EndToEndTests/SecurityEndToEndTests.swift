import Foundation
import MothershipTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The relay's security faults, each reproduced through the built binary: request smuggling through
/// `Connection`, lenient framing, raw-target module routes, protocol conformance, chunked uploads on
/// kept-alive connections, a static file truncated while it is sent, the relay's own errors (too many
/// open files) counted against a ship, the send timeout, and the idle pool's size per ship.
///
/// Where it makes sense each fault is checked on the first request of a connection and on a later
/// request of a kept-alive connection (after a successful warm-up GET, with its ship connection
/// pooled): the two are different states of a connection.
///
/// Serialized: several tests load the machine (600 connections, ten 100 MB answers, 200 requests
/// held at once) and one measures the relay's CPU time, which they must not do to each other.
@Suite("Security end to end", .serialized)
struct SecurityEndToEndTests {
    typealias Relay = RelayEndToEndTests

    /// A request that a lenient or confused relay would pass to the ship as a request of its own.
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

    // MARK: 1. Smuggling through headers named in Connection

    /// Fault 1: `Connection: content-length` (or `transfer-encoding`) made the relay drop the header
    /// that frames the body, so the ship read the body as a second request. The body must reach the
    /// ship framed as the client framed it, each later request gets its own answer, and the request
    /// inside the body never reaches the ship.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func framingHeadersNamedInConnectionStillFrameTheBodyAndNothingIsSmuggled(keptAlive: Bool) async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let inner = Array(Self.smuggled.utf8)

        // Content-Length named in Connection.
        let lengthConnection = try await Self.connection(relay, keptAlive: keptAlive)
        let lengthAnswer = try await lengthConnection.exchange(
            RawConnection.request("POST", "/a", ["Connection: content-length"], body: inner))
        let lengthSeen = try ShipEcho(lengthAnswer)
        #expect(lengthSeen.method == "POST" && lengthSeen.path == "/a")
        #expect(lengthSeen.header("content-length") == "\(inner.count)", "\(lengthSeen.headers)")
        #expect(lengthSeen.bodyLength == inner.count)
        let afterLength = try await lengthConnection.exchange(RawConnection.request("GET", "/after-length"))
        #expect(try ShipEcho(afterLength).path == "/after-length")
        // A new connection (served by the pooled ship connection the POST used) is in step too.
        let freshLength = try await RawConnection(port: relay).exchange(
            RawConnection.request("GET", "/fresh-after-length"))
        #expect(try ShipEcho(freshLength).path == "/fresh-after-length")

        // Transfer-Encoding named in Connection, the smuggled request as the chunk's data.
        let chunkedConnection = try await Self.connection(relay, keptAlive: keptAlive)
        var chunked = RawConnection.request(
            "POST", "/b", ["Connection: transfer-encoding", "Transfer-Encoding: chunked"])
        chunked += Array("\(String(inner.count, radix: 16))\r\n".utf8) + inner + Array("\r\n0\r\n\r\n".utf8)
        let chunkedSeen = try ShipEcho(try await chunkedConnection.exchange(chunked))
        #expect(chunkedSeen.method == "POST" && chunkedSeen.path == "/b")
        #expect(chunkedSeen.header("transfer-encoding")?.lowercased() == "chunked", "\(chunkedSeen.headers)")
        #expect(chunkedSeen.bodyLength == inner.count)
        let afterChunked = try await chunkedConnection.exchange(
            RawConnection.request("GET", "/after-chunked"))
        #expect(try ShipEcho(afterChunked).path == "/after-chunked")
        let freshChunked = try await RawConnection(port: relay).exchange(
            RawConnection.request("GET", "/fresh-after-chunked"))
        #expect(try ShipEcho(freshChunked).path == "/fresh-after-chunked")

        try await Self.expectNeverReachedTheShip("/smuggled", relay: relay, mothership: mothership)
    }

    // MARK: 2. Chunked uploads on kept-alive connections

    /// Fault 2: a chunked POST sent (head and whole body in one write) on a connection that had a
    /// first request hung for a minute, intermittently: the body's bytes were lost when the
    /// connection changed thread (the lane, since removed). Ten fresh connections, each warmed up,
    /// each must be answered within 15 s.
    @Test(.timeLimit(.minutes(3)))
    func aChunkedUploadInOneWriteOnAKeptAliveConnectionIsAnsweredEveryTime() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        for attempt in 1...10 {
            let connection = try await Self.connection(relay, keptAlive: true)
            let body = RawConnection.pattern(3000 + attempt)
            let answer = try await connection.exchange(
                Self.chunkedPost("/upload-\(attempt)", body), timeout: 15)
            let seen = try ShipEcho(answer)
            #expect(seen.path == "/upload-\(attempt)")
            #expect(seen.bodyLength == body.count && seen.bodyOK, "attempt \(attempt)")
            connection.close()
        }
    }

    /// Fault 2, the control: the same chunked POST as the first request of a connection was always
    /// answered (before the fix too).
    @Test(.timeLimit(.minutes(1)))
    func aChunkedUploadInOneWriteAsTheFirstRequestIsAnswered() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        for attempt in 1...3 {
            let connection = try RawConnection(port: relay)
            let body = RawConnection.pattern(3000 + attempt)
            let seen = try ShipEcho(
                try await connection.exchange(Self.chunkedPost("/first-\(attempt)", body), timeout: 15))
            #expect(seen.bodyLength == body.count && seen.bodyOK)
            // And the connection goes on.
            let after = try await connection.exchange(RawConnection.request("GET", "/after-\(attempt)"))
            #expect(try ShipEcho(after).path == "/after-\(attempt)")
        }
    }

    // MARK: 3. A static file truncated while it is sent

    /// Fault 3: a static file truncated while the relay sends it left an event loop spinning (~90 %
    /// CPU) on a connection that never ended. The connection must end, short of the announced length,
    /// the relay must go quiet, other static files must still be served, and the truncation is logged.
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func aStaticFileTruncatedWhileSentEndsTheConnectionWithoutSpinning(keptAlive: Bool) async throws {
        let relay = LoopbackPorts.free()
        let directory = try Relay.directory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("public"), withIntermediateDirectories: true)
        let bigSize = 64 << 20
        let bigPath = directory.file("public/big.bin")
        try Self.writeFile(bigPath, size: bigSize, truncating: false)
        try directory.write("public/small.txt", "small static file\n")
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[mothership.static_dirs]]
            path = "public"
            prefix = "/files"
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }

        let client = try TunedSocket(port: relay, receiveBuffer: 4096)
        defer { client.close() }
        try client.waitConnected(timeout: 10)
        if keptAlive {
            try client.send(Array("GET /files/small.txt HTTP/1.1\r\nHost: relay.test\r\n\r\n".utf8))
            let small = try client.readResponse(timeout: 10)
            try #require(small.status == 200 && small.text == "small static file\n", "\(small.status)")
        }
        try client.send(Array("GET /files/big.bin HTTP/1.1\r\nHost: relay.test\r\n\r\n".utf8))
        let head = try client.readHead(timeout: 10)
        try #require(head.status == 200, "\(head.status)")
        #expect(head.header("content-length") == "\(bigSize)")
        var delivered = client.takeBuffered().count
        while delivered < 8192 {
            guard case .data(let bytes) = client.readSome(timeout: 10) else { break }
            delivered += bytes.count
        }
        #expect(delivered >= 8192, "only \(delivered) bytes of the big file arrived before the truncation")

        // Truncated in place to 1 MiB (as `cp new old` does), far behind what the relay has sent.
        try Self.writeFile(bigPath, size: 1 << 20, truncating: true)

        // The connection ends, short of the Content-Length.
        let ended = ContinuousClock.now + .seconds(15)
        var outcome = "still open after 15 s"
        reading: while ContinuousClock.now < ended {
            switch client.readSome(timeout: 0.5) {
            case .data(let bytes):
                delivered += bytes.count
                _ = client.takeBuffered()
            case .timeout: continue
            case .end:
                outcome = "end"
                break reading
            case .reset:
                outcome = "reset"
                break reading
            }
        }
        #expect(outcome == "end" || outcome == "reset", "\(outcome), \(delivered) bytes delivered")
        #expect(delivered < bigSize)

        // The relay goes quiet: under 1 s of CPU over the next 3 s.
        let cpuBefore = try #require(Self.cpuSeconds(of: mothership.pid))
        let measured = ContinuousClock.now
        try await Task.sleep(for: .seconds(3))
        let cpuAfter = try #require(Self.cpuSeconds(of: mothership.pid))
        let wall = ContinuousClock.now - measured
        #expect(cpuAfter - cpuBefore < 1.0, "\(cpuAfter - cpuBefore) s of CPU in \(wall)")

        // Other static files are still served, and the truncation is logged.
        let other = try await RawConnection(port: relay).exchange(
            RawConnection.request("GET", "/files/small.txt"))
        #expect(other.status == 200 && other.text == "small static file\n")
        try await mothership.waitUntil("a warning naming big.bin as truncated", timeout: .seconds(10)) {
            mothership.lines.contains { $0.contains("big.bin") && $0.contains("truncated") }
        }
    }

    // MARK: 4. The relay's own errors and a ship's breaker

    /// Fault 4, out of file descriptors: the relay failing to open a socket to a ship for want of
    /// descriptors was counted as the ship failing (502s, then the ship's breaker open for 30 s).
    /// With the relay's open-files limit lowered to 256 and 600 connections held open, requests on
    /// accepted connections (a fresh one and a kept-alive one) are answered 200 or 503 "too
    /// many open files", never 502 (unfixed: 502s, then the breaker's 503 "circuit open"); the failed
    /// accepts are logged; once the connections close, the ship is served again at once (no open
    /// breaker).
    @Test(.timeLimit(.minutes(2)))
    func runningOutOfDescriptorsIsAnsweredAs503AndNeverOpensTheShipsBreaker() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Relay.directory()
        defer { directory.remove() }
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#, healthcheck: false))
            """)
        defer { mothership.stop() }
        #expect(mothership.output.contains("open files limit"), "\(mothership.output.suffix(3000))")

        // A kept-alive connection from before the exhaustion.
        let keptAlive = try TunedSocket(port: relay)
        defer { keptAlive.close() }
        try keptAlive.waitConnected(timeout: 10)
        try keptAlive.send(Self.get("/keptAlive-warm"))
        try #require(try keptAlive.readResponse(timeout: 10).status == 200)

        let limited = try await Relay.run(
            "prlimit", ["--pid", "\(mothership.pid)", "--nofile=256:256"], in: directory.path)
        try #require(limited.status == 0, "prlimit failed: \(limited.output)")

        var idle: [TunedSocket] = []
        defer { for socket in idle { socket.close() } }
        for _ in 0..<600 { idle.append(try TunedSocket(port: relay)) }
        // Until the relay has taken all the descriptors it can (its count stops growing near 256).
        let descriptors = {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(mothership.pid)/fd").count) ?? 0
        }
        var count = descriptors()
        var steadySince = ContinuousClock.now
        let exhausted = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < exhausted
            && (count < 230 || ContinuousClock.now - steadySince < .seconds(1))
        {
            try await Task.sleep(for: .milliseconds(100))
            let now = descriptors()
            if now != count { steadySince = ContinuousClock.now }
            count = now
        }
        try #require(count >= 230, "the relay holds only \(count) descriptors")
        // The first ones are in the relay's hands (it accepts in order until it runs out): a GET on
        // each of the first 12 and on the keptAlive's connection, all at once.
        let asked = Array(idle.prefix(12))
        for (index, socket) in asked.enumerated() {
            try socket.waitConnected(timeout: 10)
            try socket.send(Self.get("/exhausted-\(index)"))
        }
        try keptAlive.send(Self.get("/keptAlive-exhausted"))
        var answers: [(String, Int, String)] = []
        for (label, socket) in asked.enumerated().map({ ("fresh \($0.offset)", $0.element) }) + [
            ("keptAlive", keptAlive)
        ] {
            do {
                let answer = try socket.readResponse(timeout: 20)
                answers.append((label, answer.status, answer.text))
            } catch {
                Issue.record("\(label): \(error)")
            }
        }

        let summary = answers.map { "\($0.0): \($0.1) \($0.2.prefix(80))" }.joined(separator: "\n")
        for (label, status, text) in answers {
            #expect(
                status == 200 || (status == 503 && text.contains("too many open files")),
                "\(label): \(status) \(text.prefix(200))")
        }
        #expect(answers.contains { $0.1 == 503 && $0.2.contains("too many open files") }, "\(summary)")
        let logged = ContinuousClock.now + .seconds(10)
        func acceptsLogged() -> Bool {
            mothership.lines.contains { $0.lowercased().contains("accept") && $0.contains("open files") }
        }
        while !acceptsLogged() && ContinuousClock.now < logged {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(acceptsLogged(), "no log line about the failed accepts")

        // Descriptors back: the ship is served again within seconds, its breaker never opened.
        for socket in idle { socket.close() }
        idle.removeAll()
        keptAlive.close()
        let recovery = ContinuousClock.now + .seconds(10)
        var last: (Int, String) = (0, "")
        var circuitOpen: String?
        while ContinuousClock.now < recovery {
            if let answer = try? await RawConnection(port: relay).exchange(Self.get("/recovered")) {
                last = (answer.status, answer.text)
                if answer.text.contains("circuit open") { circuitOpen = circuitOpen ?? answer.text }
                if answer.status == 200 { break }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(circuitOpen == nil, "the ship's breaker opened: \(circuitOpen ?? "")")
        #expect(last.0 == 200, "after the connections closed: \(last.0) \(last.1)")
    }

    /// Fault 4, started with a low soft limit: mothership started with 256 soft / 4096 hard open
    /// files raises its soft limit to the hard one (and says so), and serves 600 concurrent
    /// connections (unfixed: it stays at 256, and most of the 600 get no answer or a 502).
    @Test(.timeLimit(.minutes(2)))
    func aLowSoftOpenFilesLimitIsRaisedAndSixHundredConnectionsAreServed() async throws {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let directory = try Relay.directory()
        defer { directory.remove() }
        try directory.write("pool_ship.py", Self.poolShipScript)
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[fleet.web]]
            name = "web"
            command = "python3"
            args = ["pool_ship.py", "plain", "web", "\(ship)", "0"]
            bind = "127.0.0.1:\(ship)"
            routes = ["http:/.*"]
            """, launcher: ["/usr/bin/prlimit", "--nofile=256:4096", "--"])
        defer { mothership.stop() }
        let raised = "open files limit raised from 256 to 4096"
        let said = ContinuousClock.now + .seconds(10)
        while !mothership.output.contains(raised) && ContinuousClock.now < said {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(mothership.output.contains(raised), "\(mothership.output.suffix(3000))")

        let statuses = try await Self.concurrentGets(relay, count: 600, path: "/many", timeout: 60).statuses
        #expect(statuses.allSatisfy { $0 == 200 }, "statuses: \(Self.tally(statuses))")
    }

    // MARK: 5. Module routes match the target as sent

    /// Fault 5, request modules: a module's routes were matched against the target as sent, so
    /// `/%61dmin/x`, `//admin/x` or an absolute-form target slipped past a gate on `/admin/.*` that
    /// the ship (which normalises) then served as `/admin/x`. Every spelling is refused by the gate;
    /// with the key the ship sees the target as sent (origin form for an absolute-form target);
    /// targets climbing above the root are refused with 400.
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func aGateModuleRefusesEverySpellingOfItsRoute(keptAlive: Bool) async throws {
        let relay = LoopbackPorts.free()
        let directory = try await PayloadsEndToEndTests.directoryWithExamples()
        defer { directory.remove() }
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [base.module]
            config = { api_key = "s3cret" }

            [[modules]]
            name = "gate"
            wasm = "examples/api_key_gate.wasm"
            routes = ["/admin/.*"]
            phase = "request"
            config = { header = "x-api-key" }
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }

        let spellings = [
            "/admin/x", "/%61dmin/x", "//admin/x", "/./admin/x", "/static/../admin/x", "/%2e/admin/x",
            "/admin/./x",
        ]
        for target in spellings {
            let refused = try await Self.ask(
                relay, keptAlive: keptAlive, RawConnection.request("GET", target))
            #expect(refused.status == 401, "\(target): \(refused.status) \(refused.text.prefix(200))")
            let allowed = try await Self.ask(
                relay, keptAlive: keptAlive, RawConnection.request("GET", target, ["X-Api-Key: s3cret"]))
            #expect(allowed.status == 200, "\(target) with the key: \(allowed.status)")
            if allowed.status == 200 {
                #expect(try ShipEcho(allowed).path == Self.pythonPath(target))
            }
        }
        let absolute = "GET http://example.com/admin/x HTTP/1.1\r\nHost: example.com\r\n"
        let absoluteRefused = try await Self.ask(relay, keptAlive: keptAlive, Array((absolute + "\r\n").utf8))
        #expect(absoluteRefused.status == 401, "absolute form: \(absoluteRefused.status)")
        let absoluteAllowed = try await Self.ask(
            relay, keptAlive: keptAlive, Array((absolute + "X-Api-Key: s3cret\r\n\r\n").utf8))
        #expect(absoluteAllowed.status == 200, "absolute form with the key: \(absoluteAllowed.status)")
        if absoluteAllowed.status == 200 {
            #expect(try ShipEcho(absoluteAllowed).path == "/admin/x")
        }
        for target in ["/../x", "/a/../../x"] {
            let answer = try await Self.ask(
                relay, keptAlive: keptAlive, RawConnection.request("GET", target, ["X-Api-Key: s3cret"]))
            #expect(answer.status == 400, "\(target): \(answer.status) \(answer.text.prefix(200))")
        }
    }

    /// Fault 5, routes and static directories: routes and static prefixes are matched against the
    /// normalised path, so `//admin/x` and `/%61dmin/x` reach the ship routed `/admin/.*`, and
    /// `/%61ssets/app.js` and `//assets/app.js` are the static file.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func routesAndStaticPrefixesMatchEverySpellingOfThePath(keptAlive: Bool) async throws {
        let relay = LoopbackPorts.free()
        let directory = try Relay.directory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("public"), withIntermediateDirectories: true)
        let script = "console.log('app');\n"
        try directory.write("public/app.js", script)
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[mothership.static_dirs]]
            path = "public"
            prefix = "/assets"
            \(Relay.ship("admin", port: LoopbackPorts.free(), routes: #"["http:/admin/.*"]"#))
            \(Relay.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }

        for target in ["/admin/x", "//admin/x", "/%61dmin/x"] {
            let answer = try await Self.ask(relay, keptAlive: keptAlive, RawConnection.request("GET", target))
            let seen = try ShipEcho(answer)
            #expect(seen.ship == "admin", "\(target) reached \(seen.ship)")
            #expect(seen.path == Self.pythonPath(target))
        }
        for target in ["/assets/app.js", "/%61ssets/app.js", "//assets/app.js"] {
            let answer = try await Self.ask(relay, keptAlive: keptAlive, RawConnection.request("GET", target))
            #expect(answer.status == 200, "\(target): \(answer.status)")
            #expect(answer.text == script, "\(target): \(answer.text.prefix(200))")
        }
    }

    // MARK: 6. Lenient framing

    /// Fault 6: framing a strict parser refuses was accepted (bare LF ending a chunk-size line, LF in
    /// a chunk extension, a Transfer-Encoding that does not end with `chunked` as its only coding, two
    /// Content-Length lines), letting bytes after the body be read as a request of their own. Each is
    /// refused with 400, the connection closed, and the request placed after the body never reaches
    /// the ship.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func lenientFramingIsRefusedWith400AndNothingIsSmuggled(keptAlive: Bool) async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let cases: [(String, [String], String)] = [
            ("bare-lf-chunk-size", ["Transfer-Encoding: chunked"], "5\nhello\r\n0\r\n\r\n"),
            ("lf-in-chunk-extension", ["Transfer-Encoding: chunked"], "5;a\nb\r\nhello\r\n0\r\n\r\n"),
            ("te-foo-chunked", ["Transfer-Encoding: foo chunked"], "5\r\nhello\r\n0\r\n\r\n"),
            ("two-content-lengths", ["Content-Length: 5", "Content-Length: 5"], "hello"),
        ]
        for (label, headers, body) in cases {
            let connection = try await Self.connection(relay, keptAlive: keptAlive)
            try? await connection.send(
                RawConnection.request("POST", "/\(label)", headers) + Array((body + Self.smuggled).utf8))
            do {
                let answer = try await connection.response()
                #expect(answer.status == 400, "\(label): \(answer.status) \(answer.text.prefix(200))")
                #expect(await connection.closes(within: 5), "\(label): connection left open")
            } catch {
                Issue.record("\(label): no response: \(error)")
            }
        }
        try await Self.expectNeverReachedTheShip("/smuggled", relay: relay, mothership: mothership)
    }

    /// A client that ends its side of the stream (a FIN) after a whole request, half a head, or
    /// part of a body: the relay ends the connection at once, as nginx does (a request the client
    /// gave up on may be answered or not), long before its 30 s header and 60 s idle timeouts, and
    /// serves the next connection. Its sockets being edge-triggered, a FIN that arrived with the
    /// last bytes is reported once: read only up to the bytes, the connection would hang open.
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func aClientThatEndsItsStreamIsClosedAtOnce(keptAlive: Bool) async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let cases: [(String, [UInt8])] = [
            ("whole request", RawConnection.request("GET", "/then-fin")),
            ("half a head", Array("GET /half HTTP/1.1\r\nHost: rel".utf8)),
            (
                "part of a body",
                Array("POST /cut HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 100\r\n\r\nshort".utf8)
            ),
        ]
        for (label, bytes) in cases {
            let connection = try await Self.connection(relay, keptAlive: keptAlive)
            try await connection.send(bytes)
            connection.shutDownWriting()
            #expect(await connection.closes(within: 10), "\(label): connection left open")
        }
        // The FIN arrives while the relay does not read the client (a pipelined request waits for
        // the slow answer before it): reported once, when reading resumes, behind the rest of the
        // pipelined request's body, the last bytes there are.
        let paused = try await Self.connection(relay, keptAlive: keptAlive)
        try await paused.send(
            RawConnection.request("GET", "/sleep?s=1")
                + Array(
                    "POST /pipelined HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 10\r\n\r\n12345".utf8))
        try await Task.sleep(for: .milliseconds(300))
        try await paused.send(Array("67890".utf8))
        paused.shutDownWriting()
        let slow = try await paused.response()
        #expect(slow.status == 200, "\(slow.status)")
        #expect(await paused.closes(within: 10), "paused: connection left open")

        let after = try await RawConnection(port: relay).exchange(RawConnection.request("GET", "/after"))
        #expect(after.status == 200, "\(after.status)")
    }

    // MARK: 7. Protocol conformance

    /// Fault 7: HTTP/1.1 requests without a Host, or with two, are refused with 400; an
    /// absolute-form target reaches the ship in origin form with the Host; a client's own
    /// X-Forwarded-Host never reaches the ship (with a Host the ship sees exactly one, the Host; an
    /// HTTP/1.0 request without a Host is where it leaked); an `Upgrade: h2c` on a plain GET is not an upgrade
    /// (200, and the ship sees neither Upgrade nor HTTP2-Settings).
    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func hostAbsoluteFormForwardedHostAndH2CFollowTheProtocol(keptAlive: Bool) async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }

        let noHost = try await Self.ask(
            relay, keptAlive: keptAlive, Array("GET /no-host HTTP/1.1\r\n\r\n".utf8))
        #expect(noHost.status == 400, "no Host: \(noHost.status) \(noHost.text.prefix(200))")
        let twoHosts = try await Self.ask(
            relay, keptAlive: keptAlive, Array("GET /two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".utf8))
        #expect(twoHosts.status == 400, "two Hosts: \(twoHosts.status) \(twoHosts.text.prefix(200))")
        // A Host that is not an authority (a path, userinfo, a backslash, a byte above ASCII, a
        // space inside), and an absolute-form target whose authority holds userinfo: refused, and
        // none reaches the ship.
        let badHosts = ["evil.example/x", "user@evil.example", "evil.example\\x", "caf\u{E9}.example", "a b"]
        for (index, host) in badHosts.enumerated() {
            let refused = try await Self.ask(
                relay, keptAlive: keptAlive,
                Array("GET /bad-host-\(index) HTTP/1.1\r\nHost: \(host)\r\n\r\n".utf8))
            #expect(refused.status == 400, "Host \(host): \(refused.status) \(refused.text.prefix(200))")
            try await Self.expectNeverReachedTheShip(
                "/bad-host-\(index)", relay: relay, mothership: mothership)
        }
        let userinfo = try await Self.ask(
            relay, keptAlive: keptAlive,
            Array("GET http://user@shop.example/bad-authority HTTP/1.1\r\nHost: shop.example\r\n\r\n".utf8))
        #expect(userinfo.status == 400, "userinfo authority: \(userinfo.status)")
        try await Self.expectNeverReachedTheShip("/bad-authority", relay: relay, mothership: mothership)

        let absolute = try await Self.ask(
            relay, keptAlive: keptAlive,
            Array("GET http://shop.example/x?y=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n".utf8))
        let absoluteSeen = try ShipEcho(absolute)
        #expect(absoluteSeen.path == "/x?y=1")
        #expect(absoluteSeen.all("host") == ["shop.example"])

        let forwarded = try await Self.ask(
            relay, keptAlive: keptAlive,
            RawConnection.request(
                "GET", "/forwarded", host: "shop.example", ["X-Forwarded-Host: evil.example"]))
        #expect(try ShipEcho(forwarded).all("x-forwarded-host") == ["shop.example"])
        // Without a Host (HTTP/1.0), the client's X-Forwarded-Host was passed on as it was.
        let forwardedWithoutHost = try await Self.ask(
            relay, keptAlive: keptAlive,
            Array("GET /forwarded-10 HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\n\r\n".utf8))
        let withoutHostSeen = try ShipEcho(forwardedWithoutHost)
        #expect(
            !withoutHostSeen.all("x-forwarded-host").contains("evil.example"),
            "HTTP/1.0 without Host: \(withoutHostSeen.all("x-forwarded-host"))")

        let h2c = try await Self.ask(
            relay, keptAlive: keptAlive,
            RawConnection.request(
                "GET", "/h2c",
                [
                    "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                ]))
        #expect(h2c.status == 200, "h2c: \(h2c.status)")
        if h2c.status == 200 {
            let seen = try ShipEcho(h2c)
            #expect(seen.header("upgrade") == nil, "\(seen.headers)")
            #expect(seen.header("http2-settings") == nil, "\(seen.headers)")
        }
    }

    // MARK: 8. The send timeout

    /// Fault 8: a client that stops reading held its connection (and the ship's) forever. Ten
    /// clients with small receive buffers ask for 100 MB and never read (five of them after a first
    /// successful request, on the lane): the relay closes each between 50 s and 100 s after its
    /// request (60 s send timeout), and serves new connections meanwhile and after.
    @Test(.timeLimit(.minutes(3)))
    func clientsThatStopReadingAreClosedAfterTheSendTimeout() async throws {
        let directory = try Relay.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Relay.launchWithOneShip(in: directory)
        defer { mothership.stop() }

        var stalled: [(socket: TunedSocket, port: Int, sent: ContinuousClock.Instant, lane: Bool)] = []
        defer { for client in stalled { client.socket.close() } }
        for index in 0..<10 {
            let socket = try TunedSocket(port: relay, receiveBuffer: 4096)
            try socket.waitConnected(timeout: 10)
            let lane = index % 2 == 1
            if lane {
                try socket.send(Self.get("/before-stall-\(index)"))
                try #require(try socket.readResponse(timeout: 10).status == 200)
            }
            try socket.send(Self.get("/big?n=100000000"))
            stalled.append((socket, try socket.localPort(), ContinuousClock.now, lane))
        }

        // The relay's side of each connection leaves ESTABLISHED when it closes it (unread data
        // or not): watched in /proc/net/tcp, so that the client never reads.
        var closedAfter: [Int: Duration] = [:]
        // Closed once missing from three scans in a row (a scan can miss a line); timed from the first.
        var missing: [Int: (count: Int, since: Duration)] = [:]
        var checkedMeanwhile = false
        let deadline = stalled.map(\.sent).max()! + .seconds(100)
        while ContinuousClock.now < deadline && closedAfter.count < stalled.count {
            let open = Set(
                TCPTable.entries().filter { $0.localPort == relay && $0.state == "01" }.map(\.remotePort))
            for client in stalled where closedAfter[client.port] == nil {
                if open.contains(client.port) {
                    missing[client.port] = nil
                    continue
                }
                let seen = missing[client.port] ?? (0, ContinuousClock.now - client.sent)
                missing[client.port] = (seen.count + 1, seen.since)
                if seen.count + 1 >= 3 { closedAfter[client.port] = seen.since }
            }
            if !checkedMeanwhile && ContinuousClock.now > stalled[0].sent + .seconds(20) {
                checkedMeanwhile = true
                let meanwhile = try await RawConnection(port: relay).exchange(Self.get("/meanwhile"))
                #expect(meanwhile.status == 200)
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        for client in stalled {
            let label = "\(client.lane ? "lane" : "fresh") client on port \(client.port)"
            guard let after = closedAfter[client.port] else {
                Issue.record("\(label): still connected 100 s after its request")
                continue
            }
            #expect(after >= .seconds(50) && after <= .seconds(100), "\(label): closed after \(after)")
        }
        let after = try await RawConnection(port: relay).exchange(Self.get("/after-stalls"))
        #expect(after.status == 200)
        // What was queued drains, then the end (or a reset) arrives.
        let drained = ContinuousClock.now + .seconds(20)
        for client in stalled where closedAfter[client.port] != nil {
            let seconds = max(1, Double((drained - ContinuousClock.now).components.seconds))
            #expect(client.socket.drainsToEnd(within: seconds), "port \(client.port): no end after the close")
        }
    }

    // MARK: 9. Idle connections per ship

    /// Fault 9: the cap on idle pooled connections to a ship (128) applied per event loop, so a ship
    /// could be left with 128 per loop. After 200 concurrent requests that each need a connection of
    /// their own (the ship answers none until all 200 are in), at most 128 stay open to the ship.
    /// The clients close their connections (`Connection: close`): a kept-alive client connection
    /// takes its ship connection along to the lane, whose own pool was always capped at 128.
    @Test(.timeLimit(.minutes(2)))
    func atMost128IdleConnectionsToAShipStayOpenAfter200AtOnce() async throws {
        let (ship, mothership, relay, directory) = try await Self.launchWithBarrierShip()
        defer { directory.remove() }
        defer { mothership.stop() }
        let outcome = try await Self.barrierRound(relay: relay, ship: ship, close: true)
        #expect(outcome.statuses.allSatisfy { $0 == 200 }, "statuses: \(Self.tally(outcome.statuses))")
        #expect(
            mothership.output.contains("barrier reached 200"),
            "the ship never had 200 requests in flight: the relay did not open 200 connections")
        #expect(outcome.after <= 128, "\(outcome.after) connections to the ship stay open")
    }

    /// Fault 9, the lane and the event loops together: after 200 concurrent requests on kept-alive
    /// connections (their ship connections go to the lane's pool) and then 200 with `Connection:
    /// close` (theirs stay in the event loops' pools), the ship still has at most 128 open: one cap
    /// per ship, wherever the idle connections are.
    @Test(.timeLimit(.minutes(2)))
    func atMost128IdleConnectionsToAShipStayOpenAcrossTheLaneAndTheEventLoops() async throws {
        let (ship, mothership, relay, directory) = try await Self.launchWithBarrierShip()
        defer { directory.remove() }
        defer { mothership.stop() }
        let keptAlive = try await Self.barrierRound(relay: relay, ship: ship, close: false)
        #expect(keptAlive.statuses.allSatisfy { $0 == 200 }, "statuses: \(Self.tally(keptAlive.statuses))")
        #expect(keptAlive.after <= 128, "after the kept-alive round: \(keptAlive.after)")
        let closing = try await Self.barrierRound(relay: relay, ship: ship, close: true)
        #expect(closing.statuses.allSatisfy { $0 == 200 }, "statuses: \(Self.tally(closing.statuses))")
        #expect(
            mothership.output.contains("barrier reached 400"),
            "the ship never had 200 requests in flight in the second round")
        #expect(closing.after <= 128, "\(closing.after) connections to the ship stay open")
    }

    static func launchWithBarrierShip() async throws -> (
        ship: Int, mothership: RunningMothership, relay: Int, directory: TemporaryDirectory
    ) {
        let relay = LoopbackPorts.free()
        let ship = LoopbackPorts.free()
        let directory = try Relay.directory()
        try directory.write("pool_ship.py", Self.poolShipScript)
        do {
            let mothership = try await Relay.launch(
                in: directory,
                """
                [mothership.bind]
                http = "127.0.0.1:\(relay)"
                [[fleet.web]]
                name = "web"
                command = "python3"
                args = ["pool_ship.py", "barrier", "web", "\(ship)", "200"]
                bind = "127.0.0.1:\(ship)"
                routes = ["http:/.*"]
                """)
            return (ship, mothership, relay, directory)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// 200 concurrent GETs to `/together` (the ship answers once all 200 are in), then the ship's
    /// established connections, polled up to 10 s until at most 128, counted while the clients'
    /// connections are still open.
    static func barrierRound(relay: Int, ship: Int, close: Bool) async throws -> ConcurrentOutcome {
        try await Self.concurrentGets(
            relay, count: 200, path: "/together", headers: close ? ["Connection: close"] : [], timeout: 60
        ) {
            var established = Self.established(toPort: ship)
            let settled = ContinuousClock.now + .seconds(10)
            while established > 128 && ContinuousClock.now < settled {
                Thread.sleep(forTimeInterval: 0.2)
                established = Self.established(toPort: ship)
            }
            return established
        }
    }

    static func tally(_ statuses: [Int]) -> [Int: Int] {
        Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count)
    }

    // MARK: - Helpers

    /// A new connection to the relay; when `keptAlive`, after a successful warm-up GET on it.
    static func connection(_ relay: Int, keptAlive: Bool) async throws -> RawConnection {
        let connection = try RawConnection(port: relay)
        if keptAlive {
            let warm = try await connection.exchange(RawConnection.request("GET", "/warm-up"))
            try #require(warm.status == 200, "warm-up: \(warm.status) \(warm.text.prefix(200))")
        }
        return connection
    }

    /// One request on a new connection (warmed up first when `keptAlive`), and its response.
    static func ask(_ relay: Int, keptAlive: Bool, _ request: [UInt8]) async throws -> RawResponse {
        let connection = try await Self.connection(relay, keptAlive: keptAlive)
        try? await connection.send(request)
        return try await connection.response()
    }

    static func get(_ path: String) -> [UInt8] { RawConnection.request("GET", path) }

    /// The path python's http.server reports for a target it received: it collapses a leading
    /// `//` to `/` itself (so the ship's echo cannot tell whether the relay passed `//admin/x` on).
    static func pythonPath(_ target: String) -> String {
        target.hasPrefix("//") ? "/" + target.drop { $0 == "/" } : target
    }

    /// A chunked POST of `body` in 1000-byte chunks.
    static func chunkedPost(_ path: String, _ body: [UInt8]) -> [UInt8] {
        var request = RawConnection.request("POST", path, ["Transfer-Encoding: chunked"])
        for offset in stride(from: 0, to: body.count, by: 1000) {
            let piece = body[offset..<min(offset + 1000, body.count)]
            request += Array("\(String(piece.count, radix: 16))\r\n".utf8) + piece + [13, 10]
        }
        return request + Array("0\r\n\r\n".utf8)
    }

    /// Asserts that `path` never reached the ship: a request on a new connection is answered and
    /// logged by the ship first, so that anything sent before it has been logged too.
    static func expectNeverReachedTheShip(
        _ path: String, relay: Int, mothership: RunningMothership,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let marker = "/sync-\(UUID().uuidString)"
        let sync = try await RawConnection(port: relay).exchange(RawConnection.request("GET", marker))
        #expect(try ShipEcho(sync).path == marker, sourceLocation: sourceLocation)
        try await mothership.waitFor(marker)
        let reached = mothership.lines.filter { $0.contains(path) }
        #expect(reached.isEmpty, "reached the ship: \(reached)", sourceLocation: sourceLocation)
    }

    /// Writes `size` bytes to `path` through one descriptor opened with O_TRUNC (in place: the
    /// inode stays the same, as with `cp new old`).
    static func writeFile(_ path: String, size: Int, truncating: Bool) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(descriptor >= 0, "cannot open \(path): errno \(errno)")
        defer { close(descriptor) }
        let block = RawConnection.pattern(1 << 20)
        var written = 0
        while written < size {
            let count = min(block.count, size - written)
            let result = block.withUnsafeBytes { write(descriptor, $0.baseAddress, count) }
            try #require(result > 0, "write failed: errno \(errno)")
            written += result
        }
    }

    /// User plus system CPU time of a process (all its threads), in seconds.
    static func cpuSeconds(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            return nil
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// ESTABLISHED connections whose local port is `port` (a listener's accepted connections).
    /// The most of three scans (a scan can miss a line).
    static func established(toPort port: Int) -> Int {
        (0..<3).map { _ in TCPTable.entries().filter { $0.localPort == port && $0.state == "01" }.count }
            .max()!
    }

    /// Writes the manifest and starts mothership (through `launcher` when given), waiting for Running.
    static func launch(
        in directory: TemporaryDirectory, _ manifest: String, launcher: [String]
    ) async throws -> RunningMothership {
        try directory.write("ship-manifest.toml", manifest)
        let mothership = try RunningMothership([], in: directory.path, launcher: launcher)
        do {
            try await mothership.waitUntil("lifecycle: Running", timeout: .seconds(15)) {
                mothership.output.contains("lifecycle: Running") || !mothership.process.isRunning
            }
            if !mothership.output.contains("lifecycle: Running") {
                throw RawConnection.Failure(description: "mothership exited:\n\(mothership.output)")
            }
        } catch {
            mothership.stop()
            throw error
        }
        return mothership
    }

    struct ConcurrentOutcome: Sendable {
        var statuses: [Int]
        var after: Int
    }

    /// `count` connections opened, then a GET sent on each, all at once; every response read on one
    /// thread polling them all. Statuses in order (-1: no complete response). `whileOpen` runs after
    /// the last response, before the connections close.
    static func concurrentGets(
        _ relay: Int, count: Int, path: String, headers: [String] = [], timeout: Double,
        whileOpen: @escaping @Sendable () -> Int = { 0 }
    ) async throws -> ConcurrentOutcome {
        try await RawConnection.offPool {
            var sockets: [TunedSocket] = []
            defer { for socket in sockets { socket.close() } }
            for _ in 0..<count { sockets.append(try TunedSocket(port: relay)) }
            for socket in sockets { try socket.waitConnected(timeout: 20) }
            for (index, socket) in sockets.enumerated() {
                try socket.send(RawConnection.request("GET", "\(path)?i=\(index)", headers))
            }
            var statuses = [Int](repeating: -1, count: count)
            var pending = Set(0..<count)
            let deadline = Date().addingTimeInterval(timeout)
            while !pending.isEmpty && Date() < deadline {
                var pollers = pending.sorted().map {
                    pollfd(fd: sockets[$0].descriptor, events: Int16(POLLIN), revents: 0)
                }
                let order = pending.sorted()
                let ready = poll(&pollers, nfds_t(pollers.count), 200)
                if ready <= 0 { continue }
                for (slot, index) in order.enumerated() where pollers[slot].revents != 0 {
                    let socket = sockets[index]
                    switch socket.readSome(timeout: 0) {
                    case .data:
                        if let response = socket.parsedResponse() {
                            statuses[index] = response.status
                            pending.remove(index)
                        }
                    case .end, .reset:
                        pending.remove(index)
                    case .timeout:
                        break
                    }
                }
            }
            return ConcurrentOutcome(statuses: statuses, after: whileOpen())
        }
    }

    /// A ship for the pool and limit tests: `pool_ship.py MODE NAME PORT WANTED`, a threading HTTP
    /// server with a listen queue of 1024 (so that hundreds of connections at once are not dropped)
    /// and its soft open-files limit raised to the hard one. In `barrier` mode a request to
    /// `/together` is answered only once WANTED of them are in flight at once (or after 20 s), so
    /// that the relay needs WANTED connections to the ship at the same time (then the next WANTED);
    /// it prints `barrier reached N` when the Nth arrives.
    static let poolShipScript = #"""
        import json, os, resource, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        MODE, NAME, PORT, WANTED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        together = threading.Condition()
        arrived = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def do_GET(self):
                global arrived
                if MODE == "barrier" and self.path.startswith("/together"):
                    with together:
                        arrived += 1
                        # Rounds of WANTED: the first WANTED requests wait for each other, then the next.
                        target = ((arrived - 1) // WANTED + 1) * WANTED
                        if arrived == target:
                            print("barrier reached %d" % arrived, flush=True)
                        together.notify_all()
                        deadline = time.monotonic() + 20
                        while arrived < target and time.monotonic() < deadline:
                            together.wait(max(0.01, deadline - time.monotonic()))
                body = json.dumps({
                    "ship": NAME, "pid": os.getpid(), "peer": str(self.client_address),
                    "method": self.command, "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body_length": 0, "body_ok": True,
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        Server(("127.0.0.1", PORT), Handler).serve_forever()
        """#
}

// MARK: - /proc/net/tcp

/// The IPv4 TCP sockets of the machine, from /proc/net/tcp.
enum TCPTable {
    struct Entry {
        var localPort: Int
        var remotePort: Int
        /// Hex state: `01` ESTABLISHED, `0A` LISTEN, `04` FIN_WAIT1, …
        var state: String
    }

    /// Read with one large read() where possible: the table is produced as it is read, and
    /// entries can be missed between two reads while connections come and go.
    static func entries() -> [Entry] {
        let descriptor = open("/proc/net/tcp", O_RDONLY)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 20)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3,
                let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
            else { return nil }
            return Entry(localPort: local, remotePort: remote, state: String(fields[3]))
        }
    }
}

// MARK: - A socket with its own options

/// A non-blocking TCP client to 127.0.0.1 with a chosen receive buffer (set before connecting, so
/// that the window stays small), driven with poll. Used by one thread at a time.
final class TunedSocket: @unchecked Sendable {
    enum Read {
        case data([UInt8])
        case end
        case reset
        case timeout
    }

    struct Response {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        var text: String { String(decoding: body, as: UTF8.self) }
    }

    let descriptor: Int32
    private var buffer: [UInt8] = []
    private var isClosed = false

    /// Starts connecting (without waiting: see `waitConnected`).
    init(port: Int, receiveBuffer: Int? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw RawConnection.Failure(description: "socket: errno \(errno)") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 && errno != EINPROGRESS {
            let error = errno
            close()
            throw RawConnection.Failure(description: "cannot connect to 127.0.0.1:\(port): errno \(error)")
        }
    }

    deinit { close() }

    func close() {
        if !isClosed {
            isClosed = true
            Glibc.close(descriptor)
        }
    }

    func waitConnected(timeout: Double) throws {
        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else {
            throw RawConnection.Failure(description: "not connected within \(timeout) s")
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 { throw RawConnection.Failure(description: "connect failed: errno \(error)") }
    }

    func localPort() throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { throw RawConnection.Failure(description: "getsockname: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func send(_ bytes: [UInt8], timeout: Double = 20) throws {
        var offset = 0
        let deadline = Date().addingTimeInterval(timeout)
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent >= 0 {
                offset += sent
                continue
            }
            guard errno == EAGAIN || errno == EINTR else {
                throw RawConnection.Failure(description: "send failed: errno \(errno)")
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            if Date() > deadline || poll(&poller, 1, 1000) < 0 && errno != EINTR {
                throw RawConnection.Failure(description: "send: no room within \(timeout) s")
            }
        }
    }

    /// What arrives next (also appended to the buffer that `readHead`/`parsedResponse` parse).
    func readSome(timeout: Double) -> Read {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&poller, 1, Int32(timeout * 1000)) } while ready < 0 && errno == EINTR
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count > 0 {
            buffer.append(contentsOf: chunk[..<count])
            return .data(Array(chunk[..<count]))
        }
        if count == 0 { return .end }
        if errno == EAGAIN || errno == EINTR { return .timeout }
        return errno == ECONNRESET ? .reset : .end
    }

    /// Everything buffered and not yet taken (removed from the buffer).
    func takeBuffered() -> [UInt8] {
        defer { buffer.removeAll() }
        return buffer
    }

    /// Reads a response head (the body's first bytes stay buffered).
    func readHead(timeout: Double) throws -> Response {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let end = Self.headEnd(buffer) {
                let response = try Self.parseHead(Array(buffer[..<end]))
                buffer.removeFirst(end + 4)
                return response
            }
            switch readSome(timeout: max(0, deadline.timeIntervalSinceNow)) {
            case .data: continue
            case .timeout where Date() < deadline: continue
            case let other:
                throw RawConnection.Failure(
                    description:
                        "no response head (\(other)); got \(String(decoding: buffer.prefix(300), as: UTF8.self))"
                )
            }
        }
    }

    /// Reads a whole response with a Content-Length body.
    func readResponse(timeout: Double) throws -> Response {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let response = parsedResponse() { return response }
            switch readSome(timeout: max(0, deadline.timeIntervalSinceNow)) {
            case .data: continue
            case .timeout where Date() < deadline: continue
            case let other:
                throw RawConnection.Failure(
                    description:
                        "no whole response (\(other)); got \(String(decoding: buffer.prefix(300), as: UTF8.self))"
                )
            }
        }
    }

    /// A complete response at the front of the buffer (taken from it), if there is one.
    func parsedResponse() -> Response? {
        guard let end = Self.headEnd(buffer), var response = try? Self.parseHead(Array(buffer[..<end])) else {
            return nil
        }
        let length = response.header("content-length").flatMap { Int($0) } ?? 0
        guard buffer.count >= end + 4 + length else { return nil }
        response.body = Array(buffer[(end + 4)..<(end + 4 + length)])
        buffer.removeFirst(end + 4 + length)
        return response
    }

    /// Reads and drops everything until the end of the stream (or a reset) within `seconds`.
    func drainsToEnd(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            switch readSome(timeout: 0.5) {
            case .end, .reset: return true
            case .data: buffer.removeAll()
            case .timeout: continue
            }
        }
        return false
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10
        {
            return index
        }
        return nil
    }

    private static func parseHead(_ bytes: [UInt8]) throws -> Response {
        var lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw RawConnection.Failure(description: "bad status line in \(lines)")
        }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        return Response(status: status, headers: headers, body: [])
    }
}
