import Foundation
import MothershipTestSupport
import Testing

/// The web dashboard on the metrics listener (SPEC §12.6) through the built binary: the page and its
/// headers, the `/events` stream following a restart made with `mothership restart`, and the rules
/// that guard the actions (token, origin, actions off).
@Suite("Web dashboard end to end")
struct WebDashboardEndToEndTests {
    static let token = "test-token-0123456789abcdef"

    struct Fleet {
        let directory: TemporaryDirectory
        let mothership: RunningMothership
        let metrics: Int

        var host: String { "127.0.0.1:\(metrics)" }

        /// One request on a fresh connection to the metrics listener.
        func request(
            _ method: String, _ path: String, host: String? = nil, _ headers: [String] = []
        ) async throws -> RawResponse {
            let connection = try RawConnection(port: metrics)
            defer { connection.close() }
            let body: [UInt8]? = method == "POST" ? [] : nil
            return try await connection.exchange(
                RawConnection.request(method, path, host: host ?? self.host, headers, body: body), timeout: 30
            )
        }

        func stop() {
            mothership.stop()
            directory.remove()
        }
    }

    static func start(dashboard: String, extra: String = "") async throws -> Fleet {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-web")
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            name = "watched"
            metrics_port = \(metrics)

            \(dashboard)

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            \(ControlEndToEndTests.webAndTicker(port: port))
            \(extra)
            """,
            environment: ["DASHBOARD_TOKEN": token],
            waitingFor: ["lifecycle: Running", "dashboard on http://127.0.0.1:\(metrics)/"])
        return Fleet(directory: directory, mothership: mothership, metrics: metrics)
    }

    /// The vessels of one `data:` event, by name.
    static func vessels(in event: String) throws -> [String: [String: Any]] {
        let json = try #require(
            event.components(separatedBy: "data: ").last?.components(separatedBy: "\n").first)
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(event)")
        let vessels = try #require(document["vessels"] as? [[String: Any]], "\(event)")
        return Dictionary(uniqueKeysWithValues: vessels.map { ($0["name"] as? String ?? "", $0) })
    }

    @Test(.timeLimit(.minutes(3)))
    func servesThePageAndStreamsTheFleetThroughARestart() async throws {
        let fleet = try await Self.start(
            dashboard: "[mothership.dashboard]\nactions = true\ntoken = \"$DASHBOARD_TOKEN\"")
        defer { fleet.stop() }

        // The page: self-contained, small, with restrictive headers; its script from the same origin.
        let page = try await fleet.request("GET", "/")
        #expect(page.status == 200 && page.header("Content-Type") == "text/html; charset=utf-8")
        #expect(page.body.count < 50_000)
        let policy = try #require(page.header("Content-Security-Policy"))
        #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "\(policy)")
        #expect(!policy.contains("unsafe-inline"))
        #expect(page.header("X-Content-Type-Options") == "nosniff")
        #expect(page.header("Referrer-Policy") == "no-referrer" && page.header("X-Frame-Options") == "DENY")
        #expect(page.text.contains(#"<script src="/dashboard.js" defer></script>"#))
        #expect(page.text.contains(#"data-actions="true""#))
        #expect(!page.text.contains("<script>") && !page.text.contains("style=\""))
        let script = try await fleet.request("GET", "/dashboard.js")
        #expect(script.status == 200 && script.header("Content-Type") == "text/javascript; charset=utf-8")
        #expect(script.text.contains("new EventSource(\"/events\")"))
        let style = try await fleet.request("GET", "/dashboard.css")
        #expect(style.status == 200 && page.body.count + script.body.count + style.body.count < 50_000)
        // /metrics and /health are as before.
        #expect(try await fleet.request("GET", "/health").status == 200)

        // A log tail of a vessel; an unknown one is 404.
        try await fleet.mothership.waitFor("tick 2", timeout: .seconds(60))
        let logs = try await fleet.request("GET", "/api/vessels/ticker/logs")
        #expect(logs.status == 200 && logs.text.contains(#""line":"tick 1""#), "\(logs.text)")
        #expect(try await fleet.request("GET", "/api/vessels/nobody/logs").status == 404)

        // /events: the fleet document first, listing every vessel.
        let stream = try RawConnection(port: fleet.metrics)
        defer { stream.close() }
        try await stream.send(RawConnection.request("GET", "/events", host: fleet.host))
        let head = try await stream.read(until: "\r\n\r\n", timeout: 30)
        #expect(
            head.hasPrefix("HTTP/1.1 200 OK") && head.lowercased().contains("text/event-stream"), "\(head)")
        _ = try await stream.read(until: "data: ", timeout: 30)
        let snapshot = try Self.vessels(in: "data: " + (try await stream.read(until: "\n\n", timeout: 30)))
        #expect(Set(snapshot.keys) == ["web", "ticker"])
        let firstPID = try #require(snapshot["web"]?["pid"] as? Int)

        // A restart through the control socket shows up as an event.
        let restart = try await BinaryRunner.run(
            ["restart", "web"], in: fleet.directory.path, timeout: .seconds(60))
        #expect(restart.status == 0, "\(restart.output)")
        var seen: [String: Any]?
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            _ = try await stream.read(until: "data: ", timeout: 60)
            let web = try Self.vessels(in: "data: " + (try await stream.read(until: "\n\n", timeout: 30)))[
                "web"]
            if let pid = web?["pid"] as? Int, pid != firstPID, web?["state"] as? String == "running" {
                seen = web
                break
            }
        }
        #expect(seen?["restarts"] as? Int == 1, "\(String(describing: seen))")
    }

    @Test(.timeLimit(.minutes(3)))
    func actionsNeedTheTokenAndThePagesOwnOrigin() async throws {
        let fleet = try await Self.start(
            dashboard: "[mothership.dashboard]\nactions = true\ntoken = \"$DASHBOARD_TOKEN\"")
        defer { fleet.stop() }
        let path = "/api/vessels/ticker/restart"
        let withToken = "X-Mothership-Token: \(Self.token)"

        let missing = try await fleet.request("POST", path)
        #expect(missing.status == 403 && missing.text.contains("X-Mothership-Token"), "\(missing.text)")
        #expect(
            try await fleet.request("POST", path, ["X-Mothership-Token: wrong-token-0123456789"]).status
                == 403)
        #expect(try await fleet.request("POST", path, ["X-Mothership-Token: \(Self.token)x"]).status == 403)
        let crossOrigin = try await fleet.request("POST", path, [withToken, "Origin: http://evil.example"])
        #expect(crossOrigin.status == 403 && crossOrigin.text.contains("cross-origin"), "\(crossOrigin.text)")
        // Another name for the loopback address (DNS rebinding) is refused too.
        #expect(
            try await fleet.request("POST", path, host: "evil.example:\(fleet.metrics)", [withToken]).status
                == 403)
        #expect(try await fleet.request("GET", path, [withToken]).status == 405)

        // With the token and the page's own origin: the ship restarts.
        let done = try await fleet.request("POST", path, [withToken, "Origin: http://\(fleet.host)"])
        #expect(done.status == 200 && done.text == #"{"action":"restart","vessel":"ticker"}"#, "\(done.text)")
        let status = try await BinaryRunner.run(
            ["status", "--json"], in: fleet.directory.path, timeout: .seconds(60))
        let ticker = try Self.vessels(in: "data: " + status.standardOutput)["ticker"]
        #expect(ticker?["restarts"] as? Int == 1, "\(status.output)")
        let localhost = try await fleet.request(
            "POST", "/api/vessels/ticker/stop", host: "localhost:\(fleet.metrics)",
            [withToken, "Origin: http://localhost:\(fleet.metrics)"])
        #expect(localhost.status == 200, "\(localhost.text)")
        let again = try await fleet.request("POST", "/api/vessels/ticker/stop", [withToken])
        #expect(again.status == 409 && again.text.contains("stopped already"), "\(again.text)")
        #expect(try await fleet.request("POST", "/api/vessels/ticker/start", [withToken]).status == 200)
        #expect(try await fleet.request("POST", "/api/vessels/nobody/start", [withToken]).status == 404)
        let reload = try await fleet.request("POST", "/api/reload", [withToken])
        #expect(reload.status == 200 && reload.text.contains(#""summary""#), "\(reload.text)")
    }

    @Test(.timeLimit(.minutes(3)))
    func withActionsOffEveryActionIsRefusedAndStreamsAreCapped() async throws {
        let fleet = try await Self.start(dashboard: "")
        defer { fleet.stop() }
        let page = try await fleet.request("GET", "/")
        #expect(page.status == 200 && page.text.contains(#"data-actions="false""#))
        for path in [
            "/api/vessels/web/restart", "/api/vessels/web/stop", "/api/vessels/web/start", "/api/reload",
        ] {
            let answer = try await fleet.request("POST", path, ["X-Mothership-Token: \(Self.token)"])
            #expect(
                answer.status == 403 && answer.text.contains("actions are off"), "\(path): \(answer.text)")
        }
        #expect(!fleet.mothership.output.contains("token for this run"))

        // At most 64 open streams: the next one is 503 until one closes.
        var streams: [RawConnection] = []
        defer { for stream in streams { stream.close() } }
        for _ in 0..<64 {
            let stream = try RawConnection(port: fleet.metrics)
            streams.append(stream)
            try await stream.send(RawConnection.request("GET", "/events", host: fleet.host))
            #expect(try await stream.read(until: "\r\n\r\n", timeout: 30).hasPrefix("HTTP/1.1 200 OK"))
        }
        // The head only: were the 65th admitted, its body would be a stream that never ends.
        let extra = try RawConnection(port: fleet.metrics)
        defer { extra.close() }
        try await extra.send(RawConnection.request("GET", "/events", host: fleet.host))
        let refused = try await extra.response(toHead: true, timeout: 30)
        #expect(refused.status == 503, "the 65th stream: \(refused.status) \(refused.headers)")
        if refused.status == 503, let length = refused.header("Content-Length").flatMap({ Int($0) }) {
            let body = String(decoding: try await extra.read(count: length, timeout: 30), as: UTF8.self)
            #expect(body.contains("too many"), "\(body)")
        }
        streams.removeLast().close()
        var admitted = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !admitted && ContinuousClock.now < deadline {
            let stream = try RawConnection(port: fleet.metrics)
            streams.append(stream)
            try await stream.send(RawConnection.request("GET", "/events", host: fleet.host))
            admitted = try await stream.read(until: "\r\n\r\n", timeout: 30).hasPrefix("HTTP/1.1 200 OK")
            if !admitted { streams.removeLast().close() }
        }
        #expect(admitted)
    }
}
