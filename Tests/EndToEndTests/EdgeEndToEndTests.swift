import Foundation
import MothershipTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The relay's edge features through the built binary (SPEC §5): static files, compression, the
/// CORS preflight cache and rate limits, in front of a real python ship on loopback. Uses the relay
/// suite's launcher and raw client.
@Suite("Edge features end to end")
struct EdgeEndToEndTests {
    typealias Relay = RelayEndToEndTests

    /// The edge ship: `/text?n=N` answers N bytes of text, `/chunkedtext` a chunked text body,
    /// OPTIONS a CORS preflight (and says so on stdout), anything else `ship <path>`.
    static let edgeShip = #"""
        import sys
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        NAME, PORT = sys.argv[1], int(sys.argv[2])

        def text(n):
            line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
            return (line * (n // len(line) + 1))[:n]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def reply(self, status, body, content_type, extra=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_OPTIONS(self):
                print("preflight from %s for %s" % (self.headers.get("Origin"), self.path), flush=True)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
                self.send_header("Access-Control-Allow-Methods", "GET, PUT")
                self.send_header("Access-Control-Max-Age", "600")
                self.end_headers()

            def do_GET(self):
                if self.path.startswith("/text"):
                    return self.reply(200, text(int(self.path.split("n=")[1])), "text/plain; charset=utf-8")
                if self.path.startswith("/png"):
                    return self.reply(200, text(5000), "image/png")
                if self.path.startswith("/chunkedtext"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for _ in range(20):
                        part = text(3000)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.reply(200, ("ship " + self.path).encode(), "text/plain")

            do_HEAD = do_GET

        server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
        server.daemon_threads = True
        server.serve_forever()
        """#

    static func text(_ count: Int) -> [UInt8] {
        let line = Array("the quick brown fox jumps over the lazy dog 0123456789\n".utf8)
        var bytes: [UInt8] = []
        while bytes.count < count { bytes += line }
        return Array(bytes.prefix(count))
    }

    static func ship(port: Int, routes: String = #"["http:/.*"]"#) -> String {
        """
        [[fleet.web]]
        name = "edge"
        command = "python3"
        args = ["edge_ship.py", "edge", "\(port)"]
        bind = "127.0.0.1:\(port)"
        healthcheck = "/"
        routes = \(routes)
        """
    }

    /// A relay on `relay` serving `directory/public` under `prefix`, in front of the edge ship.
    static func launchServingPublic(
        in directory: TemporaryDirectory, relay: Int, prefix: String
    ) async throws -> RunningMothership {
        try await Relay.launch(
            in: directory,
            """
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[mothership.static_dirs]]
            path = "public"
            prefix = "\(prefix)"
            \(Self.ship(port: LoopbackPorts.free()))
            """)
    }

    static func directory() throws -> TemporaryDirectory {
        let directory = try Relay.directory()
        try directory.write("edge_ship.py", edgeShip)
        return directory
    }

    // MARK: Static files

    /// The open-file cache never answers from a file that changed: in place, truncated, renamed
    /// over or deleted, a small file (sent with its head) and a large one (sendfile) alike, on one
    /// kept-alive connection.
    @Test(.timeLimit(.minutes(1)))
    func staticFilesChangedWhileCachedAreServedAsTheyAreNow() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("public"), withIntermediateDirectories: true)
        try directory.write("public/small.txt", "first")
        try Data(Self.text(100_000)).write(to: URL(fileURLWithPath: directory.file("public/large.txt")))
        let mothership = try await Self.launchServingPublic(in: directory, relay: relay, prefix: "/")
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        func get(_ path: String) async throws -> RawResponse {
            try await connection.exchange(RawConnection.request("GET", path))
        }
        #expect(try await get("/small.txt").text == "first")
        #expect(try await get("/large.txt").body.count == 100_000)

        try directory.write("public/small.txt", "second, longer")  // in place
        #expect(try await get("/small.txt").text == "second, longer")
        #expect(truncate(directory.file("public/large.txt"), 70_000) == 0)
        let truncated = try await get("/large.txt")
        #expect(truncated.body.count == 70_000 && truncated.header("content-length") == "70000")

        try directory.write("public/next.txt", "renamed over")
        #expect(rename(directory.file("public/next.txt"), directory.file("public/small.txt")) == 0)
        #expect(try await get("/small.txt").text == "renamed over")
        try Data(Self.text(90_000)).write(to: URL(fileURLWithPath: directory.file("public/next.bin")))
        #expect(rename(directory.file("public/next.bin"), directory.file("public/large.txt")) == 0)
        #expect(try await get("/large.txt").body.count == 90_000)

        #expect(unlink(directory.file("public/small.txt")) == 0)
        #expect(try await get("/small.txt").text == "ship /small.txt", "deleted: the routes decide")
    }

    @Test(.timeLimit(.minutes(1)))
    func servesStaticFilesWithValidatorsRangesAndFallsThroughWhenMissing() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("public/docs"), withIntermediateDirectories: true)
        let content = Self.text(300_000)
        try Data(content).write(to: URL(fileURLWithPath: directory.file("public/app.js")))
        try directory.write("public/docs/index.html", "<h1>docs</h1>")
        let mothership = try await Self.launchServingPublic(in: directory, relay: relay, prefix: "/static")
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)

        let first = try await connection.exchange(RawConnection.request("GET", "/static/app.js"))
        #expect(first.status == 200)
        #expect(first.body == content)
        #expect(first.header("content-type") == "text/javascript; charset=utf-8")
        #expect(first.header("content-length") == "300000")
        #expect(first.header("accept-ranges") == "bytes")
        let etag = try #require(first.header("etag"))
        let lastModified = try #require(first.header("last-modified"))

        // The same file again with its validators: 304, no body, and the connection goes on.
        let revalidated = try await connection.exchange(
            RawConnection.request("GET", "/static/app.js", ["If-None-Match: \(etag)"]))
        #expect(revalidated.status == 304)
        #expect(revalidated.header("etag") == etag)
        #expect(revalidated.body.isEmpty)
        let byDate = try await connection.exchange(
            RawConnection.request("GET", "/static/app.js", ["If-Modified-Since: \(lastModified)"]))
        #expect(byDate.status == 304)

        // Ranges: one range 206, beyond the end 416, malformed ignored.
        let partial = try await connection.exchange(
            RawConnection.request("GET", "/static/app.js", ["Range: bytes=100-199"]))
        #expect(partial.status == 206)
        #expect(partial.header("content-range") == "bytes 100-199/300000")
        #expect(partial.body == Array(content[100...199]))
        let unsatisfiable = try await connection.exchange(
            RawConnection.request("GET", "/static/app.js", ["Range: bytes=400000-"]))
        #expect(unsatisfiable.status == 416)
        #expect(unsatisfiable.header("content-range") == "bytes */300000")
        let malformed = try await connection.exchange(
            RawConnection.request("GET", "/static/app.js", ["Range: bytes=9-1"]))
        #expect(malformed.status == 200 && malformed.body.count == 300_000)

        // HEAD: the head only; a directory: its index.html.
        let head = try await connection.exchange(RawConnection.request("HEAD", "/static/app.js"))
        #expect(head.status == 200 && head.header("content-length") == "300000" && head.body.isEmpty)
        #expect(
            try await connection.exchange(RawConnection.request("GET", "/static/docs/")).text
                == "<h1>docs</h1>")
        // A directory without its slash: 301 to the slashed path, query kept (as nginx answers).
        let unslashed = try await connection.exchange(RawConnection.request("GET", "/static/docs?page=2"))
        #expect(unslashed.status == 301)
        #expect(unslashed.header("location") == "/static/docs/?page=2")
        // A path spelled to make the Location name another site (`//host/...`, the protocol-relative
        // form) stays on this one, on a connection's first request and on a kept-alive one.
        let firstRequest = try RawConnection(port: relay)
        for connection in [firstRequest, connection] {
            for attempt in ["//static/docs?x=1", "//static//docs"] {
                let redirected = try await connection.exchange(RawConnection.request("GET", attempt))
                #expect(redirected.status == 301, "\(attempt)")
                let location = redirected.header("location") ?? ""
                #expect(
                    location.hasPrefix("/static/docs/") && !location.hasPrefix("//"),
                    "\(attempt): \(location)")
            }
        }

        // Missing: the routes decide (the ship answers). POST is never static.
        let missing = try await connection.exchange(RawConnection.request("GET", "/static/missing.js"))
        #expect(missing.text == "ship /static/missing.js")
        #expect(
            try await connection.exchange(RawConnection.request("GET", "/elsewhere")).text
                == "ship /elsewhere")

        // Dot segments are resolved before matching (SPEC §4): these paths are `/ship-manifest.toml`
        // and `/edge_ship.py`, outside the prefix, so the routes decide; never the files beside it.
        for attempt in [
            "/static/../ship-manifest.toml", "/static/%2e%2e/ship-manifest.toml",
            "/static/%2E%2e/edge_ship.py",
        ] {
            let routed = try await connection.exchange(RawConnection.request("GET", attempt))
            #expect(routed.text == "ship \(attempt)", "\(attempt)")
            #expect(!routed.text.contains("mothership.bind"))
        }
        // An escaped slash stays inside its segment: a `..` made of it is refused, not resolved.
        for attempt in ["/static/..%2fship-manifest.toml", "/static/%2e%2e%2Fedge_ship.py"] {
            let refused = try await connection.exchange(RawConnection.request("GET", attempt))
            #expect(refused.status == 403, "\(attempt)")
            #expect(!refused.text.contains("mothership.bind"))
        }
        // Above the root: 400, and the connection closes.
        let climbing = try RawConnection(port: relay)
        #expect(
            try await climbing.exchange(RawConnection.request("GET", "/static/../../etc/passwd")).status
                == 400)

        // Pipelined: two files and a proxied request, answered in order.
        let pipelined = try RawConnection(port: relay)
        try await pipelined.send(
            RawConnection.request("GET", "/static/app.js")
                + RawConnection.request("GET", "/static/docs/index.html")
                + RawConnection.request("GET", "/after"))
        #expect(try await pipelined.response().body == content)
        #expect(try await pipelined.response().text == "<h1>docs</h1>")
        #expect(try await pipelined.response().text == "ship /after")
    }

    // MARK: Compression

    @Test(.timeLimit(.minutes(1)))
    func compressesByAcceptEncodingAndTheBodiesDecodeToTheOriginal() async throws {
        let relay = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("public"), withIntermediateDirectories: true)
        try Data(Self.text(150_000)).write(to: URL(fileURLWithPath: directory.file("public/page.html")))
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership]
            compression = true
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            [[mothership.static_dirs]]
            path = "public"
            prefix = "/static"
            \(Self.ship(port: LoopbackPorts.free()))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        let original = Self.text(200_000)
        for (accept, coding) in [
            ("gzip", "gzip"), ("deflate", "deflate"), ("br", "br"), ("gzip, deflate, br", "br"),
            ("br;q=0, gzip", "gzip"),
        ] {
            let response = try await connection.exchange(
                RawConnection.request("GET", "/text?n=200000", ["Accept-Encoding: \(accept)"]))
            #expect(response.status == 200)
            #expect(response.header("content-encoding") == coding, "\(accept)")
            #expect(response.header("vary") == "Accept-Encoding")
            #expect(response.header("content-length") == nil)
            #expect(response.body.count < original.count / 10, "\(accept): \(response.body.count)")
            #expect(try Decompression.decode(response.body, coding: coding) == original, "\(accept)")
        }
        // A chunked body from the ship, compressed too.
        let chunked = try await connection.exchange(
            RawConnection.request("GET", "/chunkedtext", ["Accept-Encoding: gzip"]))
        #expect(chunked.header("content-encoding") == "gzip")
        #expect(
            try Decompression.decode(chunked.body, coding: "gzip")
                == Array(repeating: Self.text(3000), count: 20).flatMap { $0 })

        // Not compressed: no Accept-Encoding (but Vary), identity, an image, a tiny body.
        let plain = try await connection.exchange(RawConnection.request("GET", "/text?n=5000"))
        #expect(plain.header("content-encoding") == nil && plain.header("vary") == "Accept-Encoding")
        #expect(plain.body == Self.text(5000))
        let identity = try await connection.exchange(
            RawConnection.request("GET", "/text?n=5000", ["Accept-Encoding: identity"]))
        #expect(identity.header("content-encoding") == nil && identity.body == Self.text(5000))
        let image = try await connection.exchange(
            RawConnection.request("GET", "/png", ["Accept-Encoding: gzip"]))
        #expect(image.header("content-encoding") == nil && image.header("vary") == nil)
        let tiny = try await connection.exchange(
            RawConnection.request("GET", "/text?n=20", ["Accept-Encoding: gzip"]))
        #expect(tiny.header("content-encoding") == nil && tiny.body == Self.text(20))

        // Static files are compressed too (a whole file; a range never), with a weak ETag.
        for coding in ["br", "gzip", "deflate"] {
            let page = try await connection.exchange(
                RawConnection.request("GET", "/static/page.html", ["Accept-Encoding: \(coding)"]))
            #expect(page.header("content-encoding") == coding)
            #expect(page.header("etag")?.hasPrefix("W/\"") == true)
            #expect(try Decompression.decode(page.body, coding: coding) == Self.text(150_000), "\(coding)")
        }
        let pageRange = try await connection.exchange(
            RawConnection.request("GET", "/static/page.html", ["Accept-Encoding: gzip", "Range: bytes=0-9"]))
        #expect(pageRange.status == 206 && pageRange.header("content-encoding") == nil)
        #expect(pageRange.body == Array(Self.text(10)))

        // An HTTP/1.0 client gets the compressed body ended by the close.
        let old = try RawConnection(port: relay)
        let oldResponse = try await old.exchange(
            Array("GET /text?n=50000 HTTP/1.0\r\nHost: relay.test\r\nAccept-Encoding: gzip\r\n\r\n".utf8))
        #expect(oldResponse.header("content-encoding") == "gzip")
        #expect(try Decompression.decode(oldResponse.body, coding: "gzip") == Self.text(50_000))
    }

    // MARK: CORS preflight cache

    @Test(.timeLimit(.minutes(1)))
    func aRepeatedPreflightIsAnsweredFromTheCacheAndADifferentOriginIsNot() async throws {
        let relay = LoopbackPorts.free()
        let metricsPort = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metricsPort)
            cors_cache = true
            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(Self.ship(port: LoopbackPorts.free()))
            """)
        defer { mothership.stop() }
        func preflight(_ origin: String, on connection: RawConnection) async throws -> RawResponse {
            try await connection.exchange(
                RawConnection.request(
                    "OPTIONS", "/api/items",
                    [
                        "Origin: \(origin)", "Access-Control-Request-Method: PUT",
                        "Access-Control-Request-Headers: content-type",
                    ]))
        }
        func seen(_ origin: String) -> Int {
            mothership.output.components(separatedBy: "preflight from \(origin) for /api/items").count - 1
        }
        let connection = try RawConnection(port: relay)
        let first = try await preflight("https://a.example", on: connection)
        #expect(first.status == 204)
        #expect(first.header("access-control-allow-origin") == "https://a.example")
        try await mothership.waitUntil("the ship to see the first preflight") {
            seen("https://a.example") == 1
        }

        // Again, on another connection: from the cache, the ship never sees it.
        let again = try await preflight("https://a.example", on: try RawConnection(port: relay))
        #expect(again.status == 204)
        #expect(again.header("access-control-allow-origin") == "https://a.example")
        #expect(again.header("access-control-max-age") == "600")
        // Another origin reaches the ship.
        let other = try await preflight("https://b.example", on: connection)
        #expect(other.header("access-control-allow-origin") == "https://b.example")
        try await mothership.waitUntil("the ship to see the other origin") { seen("https://b.example") == 1 }
        // The connection stays usable after a cached answer.
        #expect(try await connection.exchange(RawConnection.request("GET", "/after")).text == "ship /after")
        try await Task.sleep(for: .milliseconds(300))
        #expect(seen("https://a.example") == 1, "\(mothership.output)")

        try await Self.waitForMetrics(
            port: metricsPort,
            containing: ["mothership_cors_cache_hits_total 1", "mothership_cors_cache_misses_total 2"])
    }

    // MARK: Rate limiting

    @Test(.timeLimit(.minutes(1)))
    func answers429WithRetryAfterOnceAClientSpentItsBudget() async throws {
        let relay = LoopbackPorts.free()
        let metricsPort = LoopbackPorts.free()
        let directory = try Self.directory()
        defer { directory.remove() }
        let mothership = try await Relay.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metricsPort)
            [mothership.bind]
            http = { addr = "127.0.0.1:\(relay)", proxy_protocol = true, trusted_proxies = ["127.0.0.0/8"] }
            [mothership.rate_limiting]
            per_ip_rpm = 3
            \(Self.ship(port: LoopbackPorts.free()))
            """)
        defer { mothership.stop() }
        let connection = try RawConnection(port: relay)
        for index in 1...3 {
            #expect(try await connection.exchange(RawConnection.request("GET", "/n\(index)")).status == 200)
        }
        let limited = try await connection.exchange(RawConnection.request("GET", "/n4"))
        #expect(limited.status == 429)
        let retryAfter = try #require(limited.header("retry-after").flatMap { Int($0) })
        #expect(retryAfter >= 1 && retryAfter <= 20, "\(retryAfter)")
        #expect(!mothership.output.contains("/n4"))
        // The connection stays open; a new one from the same address is limited too.
        #expect(
            try await RawConnection(port: relay).exchange(RawConnection.request("GET", "/n5")).status == 429)
        // A client behind a PROXY header has its own budget.
        let proxied = try RawConnection(port: relay)
        let viaProxy = try await proxied.exchange(
            Array("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".utf8)
                + RawConnection.request("GET", "/proxied"))
        #expect(viaProxy.status == 200)
        #expect(viaProxy.text == "ship /proxied")
        try await Self.waitForMetrics(port: metricsPort, containing: ["mothership_rate_limited_total 2"])
    }

    /// Polls /metrics until it has every one of `series`, fetching off the cooperative pool (a
    /// blocking fetch there would hold up other suites' tasks, some of them timed to the
    /// millisecond).
    static func waitForMetrics(port: Int, containing series: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        var metrics = ""
        while ContinuousClock.now < deadline {
            metrics = try await RawConnection.offPool { try Relay.fetch("http://127.0.0.1:\(port)/metrics") }
            if series.allSatisfy(metrics.contains) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("metrics never had \(series): \(metrics)")
    }
}
