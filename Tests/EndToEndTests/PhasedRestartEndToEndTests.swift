import Foundation
import MothershipTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Ships with `workers` (SPEC §12.2), through the binary: two python instances on their own
/// ports, replaced one at a time by `mothership restart` and SIGUSR1 while clients keep sending,
/// an aborted restart when the replacement is never healthy, and a stuck request answered 504 with
/// its instance recycled.
/// One test at a time: each keeps four clients busy, which would starve the suites running beside them.
@Suite("Phased restarts end to end", .serialized)
struct PhasedRestartEndToEndTests {
    /// Serves on `$PORT`: `GET /` (health: 500 when the file `unhealthy` exists at start), `/slow`
    /// (0.2 s), `/stuck` (never answers), POST (reads the body); every answer says who served it.
    static let app = #"""
        import json, os, sys, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        HEALTHY = not os.path.exists("unhealthy")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def answer(self, status, extra):
                body = json.dumps(dict(pid=os.getpid(), worker=os.environ.get("MS_WORKER"),
                                       port=os.environ.get("PORT"), **extra)).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/slow":
                    time.sleep(0.2)
                if self.path == "/stuck":
                    time.sleep(3600)
                self.answer(200 if HEALTHY or self.path != "/" else 500, {})

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.answer(200, dict(received=len(data)))

        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
        """#

    struct Fleet {
        let directory: TemporaryDirectory
        let mothership: RunningMothership
        let relay: Int
        let port: Int
        let metrics: Int

        func command(_ arguments: String...) async throws -> BinaryRunner.Outcome {
            try await BinaryRunner.run(arguments, in: directory.path, timeout: .seconds(120))
        }

        /// The pids of the ship's serving workers, by `status --json`.
        func workerPIDs() async throws -> [Int] {
            let outcome = try await command("status", "--json")
            try #require(outcome.status == 0, "\(outcome.output)")
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any])
            let vessels = try #require(document["vessels"] as? [[String: Any]])
            let web = try #require(vessels.first { $0["name"] as? String == "web" })
            let workers = try #require(web["workers"] as? [[String: Any]])
            return workers.filter { $0["state"] as? String == "running" }.compactMap { $0["pid"] as? Int }
        }

        func stop() {
            mothership.stop()
            directory.remove()
        }
    }

    static func start(extra: String = "") async throws -> Fleet {
        let relay = LoopbackPorts.free()
        let metrics = LoopbackPorts.free()
        // Two workers take four ports from here (two generations).
        let port = LoopbackPorts.freeRange(4)
        let directory = try TemporaryDirectory(prefix: "mothership-phased")
        try directory.write("app.py", app)
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            metrics_port = \(metrics)

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            [[fleet.web]]
            name = "web"
            command = "python3"
            args = ["app.py"]
            bind = "127.0.0.1:\(port)"
            workers = 2
            healthcheck = "/"
            stop_timeout = "10s"
            routes = ["http:/.*"]
            \(extra)
            """,
            waitingFor: ["lifecycle: Running", "control socket on "])
        return Fleet(directory: directory, mothership: mothership, relay: relay, port: port, metrics: metrics)
    }

    /// Clients that keep sending until told to stop, and what they got.
    final class Clients: @unchecked Sendable {
        private let lock = NSLock()
        private var answered: [Int] = []
        private var failures: [String] = []
        private var stopping = false
        private var tasks: [Task<Void, Never>] = []

        var shouldStop: Bool { lock.withLock { stopping } }

        func record(_ response: RawResponse?, _ label: String) {
            lock.withLock {
                guard let response, response.status == 200,
                    let fields = try? JSONSerialization.jsonObject(with: Data(response.body))
                        as? [String: Any],
                    let pid = fields["pid"] as? Int
                else {
                    failures.append(
                        "\(label): \(response.map { "\($0.status) \($0.text)" } ?? "no response")")
                    return
                }
                answered.append(pid)
            }
        }

        /// Two clients on kept-alive connections and two opening one per request; GETs of a slow
        /// path alternate with POSTs carrying a body.
        func start(port: Int) {
            for client in 0..<4 {
                tasks.append(
                    Task.detached { [self] in
                        var connection: RawConnection?
                        var round = 0
                        while !shouldStop {
                            round += 1
                            let request =
                                round % 2 == 0
                                ? RawConnection.request("GET", "/slow")
                                : RawConnection.request("POST", "/upload", body: RawConnection.pattern(4096))
                            do {
                                if connection == nil { connection = try RawConnection(port: port) }
                                let response = try await connection!.exchange(request, timeout: 30)
                                record(response, "client \(client) request \(round)")
                                if client >= 2 || response.header("Connection") == "close" {
                                    connection?.close()
                                    connection = nil
                                }
                            } catch {
                                record(nil, "client \(client) request \(round): \(error)")
                                connection?.close()
                                connection = nil
                            }
                            // Steady traffic, not a flood: the restart is under test, not the machine.
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        connection?.close()
                    })
            }
        }

        /// Stops the clients; what they got.
        func finish() async -> (pids: [Int], failures: [String]) {
            lock.withLock { stopping = true }
            for task in tasks { await task.value }
            return lock.withLock { (answered, failures) }
        }

        var count: Int { lock.withLock { answered.count + failures.count } }
    }

    static func isAlive(_ pid: Int) -> Bool { kill(pid_t(pid), 0) == 0 }

    @Test(.timeLimit(.minutes(4)))
    func restartAndSIGUSR1ReplaceEveryWorkerWithoutAFailedRequest() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }
        let first = try await fleet.workerPIDs()
        #expect(first.count == 2)
        let clients = Clients()
        clients.start(port: fleet.relay)
        try await ControlEndToEndTests.until { clients.count >= 8 }

        let restart = try await fleet.command("restart", "web")
        #expect(restart.status == 0, "\(restart.output)")
        let second = try await fleet.workerPIDs()
        #expect(second.count == 2 && Set(second).isDisjoint(with: first), "\(first) → \(second)")
        try await ControlEndToEndTests.until { !first.contains(where: Self.isAlive) }

        let before = clients.count
        try await ControlEndToEndTests.until { clients.count >= before + 8 }
        kill(fleet.mothership.pid, SIGUSR1)
        try await fleet.mothership.waitUntil("a second phased restart", timeout: .seconds(90)) {
            fleet.mothership.output.components(separatedBy: "phased restart of 'web' complete").count == 3
        }
        let third = try await fleet.workerPIDs()
        #expect(third.count == 2 && Set(third).isDisjoint(with: second), "\(second) → \(third)")
        try await ControlEndToEndTests.until { !second.contains(where: Self.isAlive) }
        let after = clients.count
        try await ControlEndToEndTests.until { clients.count >= after + 8 }

        let (pids, failures) = await clients.finish()
        #expect(
            failures.isEmpty,
            "\(failures.count) failed of \(pids.count + failures.count): \(failures.prefix(5))")
        // Every generation served, and the last one is what serves now.
        for generation in [first, second, third] {
            #expect(pids.contains(where: generation.contains), "\(generation) never answered")
        }
        let last = try RawConnection(port: fleet.relay)
        defer { last.close() }
        let answer = try await last.exchange(RawConnection.request("GET", "/slow"))
        let fields = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        #expect(third.contains(fields?["pid"] as? Int ?? 0))
        #expect(fleet.mothership.output.contains("phased restart of 'web' complete (2 workers replaced in "))

        // Per instance in /metrics; the two phased restarts count as the ship's.
        let metrics = try await RawConnection.offPool {
            try RelayEndToEndTests.fetch("http://127.0.0.1:\(fleet.metrics)/metrics")
        }
        for worker in 0..<2 {
            #expect(
                metrics.contains(#"mothership_worker_ready{ship="web",worker="\#(worker)"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"mothership_worker_restarts_total{ship="web",worker="\#(worker)"} 0"#))
        }
        #expect(metrics.contains(#"mothership_ship_restarts_total{ship="web",group="web"} 2"#), "\(metrics)")
    }

    @Test(.timeLimit(.minutes(3)))
    func aReloadThatChangesTheShipReplacesItsWorkersInPhases() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }
        let first = try await fleet.workerPIDs()
        let clients = Clients()
        clients.start(port: fleet.relay)
        try await ControlEndToEndTests.until { clients.count >= 4 }
        let manifest = try String(contentsOfFile: fleet.directory.file("ship-manifest.toml"), encoding: .utf8)
        try fleet.directory.write(
            "ship-manifest.toml",
            manifest.replacingOccurrences(of: "workers = 2", with: "workers = 2\nenv = { RELEASE = \"2\" }"))
        let reload = try await fleet.command("reload")
        #expect(reload.status == 0, "\(reload.output)")
        #expect(
            reload.output.contains("reload: 0 added, 0 removed, 1 changed, 0 unchanged"), "\(reload.output)")
        try await fleet.mothership.waitUntil("the reload's phased restart", timeout: .seconds(90)) {
            fleet.mothership.output.contains("phased restart of 'web' complete")
        }
        let second = try await fleet.workerPIDs()
        #expect(second.count == 2 && Set(second).isDisjoint(with: first), "\(first) → \(second)")
        let before = clients.count
        try await ControlEndToEndTests.until { clients.count >= before + 4 }
        let (_, failures) = await clients.finish()
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    @Test(.timeLimit(.minutes(3)))
    func aReplacementThatNeverGetsHealthyAbortsTheRestartAndTheOldWorkersServeOn() async throws {
        // Long enough for the first start on a loaded machine; the aborted replacement waits it out.
        let fleet = try await Self.start(extra: #"start_timeout = "15s""#)
        defer { fleet.stop() }
        let first = try await fleet.workerPIDs()
        let clients = Clients()
        clients.start(port: fleet.relay)
        try await ControlEndToEndTests.until { clients.count >= 4 }
        try fleet.directory.write("unhealthy", "")

        let restart = try await fleet.command("restart", "web")
        #expect(restart.status == 1, "\(restart.output)")
        #expect(
            restart.output.contains("phased restart of 'web' aborted after 0 of 2")
                && restart.output.contains("did not become ready within 15s"), "\(restart.output)")
        #expect(try await fleet.workerPIDs() == first)
        let before = clients.count
        try await ControlEndToEndTests.until { clients.count >= before + 6 }
        let (pids, failures) = await clients.finish()
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(Set(pids).isSubset(of: Set(first)), "only the old workers answered")
        #expect(first.allSatisfy(Self.isAlive))
    }

    @Test(.timeLimit(.minutes(3)))
    func aStuckRequestIsAnswered504AndItsWorkerIsRecycled() async throws {
        let fleet = try await Self.start(extra: "request_timeout = \"2s\"\nrecycle_stuck = true")
        defer { fleet.stop() }
        let first = try await fleet.workerPIDs()
        let connection = try RawConnection(port: fleet.relay)
        defer { connection.close() }
        let (response, took) = try await connection.timedExchange(
            RawConnection.request("GET", "/stuck"), timeout: 30)
        #expect(response.status == 504, "\(response.text)")
        #expect(response.text.contains("no response within 2s"), "\(response.text)")
        #expect(took >= .milliseconds(1900), "answered after \(took)")

        _ = try await fleet.mothership.waitFor("held a request past its request_timeout: replacing it")
        try await fleet.mothership.waitUntil("the stuck worker replaced", timeout: .seconds(60)) {
            fleet.mothership.output.contains("replaced by pid")
        }
        try await ControlEndToEndTests.until { first.contains { !Self.isAlive($0) } }
        let now = try await fleet.workerPIDs()
        #expect(now.count == 2 && Set(now).intersection(first).count == 1, "\(first) → \(now)")
        // The fleet serves on, from both workers.
        var served: Set<Int> = []
        for _ in 0..<20 {
            let fresh = try RawConnection(port: fleet.relay)
            let answer = try await fresh.exchange(RawConnection.request("GET", "/slow"))
            fresh.close()
            #expect(answer.status == 200)
            if let fields = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
                let pid = fields["pid"] as? Int
            {
                served.insert(pid)
            }
        }
        #expect(served.isSubset(of: Set(now)) && !served.isEmpty, "\(served) vs \(now)")
    }
}
