import Foundation
import MothershipTestSupport
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// The relay through the built binary: `mothership run` in front of real python ships on loopback,
/// driven by a raw socket client (so that every byte on the wire is ours), curl for TLS and
/// URLSession for /metrics.
@Suite("Relay end to end")
struct RelayEndToEndTests {
    // MARK: 1. Proxying over TCP

    @Test(.timeLimit(.minutes(1)))
    func proxiesOverTCPWithForwardingHeadersHopByHopRemovalAndStreamedBodies() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)

        // Forwarding headers added, hop-by-hop headers (and the ones `Connection` names) removed.
        let before = Date().timeIntervalSince1970
        let first = try await connection.exchange(
            RawConnection.request(
                "GET", "/hello?x=1", host: "shop.example:8443",
                ["Connection: foo, keep-alive", "Foo: bar", "Keep-Alive: timeout=5", "TE: trailers"]))
        #expect(first.status == 200)
        #expect(first.header("x-ship") == "web")
        // The ship's `Connection: keep-alive` and `Keep-Alive` describe its own hop: not passed on.
        #expect(first.header("keep-alive") == nil)
        #expect(first.header("connection") == nil)
        #expect(first.headers.filter { $0.name.lowercased() == "set-cookie" }.map(\.value) == ["a=1", "b=2"])
        let seen = try ShipEcho(first)
        #expect(seen.path == "/hello?x=1")
        #expect(seen.all("x-forwarded-for") == ["127.0.0.1"])
        #expect(seen.header("x-forwarded-proto") == "http")
        #expect(seen.header("x-forwarded-host") == "shop.example:8443")
        #expect(seen.header("host") == "shop.example:8443")
        let requestID = try #require(seen.header("x-request-id"))
        #expect(requestID.count == 32 && requestID.allSatisfy(\.isHexDigit), "\(requestID)")
        let start = try #require(seen.header("x-request-start"))
        #expect(start.hasPrefix("t="))
        let microseconds = try #require(Double(start.dropFirst(2)), "\(start)")
        #expect(abs(microseconds / 1_000_000 - before) < 30, "\(start) vs \(before)")
        #expect(seen.header("foo") == nil)
        #expect(seen.header("keep-alive") == nil)
        #expect(seen.header("te") == nil)
        #expect(!(seen.header("connection") ?? "").lowercased().contains("foo"))

        // Same connection: an existing X-Forwarded-For is appended to, an X-Request-Id is kept.
        let second = try await connection.exchange(
            RawConnection.request(
                "GET", "/again", ["X-Forwarded-For: 198.51.100.1", "X-Request-Id: caller-chosen-id"]))
        let secondSeen = try ShipEcho(second)
        #expect(secondSeen.all("x-forwarded-for") == ["198.51.100.1, 127.0.0.1"])
        #expect(secondSeen.all("x-request-id") == ["caller-chosen-id"])
        let third = try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/third")))
        #expect(third.header("x-request-id") != requestID)
        // One pooled keep-alive connection to the ship served all three.
        #expect(
            seen.peer == secondSeen.peer && secondSeen.peer == third.peer,
            "\([seen.peer, secondSeen.peer, third.peer])")

        // Bodiless answers keep the connection in step.
        for code in [204, 304] {
            let bodiless = try await connection.exchange(RawConnection.request("GET", "/status/\(code)"))
            #expect(bodiless.status == code)
            #expect(bodiless.body.isEmpty)
        }

        // A 1 MiB body with Content-Length, then one chunked: streamed through intact.
        let upload = RawConnection.pattern(1 << 20)
        let posted = try ShipEcho(
            try await connection.exchange(RawConnection.request("POST", "/upload", body: upload)))
        #expect(posted.method == "POST")
        #expect(posted.bodyLength == 1 << 20)
        #expect(posted.bodyOK)
        #expect(posted.header("content-length") == "\(1 << 20)")
        var chunked = RawConnection.request("POST", "/upload-chunked", ["Transfer-Encoding: chunked"])
        for offset in stride(from: 0, to: upload.count, by: 65_536) {
            let piece = upload[offset..<min(offset + 65_536, upload.count)]
            chunked += Array(String(piece.count, radix: 16).utf8) + [13, 10] + piece + [13, 10]
        }
        chunked += Array("0\r\n\r\n".utf8)
        let postedChunked = try ShipEcho(try await connection.exchange(chunked))
        #expect(postedChunked.bodyLength == 1 << 20)
        #expect(postedChunked.bodyOK)

        // A ship that answers before the body has all arrived: the rest of the body is dropped and
        // the connection serves the next request.
        let earlyBody = RawConnection.pattern(8_000_000)
        let early = try await connection.exchange(RawConnection.request("POST", "/early", body: earlyBody))
        #expect(early.status == 413)
        #expect(
            try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/after-early"))).path
                == "/after-early")

        // A 5 MB response arrives whole, a chunked one too; HEAD has the length and no body.
        let size = 5_000_000
        let big = try await connection.exchange(RawConnection.request("GET", "/big?n=\(size)"))
        #expect(big.status == 200)
        #expect(big.header("content-length") == "\(size)")
        #expect(big.body.count == size)
        #expect(big.body == RawConnection.pattern(size))
        let head = try await connection.exchange(RawConnection.request("HEAD", "/big?n=\(size)"))
        #expect(head.status == 200)
        #expect(head.header("content-length") == "\(size)")
        #expect(head.body.isEmpty)
        let streamed = try await connection.exchange(RawConnection.request("GET", "/chunked"))
        #expect(streamed.status == 200)
        #expect(String(decoding: streamed.body, as: UTF8.self) == "first,second,third")

        // A client that stops reading: the relay holds the ship back rather than buffering the body
        // (its memory stays flat under a 100 MB answer), and once it reads again nothing is lost.
        let stalled = try RawConnection(port: relay)
        let residentBefore = try #require(Self.residentKilobytes(of: mothership.pid))
        try await stalled.send(RawConnection.request("GET", "/big?n=100000000"))
        try await Task.sleep(for: .milliseconds(1500))
        let residentStalled = try #require(Self.residentKilobytes(of: mothership.pid))
        #expect(residentStalled - residentBefore < 40_000, "\(residentBefore) kB → \(residentStalled) kB")
        stalled.close()
        try await connection.send(RawConnection.request("GET", "/big?n=20000000"))
        try await Task.sleep(for: .milliseconds(700))
        let slow = try await connection.response()
        #expect(slow.body.count == 20_000_000)
        #expect(slow.body == RawConnection.pattern(20_000_000))

        // A ship answering HTTP/1.0 without a length (the body ends at its close): the client still
        // gets the whole body and keeps its connection.
        let closeDelimited = try await connection.exchange(RawConnection.request("GET", "/raw10"))
        #expect(closeDelimited.status == 200)
        #expect(closeDelimited.text == "close-delimited body")
        // The same with a body far larger than the relay holds, read late: the relay stops reading
        // the ship while the client is full, and the ship's close, arrived behind the bytes while
        // nobody read them, still ends the body once the client reads.
        try await connection.send(RawConnection.request("GET", "/rawbig?n=4000000"))
        try await Task.sleep(for: .milliseconds(700))
        let lateClose = try await connection.response()
        #expect(lateClose.status == 200 && lateClose.body == RawConnection.pattern(4_000_000))

        // Expect: 100-continue is answered at once, so the client need not wait before its body.
        try await connection.send(
            Array(
                "POST /expect HTTP/1.1\r\nHost: relay.test\r\nExpect: 100-continue\r\nContent-Length: 65536\r\n\r\n"
                    .utf8))
        let proceed = try await connection.response(timeout: 0.9)
        #expect(proceed.status == 100)
        try await connection.send(RawConnection.pattern(65_536))
        let expected = try ShipEcho(try await connection.response())
        #expect(expected.bodyLength == 65_536 && expected.bodyOK)
        #expect(expected.header("expect") == nil)

        // Pipelining: two requests in one write, answered in order on the same connection.
        try await connection.send(
            RawConnection.request("GET", "/pipelined-1") + RawConnection.request("GET", "/pipelined-2"))
        let pipelined = [try await connection.response(), try await connection.response()]
        #expect(try pipelined.map { try ShipEcho($0).path } == ["/pipelined-1", "/pipelined-2"])

        // Every exchange above used this one client connection.
        let last = try await connection.exchange(RawConnection.request("GET", "/last"))
        #expect(try ShipEcho(last).path == "/last")

        // An HTTP/1.0 client gets an HTTP/1.0 answer.
        let old = try RawConnection(port: relay)
        let oldResponse = try await old.exchange(Array("GET /old HTTP/1.0\r\nHost: relay.test\r\n\r\n".utf8))
        #expect(oldResponse.version == "HTTP/1.0")
        #expect(try ShipEcho(oldResponse).path == "/old")
        #expect(await old.closes(within: 5))
        // A chunked answer cannot be read by an HTTP/1.0 client: it gets the data, ended by the close.
        let oldChunked = try RawConnection(port: relay)
        let dechunked = try await oldChunked.exchange(
            Array("GET /chunked HTTP/1.0\r\nHost: relay.test\r\nConnection: keep-alive\r\n\r\n".utf8))
        #expect(dechunked.version == "HTTP/1.0" && dechunked.header("transfer-encoding") == nil)
        #expect(dechunked.header("connection") == "close")
        #expect(String(decoding: dechunked.body, as: UTF8.self) == "first,second,third")

        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: 2. A ship on a Unix socket

    @Test(.timeLimit(.minutes(1)))
    func aShipThatReadsSlowlyHoldsBackTheClientsUpload() async throws {
        // The other direction of backpressure from the stalled-client check above: while the ship
        // does not read, the relay stops reading the client (its memory stays flat under a 32 MB
        // upload: without backpressure it grows by about 25 MB), and once the ship reads the whole
        // body arrives intact.
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        #expect(try await connection.exchange(RawConnection.request("GET", "/warm")).status == 200)
        let size = 32_000_000
        let request = RawConnection.request("POST", "/slow-read?s=2", body: RawConnection.pattern(size))
        let residentBefore = try #require(Self.residentKilobytes(of: mothership.pid))
        let upload = Task { try await connection.send(request) }
        try await Task.sleep(for: .milliseconds(1500))
        let residentHeld = try #require(Self.residentKilobytes(of: mothership.pid))
        #expect(residentHeld - residentBefore < 12_000, "\(residentBefore) kB → \(residentHeld) kB")
        try await upload.value
        let answer = try ShipEcho(try await connection.response(timeout: 30))
        #expect(answer.bodyLength == size)
        #expect(answer.bodyOK)
    }

    @Test(.timeLimit(.minutes(1)))
    func proxiesToAShipListeningOnAUnixSocket() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let socket = directory.file("ship.sock")
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            local = "unix://\(directory.file("relay.sock"))"
            [[fleet.web]]
            name = "sock"
            command = "python3"
            args = ["ship.py", "unix", "sock", "\(socket)"]
            bind = "unix://\(socket)"
            healthcheck = "/"
            routes = ["http:/.*", "local:/.*"]
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        for path in ["/over/unix?q=1", "/second"] {
            let response = try await connection.exchange(RawConnection.request("GET", path))
            #expect(response.status == 200)
            let seen = try ShipEcho(response)
            #expect(seen.ship == "sock")
            #expect(seen.path == path)
            #expect(seen.header("x-forwarded-for") == "127.0.0.1")
        }
        let posted = try ShipEcho(
            try await connection.exchange(
                RawConnection.request("POST", "/upload", body: RawConnection.pattern(300_000))))
        #expect(posted.bodyLength == 300_000 && posted.bodyOK)
        let big = try await connection.exchange(RawConnection.request("GET", "/big?n=2000000"))
        #expect(big.body == RawConnection.pattern(2_000_000))

        // The relay itself listening on a Unix socket (no client IP to forward).
        let curl = try await Self.run(
            "curl",
            [
                "-s", "--max-time", "10", "--unix-socket", directory.file("relay.sock"),
                "http://local.test/via/socket",
                "http://local.test/again",
            ], in: directory.path)
        #expect(curl.status == 0, "\(curl.output)")
        let answers = curl.output.replacingOccurrences(of: "}{", with: "}\n{").split(separator: "\n")
        #expect(answers.count == 2, "\(curl.output)")
        let viaSocket = try ShipEcho(body: Array((answers.first ?? "").utf8))
        #expect(viaSocket.path == "/via/socket")
        #expect(viaSocket.header("x-forwarded-proto") == "http")
        #expect(viaSocket.header("x-forwarded-host") == "local.test")
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: directory.file("relay.sock")))
    }

    // MARK: 3. Routing

    @Test(.timeLimit(.minutes(1)))
    func routesInDeclarationOrderWithAnchoredPatternsStripPrefixAndUserAgentFilters() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        // `zeta` is declared before `alpha`: declaration order, not the groups' names, decides.
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship("api", group: "zeta", port: LoopbackPorts.free(), routes: """
                [
                  { bind = "http", pattern = "/api/.*", strip_prefix = "/api" },
                  { bind = "http", pattern = "/crawl/.*", ua_filter = "bot" },
                  "http:/shared/.*",
                ]
                """))
            \(Self.ship("site", group: "alpha", port: LoopbackPorts.free(), routes: """
                [
                  { bind = "http", pattern = "/api/special" },
                  { bind = "http", pattern = "/crawl/.*" },
                  "http:/shared/.*",
                  "http:/(about|home)",
                ]
                """))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        let cases: [(path: String, agent: String?, ship: String?, seenPath: String?)] = [
            ("/api/users?x=1", "curl/8.5.0", "api", "/users?x=1"),
            ("/api/special", firefox, "api", "/special"),
            ("/api/", firefox, "api", "/"),
            ("/api", firefox, nil, nil),
            ("/v2/api/x", firefox, nil, nil),
            ("/crawl/page", "curl/8.5.0", "api", "/crawl/page"),
            ("/crawl/page", firefox, "site", "/crawl/page"),
            ("/crawl/page", nil, "api", "/crawl/page"),
            ("/shared/x", firefox, "api", "/shared/x"),
            ("/about", firefox, "site", "/about"),
            ("/home", "curl/8.5.0", "site", "/home"),
            ("/aboutus", firefox, nil, nil),
            ("/nothing", firefox, nil, nil),
        ]
        for (path, agent, ship, seenPath) in cases {
            let response = try await connection.exchange(
                RawConnection.request("GET", path, agent.map { ["User-Agent: \($0)"] } ?? []))
            if let ship {
                #expect(response.status == 200, "\(path) \(agent ?? "-")")
                let seen = try ShipEcho(response)
                #expect(seen.ship == ship, "\(path) \(agent ?? "-")")
                #expect(seen.path == seenPath, "\(path) \(agent ?? "-")")
            } else {
                #expect(response.status == 404, "\(path) \(agent ?? "-"): \(response.text)")
                #expect(response.text.contains("no route"), "\(response.text)")
            }
        }
        // A body sent to no route is read and dropped; the connection goes on.
        let dropped = try await connection.exchange(
            RawConnection.request("POST", "/nothing", body: RawConnection.pattern(1 << 20)))
        #expect(dropped.status == 404)
        #expect(dropped.header("connection") == nil)
        let next = try await connection.exchange(RawConnection.request("GET", "/about"))
        #expect(try ShipEcho(next).ship == "site")
    }

    // MARK: 4. Upgrade tunnel

    @Test(.timeLimit(.minutes(1)))
    func tunnelsUpgradesBothWaysAndClosesAfterADeclinedOne() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship("web", port: LoopbackPorts.free(), routes: #"["http:/(ws|first|no-upgrade).*"]"#))
            """)
        defer { mothership.stop() }
        let upgrade = [
            "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
        let socket = try RawConnection(port: relay)
        let switched = try await socket.exchange(RawConnection.request("GET", "/ws/chat", upgrade))
        #expect(switched.status == 101)
        #expect(switched.header("upgrade")?.lowercased() == "websocket")
        #expect(switched.header("connection")?.lowercased() == "upgrade")
        #expect(switched.header("x-ship") == "web")
        // The ship wrote this in the same packet as its 101.
        #expect(try await socket.read(until: "hello-from-ship\n") == "hello-from-ship\n")
        try await socket.send(Array("ping\n".utf8))
        #expect(try await socket.read(until: "ping\n") == "ping\n")
        let payload = RawConnection.pattern(256 * 1024)
        try await socket.send(payload)
        #expect(try await socket.read(count: payload.count) == payload)
        try await socket.send(Array("after the big one\n".utf8))
        #expect(try await socket.read(until: "\n") == "after the big one\n")

        // An upgrade as the second request of a keep-alive connection.
        let later = try RawConnection(port: relay)
        #expect(try await later.exchange(RawConnection.request("GET", "/first")).status == 200)
        let laterSwitch = try await later.exchange(RawConnection.request("GET", "/ws/later", upgrade))
        #expect(laterSwitch.status == 101)
        #expect(try await later.read(until: "hello-from-ship\n") == "hello-from-ship\n")
        try await later.send(Array("pong\n".utf8))
        #expect(try await later.read(until: "pong\n") == "pong\n")
        // The ship ends the tunnel: the client's connection closes.
        try await later.send(Array("close\n".utf8))
        #expect(await later.closes(within: 5))

        // A ship that answers an Upgrade request with a plain 200: the answer reaches the client, then
        // the connection closes (its request stream cannot be parsed past an Upgrade request).
        let declined = try RawConnection(port: relay)
        let plain = try await declined.exchange(RawConnection.request("GET", "/no-upgrade-here", upgrade))
        #expect(plain.status == 200)
        #expect(try ShipEcho(plain).header("upgrade") == "websocket")
        #expect(plain.header("connection")?.lowercased() == "close")
        #expect(await declined.closes(within: 5))

        // The same for an Upgrade the relay answers itself.
        let unrouted = try RawConnection(port: relay)
        let notFound = try await unrouted.exchange(RawConnection.request("GET", "/nowhere/ws", upgrade))
        #expect(notFound.status == 404)
        #expect(notFound.header("connection")?.lowercased() == "close")
        #expect(await unrouted.closes(within: 5))
    }

    // MARK: 5. Not ready: 503

    @Test(.timeLimit(.minutes(1)))
    func answers503WithRetryAfterAtOnceWhileTheShipIsNotReady() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        // Nothing listens on the ship's bind: its health check never passes during the long start.
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "exec sleep 300"]
            bind = "127.0.0.1:\(LoopbackPorts.free())"
            healthcheck = "/up"
            start_timeout = "5m"
            routes = ["http:/.*"]
            """, waitingFor: ["listening on"])
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        // The first request may meet a relay still busy starting (a loaded machine); the bound that
        // matters is the one below, far from the 5 minutes the ship has to start.
        let warmUp = try await connection.exchange(RawConnection.request("GET", "/warm-up"))
        #expect(warmUp.status == 503)
        for method in ["GET", "POST", "HEAD"] {
            let (response, elapsed) = try await connection.timedExchange(
                RawConnection.request(method, "/any", body: method == "POST" ? Array("x=1".utf8) : nil))
            #expect(response.status == 503, "\(response.text)")
            #expect(response.header("retry-after") == "1")
            #expect(elapsed < .seconds(1), "\(elapsed)")
            if method == "HEAD" {
                #expect(response.body.isEmpty)
            } else {
                #expect(response.text.contains("ship 'web' is not ready"), "\(response.text)")
            }
        }
        #expect(!mothership.output.contains("lifecycle: Running"))
    }

    // MARK: 6. Refused: 502, then the circuit breaker

    /// SPEC §4 retries only what failed before reaching the ship. The one exception we make: a pooled
    /// keep-alive connection the ship closed as the head went out, for an idempotent method.
    @Test(.timeLimit(.minutes(1)))
    func aDroppedPooledConnectionIsRetriedForGETButNeverReplaysAPOST() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship(
                "web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#, mode: "secondhangup", healthcheck: false))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        let first = try await connection.exchange(RawConnection.request("GET", "/a"))
        #expect(first.status == 200 && first.text == "/a", "\(first.text)")

        // /a's upstream connection is pooled; the ship drops it on /b: retried on a fresh one.
        let retried = try await connection.exchange(RawConnection.request("GET", "/b"))
        #expect(retried.status == 200 && retried.text == "/b", "\(retried.text)")
        let afterGET = try await mothership.waitFor("second-hangup 1 GET /b")
        #expect(
            afterGET.contains("second-hangup 2 GET /b"), "the retry must follow a dropped pooled connection")

        // /b's fresh connection is pooled now; the ship drops it on the POST: 502, sent once only.
        let posted = try await connection.exchange(RawConnection.request("POST", "/c"))
        #expect(posted.status == 502, "\(posted.text)")
        try await Task.sleep(for: .milliseconds(300))  // a replay, if any, would have arrived by now
        let received = mothership.lines.filter { $0.contains("second-hangup") && $0.hasSuffix(" POST /c") }
        #expect(received.count == 1, "\(mothership.output)")
    }

    @Test(.timeLimit(.minutes(1)))
    func answers502AtOnceWhenAReadyShipRefusesAndOpensTheBreakerAfterFive() async throws {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        // Accepts the readiness probe (so it is ready), then closes its listener for good.
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship("web", port: port, routes: #"["http:/.*"]"#, mode: "refuse", healthcheck: false))
            """, waitingFor: ["lifecycle: Running", "listener-closed"])
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        for attempt in 1...5 {
            let (response, elapsed) = try await connection.timedExchange(
                RawConnection.request("GET", "/refused-\(attempt)"))
            #expect(response.status == 502, "attempt \(attempt): \(response.text)")
            #expect(response.text.contains("ship 'web'"), "\(response.text)")
            // (The first request may meet a relay still busy starting on a loaded machine.)
            #expect(elapsed < (attempt == 1 ? .seconds(5) : .seconds(2)), "attempt \(attempt): \(elapsed)")
        }
        // Five failed requests in a row: the breaker answers for the ship without trying it.
        let open = try await connection.exchange(RawConnection.request("GET", "/breaker"))
        #expect(open.status == 503, "\(open.text)")
        let retryAfter = try #require(open.header("retry-after").flatMap { Int($0) }, "\(open.headers)")
        #expect(retryAfter >= 1 && retryAfter <= 30)
        #expect(open.text.contains("circuit open"), "\(open.text)")
    }

    // MARK: 7. Slow and silent ships: 504 and friends

    /// The first-byte timeout (60 s → 504) is too long for a test and the binary has no knob for it;
    /// instead: a connect that cannot complete gives 504 after the 5 s connect timeout, a ship that
    /// accepts and never answers holds only its own request (no early 502/504, other requests are
    /// served, a client that gives up frees the upstream connection), and a ship that hangs up
    /// without answering gives 502.
    @Test(.timeLimit(.minutes(1)))
    func slowAndSilentShipsGive504Or502AndHoldUpNobodyElse() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let misbehaving = ["backlog", "silent", "hangup"].map { mode in
            Self.ship(
                mode, port: LoopbackPorts.free(), routes: "[\"http:/\(mode)\"]", mode: mode,
                healthcheck: false)
        }.joined(separator: "\n")
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(misbehaving)
            \(Self.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """)
        defer { mothership.stop() }

        // The backlog ship's one-connection listen queue is full (the readiness probe sits in it and
        // it never accepts), so connecting cannot complete.
        let backlog = try RawConnection(port: relay)
        let backlogSent = try await backlog.sendTimed(RawConnection.request("GET", "/backlog"))

        let silent = try RawConnection(port: relay)
        try await silent.send(RawConnection.request("GET", "/silent"))
        try await mothership.waitFor("silent-accepted")

        let hangup = try RawConnection(port: relay)
        let (hungUp, hangupTime) = try await hangup.timedExchange(RawConnection.request("GET", "/hangup"))
        #expect(hungUp.status == 502, "\(hungUp.text)")
        #expect(hangupTime < .seconds(2), "\(hangupTime)")

        // Others are served meanwhile.
        let other = try RawConnection(port: relay)
        for index in 1...3 {
            let response = try await other.exchange(RawConnection.request("GET", "/meanwhile-\(index)"))
            #expect(try ShipEcho(response).ship == "web")
        }
        // `other` is kept alive after a proxied answer: its connect times out too.
        let keptSent = try await other.sendTimed(RawConnection.request("GET", "/backlog"))
        #expect(await silent.isSilent(for: 1.0), "the relay answered a request the ship never answered")

        // The elapsed time is measured when the test reads the answer, after its own steps above:
        // its upper bound says something about the relay only when those steps were quick (on a
        // loaded machine they can take longer than the timeout itself).
        let readingBacklog = ContinuousClock.now
        let timedOut = try await backlog.response(timeout: 15)
        let elapsed = ContinuousClock.now - backlogSent
        #expect(timedOut.status == 504, "\(timedOut.text)")
        #expect(timedOut.text.contains("no connection within 5s"), "\(timedOut.text)")
        #expect(elapsed > .seconds(4), "\(elapsed)")
        if readingBacklog - backlogSent < .seconds(5) { #expect(elapsed < .seconds(10), "\(elapsed)") }
        let readingKept = ContinuousClock.now
        let keptTimedOut = try await other.response(timeout: 15)
        let keptElapsed = ContinuousClock.now - keptSent
        #expect(keptTimedOut.status == 504, "\(keptTimedOut.text)")
        #expect(keptTimedOut.text.contains("no connection within 5s"), "\(keptTimedOut.text)")
        #expect(keptElapsed > .seconds(4), "\(keptElapsed)")
        if readingKept - keptSent < .seconds(5) { #expect(keptElapsed < .seconds(10), "\(keptElapsed)") }

        // The client gives up: the relay closes its connection to the ship.
        silent.close()
        try await mothership.waitFor("silent-closed", timeout: .seconds(5))
    }

    // MARK: 8. Malformed and oversized requests

    @Test(.timeLimit(.minutes(1)))
    func malformedAndOversizedRequestsAreRefusedWithoutDisturbingOtherConnections() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let steady = try RawConnection(port: relay)
        #expect(try await steady.exchange(RawConnection.request("GET", "/before")).status == 200)

        func refused(_ bytes: [UInt8], _ label: String) async throws -> RawResponse {
            let connection = try RawConnection(port: relay)
            try? await connection.send(bytes)
            let response = try await connection.response()
            #expect(response.header("connection")?.lowercased() == "close", "\(label): \(response.headers)")
            #expect(await connection.closes(within: 5), "\(label): connection left open")
            // The steady keep-alive connection is still served.
            let check = try await steady.exchange(RawConnection.request("GET", "/after-\(label)"))
            #expect(check.status == 200, "\(label)")
            return response
        }

        #expect(try await refused(Array("GARBAGE\r\n\r\n".utf8), "garbage").status == 400)
        #expect(
            try await refused(Array("GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n".utf8), "bad-header")
                .status == 400)
        let smuggled =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        #expect(try await refused(Array(smuggled.utf8), "cl-and-te").status == 400)
        let longURI = "/" + String(repeating: "a", count: 9 * 1024)
        #expect(try await refused(RawConnection.request("GET", longURI), "uri-9k").status == 414)
        let longerURI = "/" + String(repeating: "a", count: 40 * 1024)
        #expect(try await refused(RawConnection.request("GET", longerURI), "uri-40k").status == 414)
        // Beyond the decoder's 64 KiB field limit: the request-line guard answers before the decoder.
        let hugeURI = "/" + String(repeating: "a", count: 80 * 1024)
        #expect(try await refused(RawConnection.request("GET", hugeURI), "uri-80k").status == 414)
        let fields = (1...101).map { "X-Field-\($0): v" }
        #expect(try await refused(RawConnection.request("GET", "/", fields), "101-fields").status == 431)
        let bigBlock = (1...10).map { "X-Big-\($0): " + String(repeating: "b", count: 7 * 1024) }
        #expect(try await refused(RawConnection.request("GET", "/", bigBlock), "70k-block").status == 431)
        let oneHugeField = ["X-Huge: " + String(repeating: "h", count: 66 * 1024)]
        #expect(try await refused(RawConnection.request("GET", "/", oneHugeField), "66k-field").status == 431)

        // Just inside the limits: served.
        let hundred = (1...99).map { "X-Field-\($0): v" }  // plus Host: 100 fields
        let atLimit = try await steady.exchange(RawConnection.request("GET", "/hundred", hundred))
        #expect(atLimit.status == 200)
        #expect(try ShipEcho(atLimit).header("x-field-99") == "v")
        let largeBlock = (1...8).map { "X-Big-\($0): " + String(repeating: "b", count: 7 * 1024) }
        #expect(try await steady.exchange(RawConnection.request("GET", "/56k", largeBlock)).status == 200)
        let longButFine = "/" + String(repeating: "a", count: 8000)
        #expect(try await steady.exchange(RawConnection.request("GET", longButFine)).status == 200)
    }

    // MARK: 9. TLS

    @Test(.timeLimit(.minutes(1)))
    func terminatesTLSAndTellsTheShipTheSchemeWasHTTPS() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneTLSShip(in: directory)
        defer { mothership.stop() }
        // Two URLs in one curl: the second reuses the TLS connection.
        let curl = try await Self.run(
            "curl",
            [
                "-sk", "--max-time", "10", "-H", "Host: secure.example",
                "https://127.0.0.1:\(relay)/secure?a=1",
                "https://127.0.0.1:\(relay)/big?n=300000", "-w",
                "\n%{http_code} %{num_connects} %{size_download}\n",
            ], in: directory.path)
        #expect(curl.status == 0, "\(curl.output)")
        let firstLine = try #require(curl.output.split(separator: "\n").first, "\(curl.output)")
        let seen = try ShipEcho(body: Array(firstLine.utf8))
        #expect(seen.path == "/secure?a=1")
        #expect(seen.header("x-forwarded-proto") == "https")
        #expect(seen.header("x-forwarded-host") == "secure.example")
        #expect(seen.header("x-forwarded-for") == "127.0.0.1")
        #expect(
            curl.output.contains("\n200 0 300000\n"), "second request reused the connection: \(curl.output)")

        // Plain HTTP on the TLS port is not answered as HTTP, and the listener keeps serving.
        let plain = try RawConnection(port: relay)
        try? await plain.send(RawConnection.request("GET", "/plain"))
        #expect(await plain.closes(within: 5))
        let again = try await Self.run(
            "curl", ["-sk", "--max-time", "10", "https://127.0.0.1:\(relay)/again"], in: directory.path)
        #expect(try ShipEcho(body: Array(again.output.utf8)).path == "/again")
    }

    /// A WebSocket tunnel on a TLS bind (SwiftNIO's driver, not a worker's splice): bytes both
    /// ways, then the client's close (the relay closes the ship's side once its writes are out),
    /// then the ship's close (the client's connection closes), and the bind still serves.
    @Test(.timeLimit(.minutes(1)))
    func tunnelsOverTLSAndClosesFromEitherEnd() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneTLSShip(in: directory)
        defer { mothership.stop() }
        let client = """
            import socket, ssl
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE

            def tunnel(path):
                s = context.wrap_socket(socket.create_connection(("127.0.0.1", \(relay)), timeout=20))
                s.sendall(b"GET " + path + b" HTTP/1.1\\r\\nHost: a\\r\\nConnection: Upgrade\\r\\n"
                          + b"Upgrade: websocket\\r\\n\\r\\n")
                data = b""
                while b"hello-from-ship\\n" not in data:
                    chunk = s.recv(65536)
                    assert chunk, "closed before the ship's greeting: %r" % data
                    data += chunk
                assert data.startswith(b"HTTP/1.1 101 "), data
                return s

            def until_closed(s):
                rest = b""
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            return rest
                        rest += chunk
                except (ssl.SSLError, ConnectionResetError):
                    return rest

            first = tunnel(b"/ws/first")
            payload = bytes((i * 31 + (i >> 12)) & 255 for i in range(300000))
            first.sendall(payload)
            echoed = b""
            while len(echoed) < len(payload):
                chunk = first.recv(65536)
                assert chunk, "closed after %d bytes" % len(echoed)
                echoed += chunk
            assert echoed == payload, "the echoed bytes differ"
            first.close()

            second = tunnel(b"/ws/second")
            second.sendall(b"close\\n")
            assert until_closed(second) == b"", "bytes after the ship's close"
            print("both closed")

            third = tunnel(b"/ws/third")
            third.sendall(b"ping\\n")
            echoed = b""
            while not echoed.endswith(b"ping\\n"):
                chunk = third.recv(65536)
                assert chunk, "closed before the echo"
                echoed += chunk
            third.close()
            print("still serving")
            """
        let run = try await Self.run("python3", ["-c", client], in: directory.path)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("both closed\nstill serving"), "\(run.output)")
    }

    // MARK: 10. PROXY protocol

    @Test(.timeLimit(.minutes(1)))
    func honoursProxyProtocolFromTrustedPeersOnly() async throws {
        let trustedPort = LoopbackPorts.free()
        let strictPort = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            lb = { addr = "127.0.0.1:\(trustedPort)", proxy_protocol = true, trusted_proxies = ["127.0.0.0/8"] }
            strict = { addr = "127.0.0.1:\(strictPort)", proxy_protocol = true, trusted_proxies = ["10.0.0.0/8"] }
            \(Self.ship("web", port: LoopbackPorts.free(), routes: #"["lb:/.*", "strict:/.*"]"#))
            """)
        defer { mothership.stop() }

        // v1, then a second request on the same connection keeps the client address.
        let v1 = try RawConnection(port: trustedPort)
        let viaV1 = try await v1.exchange(
            Array("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".utf8) + RawConnection.request("GET", "/v1"))
        #expect(try ShipEcho(viaV1).all("x-forwarded-for") == ["203.0.113.7"])
        let viaV1Again = try await v1.exchange(RawConnection.request("GET", "/v1-again"))
        #expect(try ShipEcho(viaV1Again).all("x-forwarded-for") == ["203.0.113.7"])
        // A header only counts as a connection's first bytes: sent on a kept-alive connection it is
        // a malformed request (400, closed), and no address is taken from it.
        let late = try await v1.exchange(
            Array("PROXY TCP4 198.51.100.66 127.0.0.1 5555 80\r\n".utf8)
                + RawConnection.request("GET", "/late"))
        #expect(late.status == 400, "\(late.text)")
        #expect(await v1.closes(within: 5))
        #expect(!mothership.output.contains("/late"))

        // A malformed header, and a v1 line longer than the protocol allows, close the connection
        // with nothing served.
        for hostile in [
            "PROXY TCP4 203.0.113.7 not-an-address 5555 80\r\n",
            "PROXY TCP4 " + String(repeating: "9", count: 200) + "\r\n",
        ] {
            let refused = try RawConnection(port: trustedPort)
            try? await refused.send(Array(hostile.utf8) + RawConnection.request("GET", "/hostile"))
            #expect(await refused.closes(within: 5))
            #expect(refused.received.isEmpty, "\(String(decoding: refused.received, as: UTF8.self))")
        }
        #expect(!mothership.output.contains("/hostile"))

        // v1 header split across writes.
        let split = try RawConnection(port: trustedPort)
        try await split.send(Array("PROXY TCP4 192.0".utf8))
        try await Task.sleep(for: .milliseconds(100))
        let viaSplit = try await split.exchange(
            Array(".2.44 127.0.0.1 5555 80\r\n".utf8) + RawConnection.request("GET", "/split"))
        #expect(try ShipEcho(viaSplit).all("x-forwarded-for") == ["192.0.2.44"])

        // v2 (binary): PROXY, TCP over IPv4, 198.51.100.9:4242 → 127.0.0.1:80.
        let v2Header: [UInt8] =
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C]
            + [198, 51, 100, 9, 127, 0, 0, 1, 0x10, 0x92, 0x00, 0x50]
        let v2 = try RawConnection(port: trustedPort)
        let viaV2 = try await v2.exchange(v2Header + RawConnection.request("GET", "/v2"))
        #expect(try ShipEcho(viaV2).all("x-forwarded-for") == ["198.51.100.9"])

        // Without a header the peer is the client.
        let direct = try RawConnection(port: trustedPort)
        let viaDirect = try await direct.exchange(RawConnection.request("GET", "/direct"))
        #expect(try ShipEcho(viaDirect).all("x-forwarded-for") == ["127.0.0.1"])

        // A header from outside trusted_proxies closes the connection; no header is served.
        let untrusted = try RawConnection(port: strictPort)
        try? await untrusted.send(
            Array("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".utf8)
                + RawConnection.request("GET", "/spoof"))
        #expect(await untrusted.closes(within: 5))
        #expect(untrusted.received.isEmpty, "\(String(decoding: untrusted.received, as: UTF8.self))")
        let honest = try RawConnection(port: strictPort)
        let viaHonest = try await honest.exchange(RawConnection.request("GET", "/honest"))
        #expect(try ShipEcho(viaHonest).all("x-forwarded-for") == ["127.0.0.1"])
        #expect(!mothership.output.contains("/spoof"))
    }

    // MARK: 12. A ship that crashes and comes back

    @Test(.timeLimit(.minutes(1)))
    func aCrashedShipIs502Then503WhileItRestartsThenServedAgain() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#,
                  extra: "critical = false"))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        let before = try ShipEcho(try await connection.exchange(RawConnection.request("GET", "/before")))
        // The ship dies while handling this one (with a body: not retried).
        let crashed = try await connection.exchange(RawConnection.request("POST", "/crash", body: [1, 2, 3]))
        #expect(crashed.status == 502, "\(crashed.text)")
        var seen: [Int] = []
        var after: ShipEcho?
        let deadline = ContinuousClock.now + .seconds(15)
        while after == nil && ContinuousClock.now < deadline {
            let poll = try RawConnection(port: relay)
            let response = try await poll.exchange(RawConnection.request("GET", "/after"))
            seen.append(response.status)
            if response.status == 503 { #expect(response.header("retry-after") == "1") }
            if response.status == 200 { after = try ShipEcho(response) }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(seen.allSatisfy { [200, 502, 503].contains($0) }, "\(seen)")
        let restarted = try #require(after, "never served again: \(seen)")
        #expect(restarted.pid != before.pid)
        #expect(mothership.output.contains("restart #1"), "\(mothership.output)")
    }

    // MARK: Landing

    @Test(.timeLimit(.minutes(1)))
    func sigtermLetsAnInFlightRequestFinishAndStopsAccepting() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneShip(in: directory)
        defer { mothership.stop() }
        let idle = try RawConnection(port: relay)
        #expect(try await idle.exchange(RawConnection.request("GET", "/idle")).status == 200)
        let busy = try RawConnection(port: relay)
        // The ship answers after 3 s: the drain must reach this connection before the answer does,
        // which under a loaded machine (the whole suite in parallel) once took over 1.2 s. The signal
        // goes from the sending thread: resuming this task after the send could take longer.
        try await busy.send(RawConnection.request("GET", "/sleep?s=3"), thenAfter: 0.3) {
            mothership.signal(SIGTERM)
        }
        // The idle keep-alive connection is closed, new connections are refused…
        #expect(await idle.closes(within: 5))
        try await Task.sleep(for: .milliseconds(200))
        #expect(throws: (any Error).self) { try RawConnection(port: relay) }
        // …and the request in flight gets its whole answer, then the connection closes.
        let answer = try await busy.response()
        #expect(answer.status == 200)
        #expect(try ShipEcho(answer).path == "/sleep?s=3")
        #expect(answer.header("connection")?.lowercased() == "close")
        #expect(await busy.closes(within: 5))
        #expect(try await mothership.waitForExit() == 0)
    }

    // MARK: 11. Metrics

    @Test(.timeLimit(.minutes(1)))
    func countsProxiedRequestsPerRouteAndShipInMetrics() async throws {
        let relay = LoopbackPorts.free()
        let metricsPort = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Self.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metricsPort)
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship("web", port: LoopbackPorts.free(), routes: #"["http:/(count|burst).*"]"#))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        for index in 1...3 {
            #expect(
                try await connection.exchange(RawConnection.request("GET", "/count-\(index)")).status == 200)
        }
        // And a burst of 40 connections at once.
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 1...40 {
                group.addTask {
                    let burst = try RawConnection(port: relay)
                    return try await burst.exchange(RawConnection.request("GET", "/burst-\(index)")).status
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 40))
        // Not counted: requests no route matched.
        #expect(try await connection.exchange(RawConnection.request("GET", "/elsewhere")).status == 404)
        let series = #"mothership_requests_total{route="/(count|burst).*",ship="web"}"#
        var metrics = ""
        try await mothership.waitUntil("43 requests counted", timeout: .seconds(5)) {
            metrics = try Self.fetch("http://127.0.0.1:\(metricsPort)/metrics")
            return metrics.contains(series + " 43")
        }
        // Each proxied request's duration, in one histogram per route and ship.
        let labels = #"route="/(count|burst).*",ship="web""#
        #expect(metrics.contains("# TYPE mothership_request_duration_seconds histogram\n"), "\(metrics)")
        #expect(
            metrics.contains("mothership_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} 43\n"),
            "\(metrics)")
        #expect(metrics.contains("mothership_request_duration_seconds_count{\(labels)} 43\n"), "\(metrics)")
    }

    /// SPEC §5.5: every request's JA4H is logged at debug with its method, path and UA class. The
    /// request is the one curl really sent (see JA4HTests), fingerprinted independently.
    @Test(.timeLimit(.minutes(1)))
    func logsEachRequestsJA4HFingerprintAtDebug() async throws {
        let directory = try Self.directory()
        defer { directory.remove() }
        let (relay, mothership) = try await Self.launchWithOneShip(
            in: directory, arguments: ["--log-level", "debug"])
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        let captured =
            "GET /products?id=7 HTTP/1.1\r\nHost: 127.0.0.1:24999\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
            + "Referer: http://shop.example/start\r\nCookie: session=a1b2c3; theme=dark; _ga=GA1.2.345\r\n"
            + "Accept-Language: de-CH,de;q=0.9,en;q=0.8\r\n\r\n"
        #expect(try await connection.exchange(Array(captured.utf8)).status == 200)
        let fingerprint = "ge11cr04dech_8ddaef5d77af_a0604f4d751d_d4f08a937864"
        let output = try await mothership.waitFor(fingerprint)
        let line = output.split(separator: "\n").first { $0.contains(fingerprint) }.map(String.init) ?? ""
        #expect(line.contains("/products"), "\(line)")
        #expect(line.contains("bot"), "curl is in the bot class: \(line)")
    }

    // MARK: - Fleet helpers

    /// A temporary directory holding the python ship.
    static func directory() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-relay")
        try directory.write("ship.py", shipScript)
        return directory
    }

    /// Writes the manifest, starts mothership and waits for `texts` in its output.
    static func launch(
        in directory: TemporaryDirectory, _ manifest: String, arguments: [String] = [],
        environment: [String: String] = [:], waitingFor texts: [String] = ["lifecycle: Running"]
    ) async throws -> RunningMothership {
        try directory.write("ship-manifest.toml", Self.underTest(manifest))
        let mothership = try RunningMothership(arguments, in: directory.path, environment: environment)
        do {
            for text in texts {
                // Generous: a loaded machine may take long to start python ships and bays.
                try await mothership.waitUntil(
                    "output containing \(text.debugDescription)", timeout: .seconds(60)
                ) {
                    mothership.output.contains(text) || !mothership.process.isRunning
                }
                if !mothership.output.contains(text) {
                    throw RawConnection.Failure(description: "mothership exited:\n\(mothership.output)")
                }
            }
        } catch {
            mothership.stop()
            throw error
        }
        return mothership
    }

    /// The relay's driver configuration the suite runs against: `MOTHERSHIP_TEST_RELAY_WORKERS=N`
    /// sets `relay_workers` in every manifest that does not set it (CI runs the end-to-end suites
    /// with the default, one worker per core, and again with one worker); unset, the default.
    static func underTest(_ manifest: String) -> String {
        guard let workers = ProcessInfo.processInfo.environment["MOTHERSHIP_TEST_RELAY_WORKERS"],
            !manifest.contains("relay_workers")
        else { return manifest }
        if let table = manifest.range(of: "[mothership]\n") {
            return manifest.replacingCharacters(in: table, with: "[mothership]\nrelay_workers = \(workers)\n")
        }
        return "[mothership]\nrelay_workers = \(workers)\n\n" + manifest
    }

    /// A relay on a free port in front of one ship, `web` (`ship.py http`), routed `/.*`.
    static func launchWithOneShip(
        in directory: TemporaryDirectory, arguments: [String] = []
    ) async throws -> (relay: Int, mothership: RunningMothership) {
        let relay = LoopbackPorts.free()
        let mothership = try await launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(ship("web", port: LoopbackPorts.free(), routes: #"["http:/.*"]"#))
            """, arguments: arguments)
        return (relay, mothership)
    }

    /// A self-signed certificate for `name`, valid for a day: `cert.pem` and `key.pem` in `directory`.
    static func makeCertificate(in directory: TemporaryDirectory, for name: String = "localhost") async throws
    {
        let made = try await run(
            "openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                "-days", "1", "-subj", "/CN=\(name)",
            ], in: directory.path)
        try #require(made.status == 0, "\(made.output)")
    }

    /// A relay whose one bind, `https`, terminates TLS with a new certificate, and a ship `web` on
    /// every path.
    static func launchWithOneTLSShip(
        in directory: TemporaryDirectory
    ) async throws -> (relay: Int, mothership: RunningMothership) {
        try await makeCertificate(in: directory)
        let relay = LoopbackPorts.free()
        let mothership = try await launch(
            in: directory,
            """
            [mothership.bind]
            https = { addr = "127.0.0.1:\(relay)", tls = { cert = "cert.pem", key = "key.pem" } }
            \(ship("web", port: LoopbackPorts.free(), routes: #"["https:/.*"]"#))
            """)
        return (relay, mothership)
    }

    /// A `[[fleet.GROUP]]` ship running `ship.py MODE NAME PORT`.
    static func ship(
        _ name: String, group: String = "web", port: Int, routes: String, mode: String = "http",
        healthcheck: Bool = true, extra: String = ""
    ) -> String {
        """
        [[fleet.\(group)]]
        name = "\(name)"
        command = "python3"
        args = ["ship.py", "\(mode)", "\(name)", "\(port)"]
        bind = "127.0.0.1:\(port)"
        \(healthcheck ? #"healthcheck = "/""# : "")
        routes = \(routes)
        \(extra)
        """
    }

    /// VmRSS of a process, in kB.
    static func residentKilobytes(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }

    struct ToolOutcome: Sendable {
        var status: Int32
        var output: String
    }

    /// Runs a command-line tool (found on PATH) to completion, off the cooperative pool.
    static func run(_ tool: String, _ arguments: [String], in directory: String) async throws -> ToolOutcome {
        try await RawConnection.offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [tool] + arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return ToolOutcome(
                status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
        }
    }

    /// A GET with URLSession, synchronously (for polling inside `waitUntil`).
    static func fetch(_ url: String) throws -> String {
        final class Box: @unchecked Sendable { var text = "" }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: URL(string: url)!) { data, _, _ in
            box.text = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 5)
        return box.text
    }

    /// The ships: `http NAME PORT` and `unix NAME PATH` answer every request with what they saw as
    /// JSON (`/big?n=N` sends N pattern bytes, `/chunked` a chunked body, an Upgrade to `/ws…` is
    /// accepted and echoed); `silent`, `hangup`, `refuse` and `backlog` misbehave as their names say.
    static let shipScript = #"""
        import http.client, json, os, socket, socketserver, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        MODE, NAME = sys.argv[1], sys.argv[2]
        http.client._MAXHEADERS = 1000  # the relay's limit is under test, not python's

        def pattern(n):
            block = bytes(i % 251 for i in range(251))
            return (block * (n // 251 + 1))[:n]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                sys.stderr.write("%s %s\n" % (NAME, format % args))

            def read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def reply(self, status, body, content_type="application/json", extra=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def upgrade(self):
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + self.headers["Upgrade"].encode()
                                 + b"\r\nConnection: Upgrade\r\nX-Ship: " + NAME.encode()
                                 + b"\r\n\r\nhello-from-ship\n")
                while True:
                    data = self.rfile.read1(65536)
                    if not data or data == b"close\n":
                        break
                    self.wfile.write(data)
                self.close_connection = True

            def handle_any(self):
                if self.headers.get("Upgrade") and self.path.startswith("/ws"):
                    return self.upgrade()
                if self.path.startswith("/slow-read"):
                    # Reads the body only after a pause: the relay must hold the client back.
                    time.sleep(float(self.path.split("s=")[1]))
                if self.path.startswith("/early"):
                    # Answers before reading the body (an early 413), then reads it.
                    self.reply(413, b"too large", "text/plain")
                    self.read_body()
                    return
                body = self.read_body()
                if self.path.startswith("/big"):
                    n = int(self.path.split("n=")[1])
                    return self.reply(200, pattern(n), "application/octet-stream")
                if self.path.startswith("/sleep"):
                    time.sleep(float(self.path.split("s=")[1]))
                if self.path.startswith("/status/"):
                    self.send_response(int(self.path.split("/")[2]))
                    self.end_headers()
                    return
                if self.path.startswith("/crash"):
                    os._exit(3)
                if self.path.startswith("/rawbig"):
                    n = int(self.path.split("n=")[1])
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + pattern(n))
                    self.close_connection = True
                    return
                if self.path.startswith("/raw10"):
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body")
                    self.close_connection = True
                    return
                if self.path.startswith("/chunked"):
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"first,", b"second,", b"third"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                        time.sleep(0.05)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                answer = {
                    "ship": NAME, "pid": os.getpid(), "peer": str(self.client_address),
                    "method": self.command, "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body_length": len(body), "body_ok": body == pattern(len(body)),
                }
                self.reply(200, json.dumps(answer).encode(),
                           extra=[("X-Ship", NAME), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
                                  ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any

        class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        if MODE == "http":
            server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3])), Handler)
            server.daemon_threads = True
            server.serve_forever()
        elif MODE == "unix":
            path = sys.argv[3]
            if os.path.exists(path):
                os.unlink(path)
            UnixServer(path, Handler).serve_forever()
        elif MODE == "silent":
            # Accepts and reads, never answers; says when the other side closes.
            listener = socket.create_server(("127.0.0.1", int(sys.argv[3])))
            held = []
            def drain(c):
                data = b""
                try:
                    data = c.recv(65536)
                    if data:
                        print("silent-accepted", flush=True)
                        while c.recv(65536):
                            pass
                except OSError:
                    pass
                if data:
                    print("silent-closed", flush=True)
            while True:
                c, _ = listener.accept()
                held.append(c)
                threading.Thread(target=drain, args=(c,), daemon=True).start()
        elif MODE == "hangup":
            # Reads a request head, then closes without answering.
            listener = socket.create_server(("127.0.0.1", int(sys.argv[3])))
            while True:
                c, _ = listener.accept()
                c.settimeout(2)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        print("hangup-request", flush=True)
                except OSError:
                    pass
                c.close()
        elif MODE == "secondhangup":
            # Answers the first request of each connection (keep-alive); reads the second, then closes
            # without answering: a pooled connection the ship dropped just as it was reused.
            listener = socket.create_server(("127.0.0.1", int(sys.argv[3])))
            def serve(c):
                served, data = 0, b""
                try:
                    while True:
                        while b"\r\n\r\n" not in data:
                            chunk = c.recv(65536)
                            if not chunk:
                                return
                            data += chunk
                        head, _, data = data.partition(b"\r\n\r\n")
                        lines = head.decode().split("\r\n")
                        method, path = lines[0].split(" ")[:2]
                        length = 0
                        for line in lines[1:]:
                            key, _, value = line.partition(":")
                            if key.strip().lower() == "content-length":
                                length = int(value.strip())
                        while len(data) < length:
                            chunk = c.recv(65536)
                            if not chunk:
                                return
                            data += chunk
                        data = data[length:]
                        served += 1
                        print(f"second-hangup {served} {method} {path}", flush=True)
                        if served >= 2:
                            return
                        body = path.encode()
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass
                finally:
                    c.close()
            while True:
                c, _ = listener.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
        elif MODE == "refuse":
            # Accepts the readiness probe, then stops listening: connections are refused from then on.
            listener = socket.create_server(("127.0.0.1", int(sys.argv[3])))
            c, _ = listener.accept()
            c.close()
            listener.close()
            print("listener-closed", flush=True)
            time.sleep(300)
        elif MODE == "backlog":
            # A listen queue of one, never accepted: once the readiness probe is in it, SYNs are dropped.
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", int(sys.argv[3])))
            listener.listen(0)
            time.sleep(300)
        """#
}

// MARK: - Ports

/// TCP ports for listeners, below the kernel's ephemeral range (32768–60999 by default): an outgoing
/// connection (and this suite makes many) can never take one between the moment it is chosen and the
/// moment mothership or a ship binds it, as can happen with a port the kernel picked. Each is handed out
/// once per test process, from a random start, after checking that it can be bound.
enum LoopbackPorts {
    static func free() -> Int { ProcessInspector.freePort() }
    static func freeRange(_ count: Int) -> Int { ProcessInspector.freePorts(count) }
}

// MARK: - Raw client

/// What a ship answered with: its JSON echo of the request it received.
struct ShipEcho {
    var ship: String
    var pid: Int
    /// The relay's side of the ship's connection (`('127.0.0.1', 41234)`).
    var peer: String
    var method: String
    var path: String
    var headers: [(name: String, value: String)]
    var bodyLength: Int
    var bodyOK: Bool

    init(_ response: RawResponse) throws {
        try #require(response.status == 200, "\(response.status): \(response.text)")
        try self.init(body: response.body)
    }

    init(body: [UInt8]) throws {
        let object = try JSONSerialization.jsonObject(with: Data(body))
        let fields = try #require(object as? [String: Any], "\(String(decoding: body, as: UTF8.self))")
        ship = fields["ship"] as? String ?? ""
        pid = fields["pid"] as? Int ?? 0
        peer = fields["peer"] as? String ?? ""
        method = fields["method"] as? String ?? ""
        path = fields["path"] as? String ?? ""
        headers = (fields["headers"] as? [[String]] ?? []).map { ($0[0], $0[1]) }
        bodyLength = fields["body_length"] as? Int ?? -1
        bodyOK = fields["body_ok"] as? Bool ?? false
    }

    /// The first value of a header (case-insensitive).
    func header(_ name: String) -> String? { all(name).first }

    func all(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
}

struct RawResponse: Sendable {
    var version: String
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking TCP client to 127.0.0.1 whose blocking calls run off the cooperative pool. Used by
/// one task at a time.
final class RawConnection: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var isClosed = false
    /// Everything read so far that no response or read consumed (for assertions after a close).
    var received: [UInt8] { buffer }

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            let error = errno
            // Closed once, here or in deinit (which runs too: the object was fully initialised),
            // never twice: a second close could hit a descriptor another test just opened.
            close()
            throw Failure(description: "cannot connect to 127.0.0.1:\(port): errno \(error)")
        }
    }

    deinit { close() }

    /// Sends the end of the stream (a FIN); the connection stays open for reading.
    func shutDownWriting() { shutdown(descriptor, Int32(SHUT_WR)) }

    func close() {
        if !isClosed {
            isClosed = true
            Glibc.close(descriptor)
        }
    }

    /// `METHOD PATH HTTP/1.1` with a Host header, `headers`, and a Content-Length body when given.
    static func request(
        _ method: String, _ path: String, host: String = "relay.test", _ headers: [String] = [],
        body: [UInt8]? = nil
    ) -> [UInt8] {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: \(host)"] + headers
        if let body { lines.append("Content-Length: \(body.count)") }
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + (body ?? [])
    }

    /// `count` bytes of 0, 1, …, 250, 0, 1, … (what the ship's `pattern` makes).
    static func pattern(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count { bytes[index] = UInt8(index % 251) }
        return bytes
    }

    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    // MARK: Async API

    func send(_ bytes: [UInt8]) async throws {
        try await Self.offPool { try self.sendNow(bytes) }
    }

    /// Sends, waits `seconds`, then runs `action`, all on the thread that sends: a busy cooperative
    /// pool can resume a caller seconds late, which a timed action must not wait for.
    func send(_ bytes: [UInt8], thenAfter seconds: Double, _ action: @escaping @Sendable () -> Void)
        async throws
    {
        try await Self.offPool {
            try self.sendNow(bytes)
            Thread.sleep(forTimeInterval: seconds)
            action()
        }
    }

    /// Sends, and says when the bytes were sent, read on the thread that sent them (a busy
    /// cooperative pool can resume the caller much later).
    func sendTimed(_ bytes: [UInt8]) async throws -> ContinuousClock.Instant {
        try await Self.offPool {
            try self.sendNow(bytes)
            return ContinuousClock.now
        }
    }

    /// Sends a request and reads its response (`HEAD` is recognised from the bytes).
    func exchange(_ request: [UInt8], timeout: Double = 10, line: Int = #line) async throws -> RawResponse {
        try await send(request)
        return try await response(
            toHead: request.starts(with: Array("HEAD ".utf8)), timeout: timeout, line: line)
    }

    /// An exchange timed on the thread doing the I/O, so that a busy cooperative pool (other suites
    /// running in parallel) does not count.
    func timedExchange(_ request: [UInt8], timeout: Double = 10, line: Int = #line) async throws -> (
        RawResponse, Duration
    ) {
        do {
            return try await Self.offPool {
                let start = ContinuousClock.now
                try self.sendNow(request)
                let response = try self.readResponse(
                    toHead: request.starts(with: Array("HEAD ".utf8)), timeout: timeout)
                return (response, ContinuousClock.now - start)
            }
        } catch {
            throw Failure(description: "line \(line): \(error)")
        }
    }

    func response(toHead: Bool = false, timeout: Double = 10, line: Int = #line) async throws -> RawResponse {
        do {
            return try await Self.offPool { try self.readResponse(toHead: toHead, timeout: timeout) }
        } catch {
            throw Failure(description: "line \(line): \(error)")
        }
    }

    /// Reads up to and including the first occurrence of `text`.
    func read(until text: String, timeout: Double = 10, line: Int = #line) async throws -> String {
        do {
            return try await Self.offPool {
                let marker = Array(text.utf8)
                let end = try self.waitFor(marker, timeout: timeout)
                return String(decoding: self.take(end + marker.count), as: UTF8.self)
            }
        } catch {
            throw Failure(description: "line \(line): \(error)")
        }
    }

    func read(count: Int, timeout: Double = 10, line: Int = #line) async throws -> [UInt8] {
        do {
            return try await Self.offPool { try self.readExactly(count, timeout: timeout) }
        } catch {
            throw Failure(description: "line \(line): \(error)")
        }
    }

    /// Whether the peer closes the connection within `seconds` (whatever it sends first is kept).
    func closes(within seconds: Double) async -> Bool {
        (try? await Self.offPool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try !self.fill(timeout: max(0.01, deadline.timeIntervalSinceNow)) { return true }
            }
            return false
        }) ?? false
    }

    /// Whether nothing arrives for `seconds`.
    func isSilent(for seconds: Double) async -> Bool {
        guard buffer.isEmpty else { return false }
        return
            (try? await Self.offPool {
                var poller = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
                return poll(&poller, 1, Int32(seconds * 1000)) == 0
            }) ?? false
    }

    // MARK: Blocking internals

    private func sendNow(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "send failed: errno \(errno)")
            }
            offset += sent
        }
    }

    /// Reads what is available; false at the end of the stream (or a reset). Throws on timeout.
    private func fill(timeout: Double) throws -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&poller, 1, Int32(timeout * 1000)) } while ready < 0 && errno == EINTR
        if ready == 0 {
            throw Failure(
                description:
                    "nothing within \(timeout)s; unread: \(String(decoding: buffer.prefix(300), as: UTF8.self))"
            )
        }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count < 0 {
            if errno == ECONNRESET { return false }
            throw Failure(description: "recv failed: errno \(errno)")
        }
        if count == 0 { return false }
        buffer.append(contentsOf: chunk[..<count])
        return true
    }

    private func find(_ marker: [UInt8]) -> Int? {
        guard buffer.count >= marker.count else { return nil }
        for start in 0...(buffer.count - marker.count)
        where buffer[start] == marker[0] && Array(buffer[start..<start + marker.count]) == marker {
            return start
        }
        return nil
    }

    private func waitFor(_ marker: [UInt8], timeout: Double) throws -> Int {
        while true {
            if let index = find(marker) { return index }
            if try !fill(timeout: timeout) {
                throw Failure(
                    description:
                        "closed before \(String(decoding: marker, as: UTF8.self).debugDescription); got \(String(decoding: buffer.prefix(300), as: UTF8.self))"
                )
            }
        }
    }

    private func take(_ count: Int) -> [UInt8] {
        let taken = Array(buffer.prefix(count))
        buffer.removeFirst(min(count, buffer.count))
        return taken
    }

    private func readExactly(_ count: Int, timeout: Double) throws -> [UInt8] {
        while buffer.count < count {
            if try !fill(timeout: timeout) {
                throw Failure(description: "closed after \(buffer.count) of \(count) bytes")
            }
        }
        return take(count)
    }

    private func readLine(timeout: Double) throws -> String {
        let end = try waitFor([13, 10], timeout: timeout)
        let line = take(end + 2)
        return String(decoding: line.dropLast(2), as: UTF8.self)
    }

    private func readResponse(toHead: Bool, timeout: Double) throws -> RawResponse {
        let end = try waitFor([13, 10, 13, 10], timeout: timeout)
        let head = String(decoding: take(end + 4).dropLast(4), as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failure(description: "bad status line in \(head.debugDescription)")
        }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        var response = RawResponse(version: String(statusLine[0]), status: status, headers: headers, body: [])
        if toHead || status / 100 == 1 || status == 204 || status == 304 { return response }
        if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try readLine(timeout: timeout)
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw Failure(description: "bad chunk size \(sizeLine.debugDescription)")
                }
                if size == 0 {
                    while try !readLine(timeout: timeout).isEmpty {}
                    break
                }
                response.body += try readExactly(size, timeout: timeout)
                _ = try readLine(timeout: timeout)
            }
        } else if let length = response.header("content-length").flatMap({ Int($0) }) {
            response.body = try readExactly(length, timeout: timeout)
        } else {
            while try fill(timeout: timeout) {}
            response.body = take(buffer.count)
        }
        return response
    }
}
