import Foundation
import MothershipTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `.env` files, `init --from Procfile` and `run --procfile` through the built binary (SPEC §12.4).
@Suite("Procfile and .env through the binary", .timeLimit(.minutes(2)))
struct ProcfileEndToEndTests {
    /// A small python app: a web server on $PORT, a worker loop and a release step.
    static let procfile = """
        # A small python app
        web: python3 -m http.server $PORT --bind 127.0.0.1

        worker: while true; do echo "working GREETING=$GREETING PORT=$PORT"; sleep 1; done\r
        release: echo migrated GREETING=$GREETING
        """

    static func get(_ url: String) async throws -> (Int, String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// Retries until the server answers 200 (it may still be starting).
    static func getEventually(_ url: String) async throws -> (Int, String) {
        var last: Result<(Int, String), any Error> = .success((0, ""))
        for _ in 0..<100 {
            do {
                let answer = try await get(url)
                if answer.0 == 200 { return answer }
                last = .success(answer)
            } catch {
                last = .failure(error)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try last.get()
    }

    @Test func envFilePrecedenceShowsInAShip() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-envfile")
        defer { directory.remove() }
        try directory.write(
            ".env", "# mothership's file\nP2=mfile\nP3=mfile\r\nexport P4=mfile\nP5='mfile'\n")
        try directory.write("ship.env", "P4=sfile\nP5=\"sfile\"\nQUOTED=\"a b\\tc ${P1}\"\n")
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership]
            env_file = ".env"
            [mothership.env]
            P3 = "menv"
            P4 = "menv"
            P5 = "menv"

            [[fleet.web]]
            name = "show"
            command = "/bin/sh"
            args = ["-c", "echo vars P1=$P1 P2=$P2 P3=$P3 P4=$P4 P5=$P5 QUOTED=\\"[$QUOTED]\\"; exec sleep 300"]
            env_file = "ship.env"
            env = { P5 = "senv" }
            """)
        let inherited = [
            "P1": "inherited", "P2": "inherited", "P3": "inherited", "P4": "inherited", "P5": "inherited",
        ]
        let mothership = try RunningMothership(["run"], in: directory.path, environment: inherited)
        defer { mothership.stop() }
        let output = try await mothership.waitFor("vars P1=")
        #expect(
            output.contains(
                "vars P1=inherited P2=mfile P3=menv P4=sfile P5=senv QUOTED=[a b\tc inherited]"),
            "\(output)")
    }

    @Test func aMissingOrMalformedEnvFileIsAnErrorForClearanceAndRun() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-envfile")
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership]
            env_file = ".env"

            [[fleet.web]]
            name = "marker"
            command = "/bin/sh"
            args = ["-c", "touch started; exec sleep 300"]
            env_file = ["ship.env"]
            """)
        try directory.write("ship.env", "OK=1\nexport\nBAD KEY=2\n")
        let clearance = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(clearance.status == 1)
        #expect(
            clearance.standardOutput.contains(
                "ship-manifest.toml:2:1: error: mothership.env_file: env file '.env' cannot be read: \(directory.path)/.env does not exist"
            ), "\(clearance.output)")
        #expect(
            clearance.standardOutput.contains(
                "ship-manifest.toml:8:13: error: fleet.web[0].env_file[0]: ship.env:2: expected KEY=VALUE, found 'export'"
            ), "\(clearance.output)")
        #expect(
            clearance.standardOutput.contains(
                "ship-manifest.toml:8:13: error: fleet.web[0].env_file[0]: ship.env:3: invalid variable name 'BAD KEY'"
            ), "\(clearance.output)")
        #expect(clearance.standardOutput.contains("clearance denied: 3 errors"))

        let run = try await BinaryRunner.run(["run"], in: directory.path, timeout: .seconds(20))
        #expect(run.status == 1)
        #expect(run.standardError.contains("env file '.env' cannot be read"), "\(run.output)")
        #expect(run.standardError.contains("ship.env:3: invalid variable name 'BAD KEY'"))
        #expect(run.standardError.contains("3 errors; nothing was started"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("started")))
    }

    @Test func initFromProcfileWritesAManifestThatPassesClearanceAndRuns() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-procfile")
        defer { directory.remove() }
        try directory.write("Procfile", Self.procfile)
        try directory.write(".env", "GREETING=hello-from-dotenv\n")
        try directory.write("index.html", "python app home\n")
        let elsewhere = try TemporaryDirectory(prefix: "mothership-procfile-cwd")
        defer { elsewhere.remove() }

        // Written beside the Procfile, wherever init runs.
        let written = try await BinaryRunner.run(
            ["init", "--from", directory.file("Procfile")], in: elsewhere.path)
        #expect(written.status == 0, "\(written.output)")
        #expect(
            written.standardOutput.contains("Wrote \(directory.path)/ship-manifest.toml: 3 process types"))
        let text = try String(contentsOfFile: directory.file("ship-manifest.toml"), encoding: .utf8)
        #expect(text.contains("env_file = \".env\""))
        #expect(text.contains("# healthcheck = \"/\""))
        #expect(text.contains("[[mothership.prelaunch]]"))
        #expect(text.contains("bind = \"127.0.0.1:5000\""))

        let again = try await BinaryRunner.run(["init", "--from", "Procfile"], in: directory.path)
        #expect(again.status == 1)
        #expect(
            again.standardError.contains("ship-manifest.toml already exists; use --force to overwrite it"))

        let clearance = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(clearance.status == 0, "\(clearance.output)")
        #expect(
            clearance.standardOutput.contains(
                "clearance granted: 2 ships in 2 groups, 0 bays, 1 prelaunch job, 0 modules, 1 bind, 1 route"),
            "\(clearance.output)")
        #expect(!clearance.output.contains("warning"), "\(clearance.output)")

        // Run it as written, on free ports (others may be using 5000, 8080 and 9090 on this machine);
        // web has `workers = 1`, so it takes two ports (its replacement starts on the second).
        let (web, front, metrics) = (
            ProcessInspector.freePorts(2), ProcessInspector.freePort(), ProcessInspector.freePort()
        )
        try directory.write(
            "ship-manifest.toml",
            text.replacingOccurrences(of: "127.0.0.1:5000", with: "127.0.0.1:\(web)")
                .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(front)")
                .replacingOccurrences(of: "metrics_port = 9090", with: "metrics_port = \(metrics)"))
        let mothership = try RunningMothership(["run"], in: directory.path)
        defer { mothership.stop() }
        let output = try await mothership.waitFor("working GREETING=hello-from-dotenv PORT=5100")
        #expect(output.contains("migrated GREETING=hello-from-dotenv"), "\(output)")
        let (status, body) = try await Self.getEventually("http://127.0.0.1:\(front)/index.html")
        #expect(status == 200)
        #expect(body == "python app home\n")
    }

    @Test func runProcfileRunsItForemanStyle() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-procfile")
        defer { directory.remove() }
        try directory.write("Procfile", Self.procfile)
        try directory.write(".env", "GREETING=\"hello ${USER_NAME}\"\n")
        try directory.write("index.html", "foreman style\n")
        let base = ProcessInspector.freePort()
        let mothership = try RunningMothership(
            ["run", "--procfile", "Procfile"], in: directory.path,
            environment: ["PORT": String(base), "USER_NAME": "ada"])
        defer { mothership.stop() }
        let output = try await mothership.waitFor("working GREETING=hello ada PORT=\(base + 100)")
        // release ran first, as a prelaunch job, with its prefix.
        let release = try #require(output.range(of: "migrated GREETING=hello ada"))
        let worker = try #require(output.range(of: "working GREETING"))
        #expect(release.lowerBound < worker.lowerBound)
        #expect(
            output.split(separator: "\n").contains { $0.hasPrefix("release") && $0.contains("| migrated") })
        #expect(output.split(separator: "\n").contains { $0.hasPrefix("worker") && $0.contains("| working") })
        let (status, body) = try await Self.getEventually("http://127.0.0.1:\(base)/index.html")
        #expect(status == 200)
        #expect(body == "foreman style\n")
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        #expect(mothership.output.contains("landed"))
    }

    @Test func runProcfileReportsABadProcfileAndStartsNothing() async throws {
        let directory = try TemporaryDirectory(prefix: "mothership-procfile")
        defer { directory.remove() }
        try directory.write("Procfile", "web: touch started\nweb: touch again\nnot a process line\n")
        let run = try await BinaryRunner.run(["run", "--procfile", "Procfile"], in: directory.path)
        #expect(run.status == 1)
        #expect(
            run.standardError.contains("Procfile:2: duplicate process type 'web' (also on line 1)"),
            "\(run.output)")
        #expect(run.standardError.contains("Procfile:3: expected 'type: command'"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("started")))
    }
}
