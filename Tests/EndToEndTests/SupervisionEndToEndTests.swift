import Foundation
import MothershipTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `mothership run` against real child processes, signals and sockets on loopback.
@Suite("Supervision through the binary", .timeLimit(.minutes(2)))
struct SupervisionEndToEndTests {
    /// A temp directory with `ship-manifest.toml`; removed at the end.
    static func fleet(_ manifest: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-e2e")
        try directory.write("ship-manifest.toml", manifest)
        return directory
    }

    static func read(_ directory: TemporaryDirectory, _ name: String) -> [String] {
        ((try? String(contentsOfFile: directory.file(name), encoding: .utf8)) ?? "").split(separator: "\n")
            .map(String.init)
    }

    /// `name=123` printed by a child.
    static func number(after key: String, in output: String) -> Int32? {
        guard let range = output.range(of: key + "=") else { return nil }
        return Int32(output[range.upperBound...].prefix { $0.isNumber })
    }

    @Test func startsInDependencyOrderGatedByHealthChecksWithTheRightEnvironment() async throws {
        let port = ProcessInspector.freePort()
        let directory = try Self.fleet(
            """
            [mothership.env]
            LEVEL = "mothership"
            SHARED = "mothership"

            [[fleet.workers]]
            name = "worker"
            command = "/bin/sh"
            args = ["-c", "echo worker >> order.log; exec sleep 300"]
            depends_on = ["web"]

            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web >> order.log; echo started-web LEVEL=$LEVEL SHARED=$SHARED OWN=$OWN MS_SHIP=$MS_SHIP INHERITED=$INHERITED MS_PID=$MS_PID; exec sleep 300"]
            env = { LEVEL = "vessel", OWN = "own" }
            depends_on = ["db"]

            [[fleet.data]]
            name = "db"
            command = "/bin/sh"
            args = ["-c", "echo db >> order.log; sleep 1; echo db-port=$PORT; exec python3 -m http.server $PORT --bind 127.0.0.1"]
            bind = "127.0.0.1:\(port)"
            healthcheck = "/"
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership(
            [], in: directory.path, environment: ["INHERITED": "yes", "SHARED": "inherited"])
        defer { mothership.stop() }
        let output = try await mothership.waitFor("lifecycle: Running")
        // Start order as the supervisor spawned them. (The children's own lines in order.log may
        // race: web is ready once spawned, so worker's shell can write before web's does.)
        let starts = ["db", "web", "worker"].map { output.range(of: "ship '\($0)' started (pid")?.lowerBound }
        #expect(starts.allSatisfy { $0 != nil } && starts == starts.sorted { $0! < $1! }, "\(output)")
        // Running means spawned; the shells write their lines a moment later.
        try await mothership.waitUntil("every vessel's line in order.log", timeout: .seconds(10)) {
            Self.read(directory, "order.log").count >= 3
        }
        #expect(Set(Self.read(directory, "order.log")) == ["db", "web", "worker"])
        #expect(Self.read(directory, "order.log").first == "db")
        // web's own line may come after Running was logged.
        let later = try await mothership.waitFor("started-web")
        // The health check reached the db before web started.
        let firstCheck = try #require(later.range(of: "\"GET / HTTP/1.1\" 200"))
        let webStart = try #require(later.range(of: "started-web"))
        #expect(firstCheck.lowerBound < webStart.lowerBound)
        #expect(
            later.contains(
                "started-web LEVEL=vessel SHARED=mothership OWN=own MS_SHIP=web INHERITED=yes MS_PID=\(mothership.pid)"
            ))
        #expect(later.contains("db-port=\(port)"))
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test func sigtermStopsEveryChildAndGrandchildAndExitsZero() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "sleep 300 & echo grandchild=$!; echo web-pid=$$; wait"]
            [[fleet.workers]]
            name = "worker"
            command = "/bin/sh"
            args = ["-c", "setsid sleep 300 & echo escaped=$!; echo worker-pid=$$; wait"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitFor("escaped=")
        try await mothership.waitFor("grandchild=")
        let output = mothership.output
        let pids = ["grandchild", "web-pid", "escaped", "worker-pid"].compactMap {
            Self.number(after: $0, in: output)
        }
        #expect(pids.count == 4)
        defer { mothership.stop(killingGroupsOf: pids) }
        for pid in pids { #expect(ProcessInspector.isAlive(pid)) }
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        for pid in pids { #expect(!ProcessInspector.isAlive(pid), "pid \(pid) outlived mothership") }
        for group in [pids[1], pids[3]] { #expect(ProcessInspector.members(ofGroup: group).isEmpty) }
        #expect(mothership.lines.last == #"{"message":"Mothership landed","status":"landed"}"#)
    }

    @Test func killingMothershipWithSigkillTakesItsChildrenDown() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web-pid=$$; exec sleep 300"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        try await mothership.waitFor("web-pid=")
        let child = try #require(Self.number(after: "web-pid", in: mothership.output))
        defer { kill(child, SIGKILL) }
        mothership.signal(SIGKILL)
        _ = try await mothership.waitForExit()
        try await mothership.waitUntil("the child to die with its parent", timeout: .seconds(5)) {
            !ProcessInspector.isAlive(child)
        }
    }

    @Test func aChildThatIgnoresSigtermIsKilledAfterItsStopTimeout() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "stubborn"
            command = "/bin/sh"
            args = ["-c", "trap '' TERM; echo stubborn-pid=$$; while true; do sleep 0.1; done"]
            stop_timeout = "1s"
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        try await mothership.waitFor("stubborn-pid=")
        let child = try #require(Self.number(after: "stubborn-pid", in: mothership.output))
        defer { kill(child, SIGKILL) }
        let start = ContinuousClock.now
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(10))
        #expect(mothership.output.contains("did not stop within 1s of SIGTERM: sending SIGKILL"))
        #expect(!ProcessInspector.isAlive(child))
    }

    @Test func aCriticalCrashLandsTheFleetWithExitOne() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "steady"
            command = "/bin/sh"
            args = ["-c", "echo steady-pid=$$; exec sleep 300"]
            [[fleet.web]]
            name = "fragile"
            command = "/bin/sh"
            args = ["-c", "sleep 1; exit 3"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        try await mothership.waitFor("steady-pid=")
        let steady = try #require(Self.number(after: "steady-pid", in: mothership.output))
        defer { kill(steady, SIGKILL) }
        #expect(try await mothership.waitForExit() == 1)
        #expect(
            mothership.lines.last
                == #"{"message":"Mothership crashed","status":"crashed","vessel":"fragile"}"#)
        #expect(!ProcessInspector.isAlive(steady))
    }

    @Test func aNonCriticalCrashRestartsWithGrowingDelayCountedInMetrics() async throws {
        let metricsPort = ProcessInspector.freePort()
        let directory = try Self.fleet(
            """
            [mothership]
            metrics_port = \(metricsPort)
            [[fleet.web]]
            name = "steady"
            command = "/bin/sh"
            args = ["-c", "exec sleep 300"]
            [[fleet.workers]]
            name = "flaky"
            command = "/bin/sh"
            args = ["-c", "date +%s.%N >> starts.log; exit 1"]
            critical = false
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitUntil("five starts of flaky", timeout: .seconds(15)) {
            Self.read(directory, "starts.log").count >= 5
        }
        let starts = Self.read(directory, "starts.log").prefix(5).compactMap(Double.init)
        let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(gaps.count == 4)
        // At once, then 0.5 s, 1 s, 2 s: the delays mothership chose (its log), and each really
        // waited (a loaded machine can only make a gap longer, so no wall-clock upper bound).
        let delays = mothership.lines.filter {
            $0.contains("'flaky' exited") && $0.contains("restarting in ")
        }
        .prefix(4).compactMap { line in
            line.range(of: "restarting in ").map { String(line[$0.upperBound...].prefix { $0 != " " }) }
        }
        #expect(
            delays == ["0s", "500ms", "1s", "2s"],
            "\(mothership.lines.filter { $0.contains("restarting in") })")
        for (gap, expected) in zip(gaps, [0.0, 0.5, 1.0, 2.0]) {
            #expect(gap >= expected - 0.05, "gaps \(gaps)")
        }
        let (body, _) = try await URLSession.shared.data(
            from: URL(string: "http://127.0.0.1:\(metricsPort)/metrics")!)
        let metrics = String(decoding: body, as: UTF8.self)
        let restarts = metrics.split(separator: "\n").first {
            $0.hasPrefix(#"mothership_ship_restarts_total{ship="flaky",group="workers"}"#)
        }
        let count = restarts.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count >= 3, "\(metrics)")
        #expect(metrics.contains(#"mothership_ship_status{ship="steady",group="web"} 1"#))
        #expect(metrics.contains("mothership_fleet_ships_total 2"))
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test func healthEndpointReportsTheLifecycle() async throws {
        let metricsPort = ProcessInspector.freePort()
        let directory = try Self.fleet(
            """
            [mothership]
            metrics_port = \(metricsPort)
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "exec sleep 300"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        let (body, response) = try await URLSession.shared.data(
            from: URL(string: "http://127.0.0.1:\(metricsPort)/health")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: body, as: UTF8.self).contains(#""status":"running""#))
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test func failingHealthChecksRestartTheShip() async throws {
        let port = ProcessInspector.freePort()
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "web"
            command = "python3"
            args = ["-m", "http.server", "\(port)", "--bind", "127.0.0.1"]
            bind = "127.0.0.1:\(port)"
            healthcheck = "/up.txt"
            """)
        defer { directory.remove() }
        try directory.write("up.txt", "ok")
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        try FileManager.default.removeItem(atPath: directory.file("up.txt"))
        // Checks start 7 s after ready, every 5 s; five failures open the breaker (about 30 s).
        try await mothership.waitFor("failed 5 health checks within 1m: restarting it", timeout: .seconds(60))
        try directory.write("up.txt", "ok")
        try await mothership.waitFor("restart #1", timeout: .seconds(10))
        try await mothership.waitUntil("web to be ready again", timeout: .seconds(20)) {
            mothership.output.components(separatedBy: "ship 'web' is ready").count >= 3
        }
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test func prelaunchJobsRunInOrderBeforeAnyShip() async throws {
        let directory = try Self.fleet(
            """
            [[mothership.prelaunch]]
            name = "seed"
            command = "/bin/sh"
            args = ["-c", "echo seed >> order.log"]
            depends_on = ["migrate"]
            [[mothership.prelaunch]]
            name = "migrate"
            command = "/bin/sh"
            args = ["-c", "sleep 0.3; echo migrate >> order.log"]
            [[fleet.jobs]]
            name = "warm"
            command = "/bin/sh"
            args = ["-c", "echo warm >> order.log"]
            oneshot = true
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web >> order.log; exec sleep 300"]
            depends_on = ["warm"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitUntil("web's line in order.log", timeout: .seconds(10)) {
            Self.read(directory, "order.log").count >= 4
        }
        #expect(Self.read(directory, "order.log") == ["migrate", "seed", "warm", "web"])
        #expect(mothership.output.contains("oneshot 'warm' completed"))
        mothership.signal(SIGINT)
        #expect(try await mothership.waitForExit() == 0)
    }

    @Test func aFailingPrelaunchJobAbortsTheLaunch() async throws {
        let directory = try Self.fleet(
            """
            [[mothership.prelaunch]]
            name = "migrate"
            command = "/bin/sh"
            args = ["-c", "echo migrating; exit 4"]
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web >> order.log; exec sleep 300"]
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        #expect(try await mothership.waitForExit() == 1)
        #expect(Self.read(directory, "order.log").isEmpty)
        #expect(
            mothership.lines.contains { $0.hasPrefix("migrate ") && $0.hasSuffix(" | migrating") })
        #expect(
            mothership.lines.last
                == #"{"message":"Mothership failed","status":"failed","error":"prelaunch job 'migrate' exited with status 4"}"#
        )
    }

    @Test func tagFiltersChooseWhatStarts() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web >> order.log; exec sleep 300"]
            tags = ["web"]
            [[fleet.workers]]
            name = "worker"
            command = "/bin/sh"
            args = ["-c", "echo worker >> order.log; exec sleep 300"]
            tags = ["workers"]
            """)
        defer { directory.remove() }
        for (flags, expected) in [(["--only", "web"], ["web"]), (["--except", "web"], ["worker"])] {
            try? FileManager.default.removeItem(atPath: directory.file("order.log"))
            let mothership = try RunningMothership(flags, in: directory.path)
            defer { mothership.stop() }
            try await mothership.waitFor("lifecycle: Running")
            // Running means spawned; give the selected shell the moment it needs to write.
            try await mothership.waitUntil("the selected vessel's line", timeout: .seconds(10)) {
                !Self.read(directory, "order.log").isEmpty
            }
            mothership.signal(SIGTERM)
            #expect(try await mothership.waitForExit() == 0, "\(mothership.output)")
            #expect(Self.read(directory, "order.log") == expected, "only the selected vessel started")
        }
    }

    @Test func anUnknownCommandFailsClearlyAndStartsNothing() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "echo web >> order.log; exec sleep 300"]
            [[fleet.workers]]
            name = "worker"
            command = "definitely-not-a-command"
            """)
        defer { directory.remove() }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        #expect(try await mothership.waitForExit() == 1)
        #expect(
            mothership.output.contains(
                "fleet.workers[0].command: command 'definitely-not-a-command' was not found on PATH"))
        #expect(Self.read(directory, "order.log").isEmpty)
    }

    @Test func theQuickstartLandsCleanlyOnCtrlC() async throws {
        let mothership = try RunningMothership(
            ["-c", Repository.path("Examples/quickstart/ship-manifest.toml")], in: Repository.root.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitFor("ticker")
        mothership.signal(SIGINT)
        #expect(try await mothership.waitForExit() == 0)
        #expect(mothership.lines.last == #"{"message":"Mothership landed","status":"landed"}"#)
        #expect(ProcessInspector.children(of: mothership.pid).isEmpty)
    }
}
