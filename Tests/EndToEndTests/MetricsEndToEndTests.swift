import Foundation
import MothershipTestSupport
import Relay
import Testing

/// `/metrics` of the built binary as Prometheus reads it: a run with a ship, a bay, a module, rate
/// limits and the CORS cache, so that every family of `MetricCatalogue` is exposed.
@Suite("Metrics end to end")
struct MetricsEndToEndTests {
    @Test(.timeLimit(.minutes(1)))
    func everyFamilyHasHelpAndTypeBeforeItsSamplesAndPromtoolAcceptsTheText() async throws {
        let relay = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-metrics")
        defer { directory.remove() }
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        try directory.write("bay.py", BayEndToEndTests.bayScript)
        try PayloadsEndToEndTests.writeWasm(
            #"(module (memory (export "memory") 1) (func (export "on_request")))"#,
            to: directory.file("pass.wasm"))
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metrics)
            cors_cache = true

            [mothership.logs]
            dir = "log"

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [mothership.rate_limiting]
            global_rps = 1000.0

            [[modules]]
            name = "pass"
            wasm = "pass.wasm"
            routes = ["/.*"]
            phase = "request"

            [[bays.websocket]]
            name = "chat"
            command = "python3"
            args = ["bay.py"]
            routes = [{ bind = "http", pattern = "/ws" }]
            start_timeout = "60s"
            \(RelayEndToEndTests.ship(
                "web", port: LoopbackPorts.freeRange(2), routes: #"["http:/.*"]"#, extra: "workers = 1"))
            """, waitingFor: ["bay 'chat' docked", "lifecycle: Running"])
        defer { mothership.stop() }

        // Some traffic, so that counters and histograms are not all zero.
        let connection = try RawConnection(port: relay)
        #expect(try await connection.exchange(RawConnection.request("GET", "/hello")).status == 200)
        // A CORS preflight: a miss, passed to the ship (which does not know OPTIONS: 501).
        _ = try await connection.exchange(
            RawConnection.request(
                "OPTIONS", "/hello", ["Origin: https://app.example", "Access-Control-Request-Method: POST"]))
        let client = try await WebSocketClient.connect(port: relay)
        #expect(try await client.ask("hello bay") == .text("hello bay"))

        let text = try await RawConnection.offPool {
            try RelayEndToEndTests.fetch("http://127.0.0.1:\(metrics)/metrics")
        }
        #expect(ExpositionCheck.problems(in: text) == [], "\(text)")
        let exposed = ExpositionCheck.types(in: text)
        for family in MetricCatalogue.families {
            #expect(exposed[family.name] == family.kind.rawValue, "\(family.name) in \(text)")
        }
        #expect(Set(exposed.keys) == Set(MetricCatalogue.families.map(\.name)), "\(text)")
        #expect(text.contains(#"mothership_requests_total{route="/.*",ship="web"} 2"#), "\(text)")
        #expect(text.contains("mothership_cors_cache_misses_total 1\n"), "\(text)")
        #expect(text.contains(#"mothership_bay_messages_total{bay="chat",direction="in"} 1"#), "\(text)")

        guard let verdict = try await RawConnection.offPool({ try Promtool.checkMetrics(text) }) else {
            if Promtool.isRequired {
                Issue.record("promtool is not installed (CI installs it: apt-get install prometheus)")
            } else {
                print("skipping promtool check metrics: no promtool on PATH (apt-get install prometheus)")
            }
            return
        }
        #expect(verdict.passed, "promtool check metrics: status \(verdict.status)\n\(verdict.output)\(text)")
    }
}
