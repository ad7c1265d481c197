import Foundation
import MothershipTestSupport
import Testing

/// The control socket and its commands (SPEC §12.1) through the built binary, against a running
/// fleet of real processes.
@Suite("Control socket and commands end to end")
struct ControlEndToEndTests {
    /// The fleet most control tests run: `web` (the relay tests' python ship on `port`, routed
    /// `/.*` on the `http` bind) and `ticker`, a worker that prints `tick N` five times a second.
    static func webAndTicker(port: Int) -> String {
        """
        [[fleet.web]]
        name = "web"
        command = "python3"
        args = ["ship.py", "http", "web", "\(port)"]
        bind = "127.0.0.1:\(port)"
        routes = [{ bind = "http", pattern = "/.*" }]
        start_timeout = "60s"

        [[fleet.workers]]
        name = "ticker"
        command = "sh"
        args = ["-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
        depends_on = ["web"]
        """
    }

    struct Fleet {
        let directory: TemporaryDirectory
        let mothership: RunningMothership
        let relay: Int
        /// The ship's port (its command line names it).
        let port: Int

        func command(_ arguments: String...) async throws -> BinaryRunner.Outcome {
            try await BinaryRunner.run(arguments, in: directory.path, timeout: .seconds(60))
        }

        func document() async throws -> [String: Any] {
            let outcome = try await command("status", "--json")
            try #require(outcome.status == 0, "\(outcome.output)")
            return try #require(
                try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any])
        }

        func vessel(_ name: String) async throws -> [String: Any] {
            let vessels = try #require(try await document()["vessels"] as? [[String: Any]])
            return try #require(vessels.first { $0["name"] as? String == name })
        }

        func stop() {
            mothership.stop()
            directory.remove()
        }
    }

    static func start() async throws -> Fleet {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-control")
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            """
            [mothership]
            name = "controlled"

            [mothership.bind]
            http = "127.0.0.1:\(relay)"

            \(ControlEndToEndTests.webAndTicker(port: port))
            """,
            waitingFor: ["lifecycle: Running", "control socket on "])
        return Fleet(directory: directory, mothership: mothership, relay: relay, port: port)
    }

    @Test(.timeLimit(.minutes(3)))
    func statusRestartStopStartLogsAndLandDriveTheRunningFleet() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }
        // The socket: beside the manifest, mode 0600.
        let socket = fleet.directory.path + "/.mothership.sock"
        var info = stat()
        #expect(lstat(socket, &info) == 0 && info.st_mode & 0o777 == 0o600)

        // status: a table, and the JSON document.
        let table = try await fleet.command("status")
        #expect(table.status == 0, "\(table.output)")
        #expect(table.standardOutput.hasPrefix("controlled: running\nVESSEL"), "\(table.standardOutput)")
        #expect(table.standardOutput.contains("ticker  workers  running"), "\(table.standardOutput)")
        let document = try await fleet.document()
        #expect(document["name"] as? String == "controlled" && document["state"] as? String == "running")
        let web = try await fleet.vessel("web")
        let firstPID = try #require(web["pid"] as? Int)
        #expect(web["kind"] as? String == "ship" && web["restarts"] as? Int == 0)
        #expect(web["workers"] as? [Any] != nil && web.keys.contains("healthy"))

        // restart: a new process, counted as a restart; the relay serves it.
        let restart = try await fleet.command("restart", "web")
        #expect(restart.status == 0, "\(restart.output)")
        #expect(restart.standardOutput.hasPrefix("web: restarted (pid \(firstPID) → "), "\(restart.output)")
        let restarted = try await fleet.vessel("web")
        #expect(restarted["pid"] as? Int != firstPID && restarted["restarts"] as? Int == 1)
        #expect(
            try RelayEndToEndTests.fetch("http://127.0.0.1:\(fleet.relay)/after-restart").contains(
                "after-restart"))

        // stop: stays stopped (no pid), its dependency keeps running; a second stop is refused.
        let stop = try await fleet.command("stop", "ticker")
        #expect(stop.status == 0 && stop.standardOutput == "ticker: stopped\n", "\(stop.output)")
        let stopped = try await fleet.vessel("ticker")
        #expect(stopped["state"] as? String == "stopped" && stopped["pid"] is NSNull)
        #expect(try await fleet.vessel("web")["state"] as? String == "running")
        let again = try await fleet.command("stop", "ticker")
        #expect(
            again.status == 1 && again.standardError.contains("'ticker' is stopped already"),
            "\(again.output)")

        // start: running again.
        let start = try await fleet.command("start", "ticker")
        #expect(
            start.status == 0 && start.standardOutput.hasPrefix("ticker: running (pid "), "\(start.output)")

        // logs -n: the last lines of a vessel; -f: new ones as they come.
        try await fleet.mothership.waitFor("tick 3")
        let logs = try await fleet.command("logs", "-n", "2", "ticker")
        let lines = logs.standardOutput.split(separator: "\n")
        #expect(logs.status == 0 && lines.count == 2, "\(logs.output)")
        #expect(lines.allSatisfy { $0.hasPrefix("ticker | tick ") }, "\(lines)")
        let follower = try RunningMothership(["logs", "-f", "-n", "0", "ticker"], in: fleet.directory.path)
        defer { follower.stop() }
        _ = try await follower.waitFor("ticker | tick ")
        let seen = follower.lines.count
        _ = try await follower.waitFor("ticker | tick ", timeout: .seconds(20))
        try await Self.until { follower.lines.count > seen }

        // land: the run exits 0, the socket is gone, and the follower ends with it.
        let land = try await fleet.command("land")
        #expect(land.status == 0 && land.standardOutput.hasSuffix("controlled landed\n"), "\(land.output)")
        #expect(try await fleet.mothership.waitForExit() == 0)
        #expect(lstat(socket, &info) != 0)
        #expect(try await follower.waitForExit() == 0)
    }

    @Test(.timeLimit(.minutes(2)))
    func wrongNamesMissingFleetsConcurrentRestartsAndASecondRunAreRefused() async throws {
        let fleet = try await Self.start()
        defer { fleet.stop() }
        let wrong = try await fleet.command("restart", "wbe")
        #expect(wrong.status == 1, "\(wrong.output)")
        #expect(
            wrong.standardError == "mothership: unknown vessel 'wbe'; did you mean 'web'?\n",
            "\(wrong.output)")
        let usage = try await fleet.command("restart")
        #expect(usage.status == 2, "\(usage.output)")

        // Two restarts at once: never two processes of the ship.
        let web = try await fleet.vessel("web")
        async let first = fleet.command("restart", "web", "--no-wait")
        async let second = fleet.command("restart", "web", "--no-wait")
        let outcomes = try await [first, second]
        #expect(outcomes.contains { $0.status == 0 }, "\(outcomes.map(\.output))")
        // The other is refused: while the first is under way, or (arriving later) while the new
        // process is still starting.
        for outcome in outcomes where outcome.status != 0 {
            #expect(
                outcome.standardError.contains("'web' is being restarted already")
                    || outcome.standardError.contains("'web' has no running process (it is starting)"),
                "\(outcome.output)")
        }
        try await Self.until {
            let now = try? await fleet.vessel("web")
            return now?["state"] as? String == "running" && now?["pid"] as? Int != web["pid"] as? Int
        }
        let ships = try await BinaryRunner.runTool(
            "/usr/bin/pgrep", ["-f", "ship.py http web \(fleet.port)"])
        #expect(ships.split(separator: "\n").count == 1, "\(ships)")

        // A second run of the same manifest is refused before it starts anything.
        let rival = try RunningMothership([], in: fleet.directory.path)
        defer { rival.stop() }
        #expect(try await rival.waitForExit() == 1)
        #expect(
            rival.output.contains(
                "another mothership is running this manifest (mothership pid \(fleet.mothership.pid)"),
            "\(rival.output)")
        #expect(try await fleet.vessel("web")["state"] as? String == "running")

        // No fleet at all.
        let empty = try TemporaryDirectory(prefix: "mothership-control-none")
        defer { empty.remove() }
        try empty.write(
            "ship-manifest.toml", "[[fleet.web]]\nname = \"web\"\ncommand = \"sleep\"\nargs = [\"60\"]\n")
        let none = try await BinaryRunner.run(["status"], in: empty.path)
        #expect(none.status == 1)
        #expect(
            none.standardError.hasPrefix(
                "mothership: no mothership is running for ship-manifest.toml (no control socket at "),
            "\(none.output)")
    }

    static func until(_ condition: @escaping () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw ConditionTimedOut() }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

struct ConditionTimedOut: Error {}

extension BinaryRunner {
    /// Another program's standard output (read off the cooperative pool: the reads block).
    static func runTool(_ path: String, _ arguments: [String]) async throws -> String {
        try await RawConnection.offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// systemd's notify protocol through the built binary: a datagram socket the test listens on as
/// `NOTIFY_SOCKET`.
@Suite("systemd notify end to end")
struct SystemdNotifyEndToEndTests {
    /// A bound datagram socket and what arrives on it.
    final class Listener: @unchecked Sendable {
        let path: String
        let descriptor: Int32

        init(path: String) throws {
            self.path = path
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { room in
                room.copyBytes(from: Array(path.utf8) + [0])
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(descriptor >= 0 && bound == 0, "cannot bind \(path): errno \(errno)")
        }

        deinit { close(descriptor) }

        /// The next datagram, within `seconds`.
        func next(within seconds: Double = 30) -> String? {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(seconds * 1000)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
        }

        /// Datagrams until one contains `text` (those before it included), within `seconds`.
        func until(_ text: String, within seconds: Double = 30) -> [String] {
            var seen: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, let message = next(within: max(0.1, deadline.timeIntervalSinceNow)) {
                seen.append(message)
                if message.contains(text) { return seen }
            }
            return seen
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func readyOnceRunningWatchdogWhileRunningAndStoppingWhenLanding() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-notify")
        defer { directory.remove() }
        let listener = try Listener(path: directory.path + "/notify.sock")
        try directory.write(
            "ship-manifest.toml",
            "[mothership]\nname = \"notified\"\n\n[[fleet.workers]]\nname = \"sleeper\"\ncommand = \"sleep\"\nargs = [\"300\"]\n"
        )
        let mothership = try RunningMothership(
            [], in: directory.path,
            environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"])
        defer { mothership.stop() }
        let untilReady = listener.until("READY=1")
        #expect(untilReady.last == "READY=1\nSTATUS=Running", "\(untilReady)")
        // Nothing claimed ready before Running.
        #expect(untilReady.dropLast().allSatisfy { !$0.contains("READY=1") && !$0.contains("STOPPING") })
        try await mothership.waitFor("lifecycle: Running")
        // The watchdog, every 200 ms (half of WATCHDOG_USEC).
        let pets = listener.until("WATCHDOG=1") + listener.until("WATCHDOG=1")
        #expect(pets.filter { $0 == "WATCHDOG=1" }.count == 2, "\(pets)")
        // A reload (SIGHUP, the manifest unchanged) is framed by RELOADING=1 and READY=1.
        mothership.signal(SIGHUP)
        let reloading = listener.until("RELOADING=1")
        #expect(reloading.last == "RELOADING=1\nSTATUS=Reloading", "\(reloading)")
        let reloaded = listener.until("READY=1")
        #expect(reloaded.last == "READY=1\nSTATUS=Running", "\(reloaded)")
        try await mothership.waitFor("reload: 0 added, 0 removed, 0 changed, 1 unchanged")
        mothership.signal(SIGTERM)
        let landing = listener.until("STOPPING=1")
        #expect(landing.last == "STOPPING=1\nSTATUS=Draining", "\(landing)")
        #expect(try await mothership.waitForExit() == 0)
    }
}

extension ControlEndToEndTests {
    /// A directory the run cannot create its socket in: the fleet runs, without commands, and
    /// says so; `control_socket = false` turns the socket off and the commands say that.
    @Test(.timeLimit(.minutes(1)))
    func withoutAWritableSocketPathTheFleetStillRunsAndSaysSo() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-control-readonly")
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            "[mothership]\ncontrol_socket = \"/proc/mothership.sock\"\n\n[[fleet.workers]]\nname = \"sleeper\"\ncommand = \"sleep\"\nargs = [\"300\"]\n"
        )
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        #expect(
            mothership.output.contains("no control socket: cannot listen on /proc/mothership.sock"),
            "\(mothership.output)")

        try directory.write(
            "off.toml",
            "[mothership]\ncontrol_socket = false\n\n[[fleet.workers]]\nname = \"a\"\ncommand = \"sleep\"\n")
        let off = try await BinaryRunner.run(["status", "-c", "off.toml"], in: directory.path)
        #expect(
            off.status == 1 && off.standardError.contains("turns the control socket off"), "\(off.output)")
    }
}

/// `mothership reload` and SIGHUP (SPEC §12.3) through the built binary.
@Suite("Reload end to end")
struct ReloadEndToEndTests {
    static func manifest(relay: Int, port: Int, workers: String) -> String {
        """
        [mothership]
        name = "reloaded"

        [mothership.bind]
        http = "127.0.0.1:\(relay)"

        [[fleet.web]]
        name = "web"
        command = "python3"
        args = ["ship.py", "http", "web", "\(port)"]
        bind = "127.0.0.1:\(port)"
        routes = [{ bind = "http", pattern = "/.*" }]
        start_timeout = "60s"
        \(workers)
        """
    }

    static func worker(_ name: String, says word: String) -> String {
        """

        [[fleet.workers]]
        name = "\(name)"
        command = "sh"
        args = ["-c", "while true; do echo \(word); sleep 0.2; done"]
        """
    }

    @Test(.timeLimit(.minutes(3)))
    func addedRemovedAndChangedVesselsApplyUnchangedOnesKeepTheirProcessesAndClients() async throws {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-reload")
        defer { directory.remove() }
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        let before = Self.worker("ticker", says: "tick") + Self.worker("doomed", says: "doom")
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, Self.manifest(relay: relay, port: port, workers: before),
            waitingFor: ["lifecycle: Running", "control socket on "])
        defer { mothership.stop() }
        let fleet = ControlEndToEndTests.Fleet(
            directory: directory, mothership: mothership, relay: relay, port: port)
        let webPID = try #require(try await fleet.vessel("web")["pid"] as? Int)
        let tickerPID = try #require(try await fleet.vessel("ticker")["pid"] as? Int)
        let client = try RawConnection(port: relay)
        #expect(try await client.exchange(RawConnection.request("GET", "/before")).status == 200)

        // One removed, one changed, one added, one unchanged.
        let after = Self.worker("ticker", says: "tock") + Self.worker("fresh", says: "new")
        try directory.write(
            "ship-manifest.toml",
            RelayEndToEndTests.underTest(Self.manifest(relay: relay, port: port, workers: after)))
        let reload = try await fleet.command("reload")
        #expect(reload.status == 0, "\(reload.output)")
        #expect(
            reload.standardOutput == "reload: 1 added, 1 removed, 1 changed, 1 unchanged\n",
            "\(reload.output)")
        try await mothership.waitFor("reload: 1 added, 1 removed, 1 changed, 1 unchanged")
        try await mothership.waitFor("tock")
        try await mothership.waitFor("new")
        #expect(try await fleet.vessel("web")["pid"] as? Int == webPID, "an unchanged ship keeps its process")
        #expect(try await fleet.vessel("ticker")["pid"] as? Int != tickerPID)
        let names = try #require(try await fleet.document()["vessels"] as? [[String: Any]]).compactMap {
            $0["name"] as? String
        }
        #expect(names == ["web", "ticker", "fresh"])
        // The client's kept-alive connection is served across the reload.
        #expect(try await client.exchange(RawConnection.request("GET", "/after")).status == 200)

        // A manifest with an error changes nothing.
        try directory.write("ship-manifest.toml", "[[fleet.web]]\nname = \"web\"\n")
        let broken = try await fleet.command("reload")
        #expect(broken.status == 1, "\(broken.output)")
        #expect(broken.standardError.contains("error"), "\(broken.output)")
        #expect(broken.standardError.contains("nothing changed"), "\(broken.output)")
        let unchanged = try #require(try await fleet.document()["vessels"] as? [[String: Any]]).compactMap {
            $0["name"] as? String
        }
        #expect(unchanged == ["web", "ticker", "fresh"])

        // What belongs to the process (its relay threads) is refused, with nothing changed.
        let rethreaded = Self.manifest(relay: relay, port: port, workers: after).replacingOccurrences(
            of: "name = \"reloaded\"", with: "name = \"reloaded\"\nrelay_workers = 3")
        try directory.write("ship-manifest.toml", RelayEndToEndTests.underTest(rethreaded))
        let refused = try await fleet.command("reload")
        #expect(refused.status == 1, "\(refused.output)")
        #expect(
            refused.standardError.contains("reload cannot change relay_workers in place; nothing changed"),
            "\(refused.output)")
        #expect(try await client.exchange(RawConnection.request("GET", "/still")).status == 200)

        // SIGHUP reloads too.
        let hup =
            Self.worker("ticker", says: "tock") + Self.worker("fresh", says: "new")
            + Self.worker("hup", says: "hangup")
        try directory.write(
            "ship-manifest.toml",
            RelayEndToEndTests.underTest(Self.manifest(relay: relay, port: port, workers: hup)))
        mothership.signal(SIGHUP)
        try await mothership.waitFor("reload: 1 added, 0 removed, 0 changed, 3 unchanged")
        try await mothership.waitFor("hangup")
        #expect(try await fleet.vessel("web")["pid"] as? Int == webPID)
    }
}

extension ReloadEndToEndTests {
    static func relayManifest(
        relay: Int, port: Int, webRoutes: String, rateLimit: Bool = false, admin: Int? = nil, api: Int? = nil
    ) -> String {
        var text = """
            [mothership]
            name = "swapped"

            [mothership.bind]
            http = "127.0.0.1:\(relay)"
            \(admin.map { "admin = \"127.0.0.1:\($0)\"" } ?? "")

            """
        if rateLimit { text += "[mothership.rate_limiting]\nper_ip_rpm = 4\n\n" }
        text += """
            [[fleet.web]]
            name = "web"
            command = "python3"
            args = ["ship.py", "http", "web", "\(port)"]
            bind = "127.0.0.1:\(port)"
            routes = [\(webRoutes)]
            start_timeout = "60s"

            """
        if let api {
            text += """
                [[fleet.web]]
                name = "api"
                command = "python3"
                args = ["ship.py", "http", "api", "\(api)"]
                bind = "127.0.0.1:\(api)"
                routes = [{ bind = "http", pattern = "/api/.*" }]
                start_timeout = "60s"

                """
        }
        return text
    }

    /// SPEC §12.3's relay part: routes, a rate limit, a new ship with its route, a new bind and a
    /// removed one, swapped while a client keeps its connection open, and the ship whose routes
    /// changed keeps its process.
    @Test(.timeLimit(.minutes(3)))
    func routesRateLimitsAndBindsSwapWithoutClosingConnections() async throws {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let admin = LoopbackPorts.free()
        let api = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-reload-relay")
        defer { directory.remove() }
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        let mothership = try await RelayEndToEndTests.launch(
            in: directory,
            Self.relayManifest(relay: relay, port: port, webRoutes: #"{ bind = "http", pattern = "/.*" }"#),
            waitingFor: ["lifecycle: Running", "control socket on "])
        defer { mothership.stop() }
        let fleet = ControlEndToEndTests.Fleet(
            directory: directory, mothership: mothership, relay: relay, port: port)
        let webPID = try #require(try await fleet.vessel("web")["pid"] as? Int)
        let client = try RawConnection(port: relay)
        let before = try await client.exchange(RawConnection.request("GET", "/anything"))
        #expect(before.status == 200 && before.text.contains(#""ship": "web""#), "\(before.text)")

        // Routes narrowed, a ship and its route added, a rate limit and a bind added.
        try directory.write(
            "ship-manifest.toml",
            RelayEndToEndTests.underTest(
                Self.relayManifest(
                    relay: relay, port: port,
                    webRoutes:
                        #"{ bind = "http", pattern = "/app/.*" }, { bind = "admin", pattern = "/.*" }"#,
                    rateLimit: true, admin: admin, api: api)))
        let reload = try await fleet.command("reload")
        #expect(reload.status == 0, "\(reload.output)")
        #expect(
            reload.standardOutput == "reload: 1 added, 0 removed, 0 changed, 1 unchanged\n",
            "\(reload.output)")
        try await mothership.waitFor("reload: relay: 1 bind took new settings, 1 added, 0 moved, 0 removed")
        #expect(
            try await fleet.vessel("web")["pid"] as? Int == webPID, "a change of routes keeps the process")
        try await ControlEndToEndTests.until {
            (try? await fleet.vessel("api")["state"] as? String) == "running"
        }

        // The new bind serves (the limit counts per client address over every bind: 1 of 4).
        let adminClient = try RawConnection(port: admin)
        #expect(try await adminClient.exchange(RawConnection.request("GET", "/x")).status == 200)

        // The same connection, now under the new routes and the new limit (4 a minute).
        #expect(try await client.exchange(RawConnection.request("GET", "/anything")).status == 404)
        let app = try await client.exchange(RawConnection.request("GET", "/app/1"))
        #expect(app.status == 200 && app.text.contains(#""ship": "web""#), "\(app.text)")
        let apiAnswer = try await client.exchange(RawConnection.request("GET", "/api/1"))
        #expect(apiAnswer.status == 200 && apiAnswer.text.contains(#""ship": "api""#), "\(apiAnswer.text)")
        var statuses: [Int] = []
        for index in 1...4 {
            statuses.append(try await client.exchange(RawConnection.request("GET", "/app/\(index)")).status)
        }
        #expect(statuses.contains(429), "the new rate limit applies to the open connection: \(statuses)")

        // A reload removes the new bind: it stops accepting, and its open connection closes (it
        // was idle), while the first connection goes on being served.
        try directory.write(
            "ship-manifest.toml",
            RelayEndToEndTests.underTest(
                Self.relayManifest(
                    relay: relay, port: port, webRoutes: #"{ bind = "http", pattern = "/.*" }"#, api: api)))
        let second = try await fleet.command("reload")
        #expect(second.status == 0, "\(second.output)")
        try await mothership.waitFor("reload: relay: 1 bind took new settings, 0 added, 0 moved, 1 removed")
        #expect(await adminClient.closes(within: 10), "the removed bind's idle connection closes")
        #expect(throws: (any Error).self) { _ = try RawConnection(port: admin) }
        let after = try await client.exchange(RawConnection.request("GET", "/anything"))
        #expect(after.status == 200, "the limit is gone and the catch-all route is back: \(after.status)")
        #expect(try await fleet.vessel("web")["pid"] as? Int == webPID)
    }
}

extension ReloadEndToEndTests {
    /// A TLS bind keeps its socket across a reload; the certificate is read again (renewed in place),
    /// new connections get it, and the bind's routes change like a plain bind's.
    @Test(.timeLimit(.minutes(2)))
    func aTLSBindReadsItsRenewedCertificateAndNewRoutesOnReload() async throws {
        let relay = LoopbackPorts.free()
        let port = LoopbackPorts.free()
        let directory = try TemporaryDirectory(prefix: "mothership-reload-tls")
        defer { directory.remove() }
        try directory.write("ship.py", RelayEndToEndTests.shipScript)
        func certificate(_ name: String) async throws {
            try await RelayEndToEndTests.makeCertificate(in: directory, for: name)
        }
        func subject() async throws -> String {
            try await RelayEndToEndTests.run(
                "sh",
                [
                    "-c",
                    "openssl s_client -connect 127.0.0.1:\(relay) </dev/null 2>/dev/null | openssl x509 -noout -subject",
                ], in: directory.path
            ).output
        }
        func manifest(pattern: String) -> String {
            """
            [mothership.bind]
            https = { addr = "127.0.0.1:\(relay)", tls = { cert = "cert.pem", key = "key.pem" } }
            \(RelayEndToEndTests.ship("web", port: port, routes: "[\"https:\(pattern)\"]"))
            """
        }
        try await certificate("first.example")
        let mothership = try await RelayEndToEndTests.launch(
            in: directory, manifest(pattern: "/.*"), waitingFor: ["lifecycle: Running", "control socket on "])
        defer { mothership.stop() }
        #expect(try await subject().contains("first.example"))
        func status(_ path: String) async throws -> String {
            try await RelayEndToEndTests.run(
                "curl",
                [
                    "-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                    "https://127.0.0.1:\(relay)\(path)",
                ],
                in: directory.path
            ).output
        }
        #expect(try await status("/x") == "200")

        try await certificate("second.example")
        try directory.write("ship-manifest.toml", RelayEndToEndTests.underTest(manifest(pattern: "/only/.*")))
        let reload = try await BinaryRunner.run(["reload"], in: directory.path, timeout: .seconds(60))
        #expect(reload.status == 0, "\(reload.output)")
        #expect(try await subject().contains("second.example"))
        #expect(try await status("/x") == "404")
        #expect(try await status("/only/x") == "200")
    }
}

/// `[mothership.logs]` through the built binary.
@Suite("Log files end to end")
struct LogFilesEndToEndTests {
    @Test(.timeLimit(.minutes(2)))
    func vesselsAndMothershipWriteTheirFilesAndSIGUSR2ReopensThemAfterAMove() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-logfiles")
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership.logs]
            dir = "log"
            max_size = "64KB"
            keep = 2

            [[fleet.workers]]
            name = "ticker"
            command = "sh"
            args = ["-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"]
            """)
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitFor("tick 5")
        let log = directory.path + "/log"
        try await ControlEndToEndTests.until {
            (try? String(contentsOfFile: log + "/ticker.log", encoding: .utf8))?.contains(" stdout tick 5\n")
                == true
        }
        let own = try String(contentsOfFile: log + "/mothership.log", encoding: .utf8)
        #expect(own.contains(" info lifecycle: Running\n"), "\(own)")
        // logrotate's way: move the file, then SIGUSR2; new lines go to a new file.
        try FileManager.default.moveItem(atPath: log + "/ticker.log", toPath: log + "/ticker.log.moved")
        mothership.signal(SIGUSR2)
        try await ControlEndToEndTests.until {
            (try? String(contentsOfFile: log + "/ticker.log", encoding: .utf8))?.contains(" stdout tick ")
                == true
        }
        // `mothership logs --reopen` does the same through the control socket.
        try FileManager.default.moveItem(atPath: log + "/ticker.log", toPath: log + "/ticker.log.moved2")
        let reopened = try await BinaryRunner.run(["logs", "--reopen"], in: directory.path)
        #expect(
            reopened.status == 0 && reopened.standardOutput == "log files reopened\n", "\(reopened.output)")
        try await ControlEndToEndTests.until {
            (try? String(contentsOfFile: log + "/ticker.log", encoding: .utf8))?.contains(" stdout tick ")
                == true
        }
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        let moved = try String(contentsOfFile: log + "/ticker.log.moved", encoding: .utf8)
        #expect(moved.hasSuffix("\n") && moved.contains(" stdout tick 0\n"))
    }

    /// A vessel writing 50 MB into files of at most 1 MB, 3 kept: at most 4 files, none over the
    /// size, every line whole, in order.
    @Test(.timeLimit(.minutes(3)))
    func aChattyVesselsOutputRotatesWithNoFileOverTheSizeAndNoLineSplit() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-logfiles-rotate")
        defer { directory.remove() }
        let count = 500_000  // 50 MB with the timestamps
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership]
            control_socket = false

            [mothership.logs]
            dir = "log"
            max_size = "1MB"
            keep = 3

            [[fleet.workers]]
            name = "chatty"
            command = "python3"
            args = ["-c", "import sys, time\\nfor i in range(\(count)): print('line %d %s' % (i, 'x' * 60))\\nsys.stdout.flush()\\nprint('done', flush=True)\\ntime.sleep(300)"]
            """)
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("chatty", timeout: .seconds(60))
        let log = directory.path + "/log"
        try await ControlEndToEndTests.until {
            (try? String(contentsOfFile: log + "/chatty.log", encoding: .utf8))?.contains(" stdout done\n")
                == true
        }
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: log).filter {
            $0.hasPrefix("chatty.log")
        }.sorted()
        #expect(names == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"], "\(names)")
        var last = -1
        for name in ["chatty.log.3", "chatty.log.2", "chatty.log.1", "chatty.log"] {
            let text = try String(contentsOfFile: log + "/" + name, encoding: .utf8)
            #expect(text.utf8.count <= 1 << 20, "\(name) is over the size")
            #expect(text.hasSuffix("\n"), "\(name) ends mid-line")
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 3 && parts[2] == "done" { continue }
                #expect(parts.count == 5 && parts[1] == "stdout" && parts[4].count == 60, "\(name): \(line)")
                let number = Int(parts[3]) ?? -1
                #expect(number > last, "\(name): \(line) after line \(last)")
                last = number
            }
        }
        #expect(last == count - 1)
    }

    /// A full disk (the log file is `/dev/full`, where every write fails with ENOSPC): the vessel
    /// runs on unhindered, the lines are dropped and counted, and mothership says so once.
    @Test(.timeLimit(.minutes(1)))
    func aFullDiskDropsLinesWithoutBlockingTheVessel() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-logfiles-full")
        defer { directory.remove() }
        let metrics = LoopbackPorts.free()
        try FileManager.default.createDirectory(
            atPath: directory.path + "/log", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: directory.path + "/log/chatty.log", withDestinationPath: "/dev/full")
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership]
            control_socket = false
            metrics_port = \(metrics)

            [mothership.logs]
            dir = "log"

            [[fleet.workers]]
            name = "chatty"
            command = "sh"
            args = ["-c", "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo done; sleep 300"]
            """)
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("chatty     | done")
        try await mothership.waitFor("log file of 'chatty': dropping lines: cannot write")
        #expect(
            mothership.output.components(separatedBy: "dropping lines").count == 2, "one notice per burst")
        try await ControlEndToEndTests.until {
            let text = (try? RelayEndToEndTests.fetch("http://127.0.0.1:\(metrics)/metrics")) ?? ""
            return text.contains(#"mothership_log_dropped_lines_total{vessel="chatty"} 2001"#)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aLogDirectoryThatCannotBeWrittenStopsTheLaunchBeforeAnythingStarts() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-logfiles-bad")
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            "[mothership.logs]\ndir = \"/proc/mothership-log\"\n\n[[fleet.workers]]\nname = \"w\"\ncommand = \"sh\"\nargs = [\"-c\", \"touch started; sleep 60\"]\n"
        )
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        #expect(try await mothership.waitForExit() == 1)
        #expect(
            mothership.output.contains("cannot create the log directory /proc/mothership-log: "),
            "\(mothership.output)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/started"))
    }
}
