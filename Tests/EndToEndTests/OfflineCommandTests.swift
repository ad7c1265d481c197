import MothershipTestSupport
import Testing

/// `init`, `clearance` and `chart` through the built binary, as a user runs them.
@Suite("Offline commands through the binary", .timeLimit(.minutes(1)))
struct OfflineCommandTests {
    @Test func clearanceGrantsTheFullExample() async throws {
        let outcome = try await BinaryRunner.run([
            "clearance", "-c", Repository.path("Examples/full/ship-manifest.toml"),
        ])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.standardOutput.contains("clearance granted: "))
        #expect(!outcome.output.contains("error:"))
    }

    @Test func clearanceGrantsTheQuickstart() async throws {
        let outcome = try await BinaryRunner.run([
            "-c", Repository.path("Examples/quickstart/ship-manifest.toml"), "clearance",
        ])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.standardOutput.contains("clearance granted: 2 ships in 2 groups"))
    }

    @Test func typoIsReportedWithLineAndSuggestion() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            """
            [[fleet.web]]
            name = "app"
            command = "/bin/sh"
            depend_on = ["db"]
            """)
        let outcome = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(
            outcome.standardOutput.contains(
                "ship-manifest.toml:4:1: error: fleet.web[0].depend_on: unknown key 'depend_on' in a ship; did you mean 'depends_on'?"
            ))
        #expect(outcome.standardOutput.contains("clearance denied: 1 error, 0 warnings"))
    }

    @Test func cycleIsPrintedAsAPath() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write(
            "cycle.toml",
            """
            [[fleet.web]]
            name = "a"
            command = "/bin/sh"
            depends_on = ["b"]
            [[fleet.web]]
            name = "b"
            command = "/bin/sh"
            depends_on = ["a"]
            """)
        let outcome = try await BinaryRunner.run(["clearance", "--config", directory.file("cycle.toml")])
        #expect(outcome.status == 1)
        #expect(
            outcome.standardOutput.contains(
                ":4:1: error: fleet.web[0].depends_on: dependency cycle: a -> b -> a"))
    }

    @Test func machineDependentProblemsAreWarningsForClearance() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            """
            [[mothership.static_dirs]]
            path = "./public"
            prefix = "/"
            [[fleet.web]]
            name = "app"
            command = "no-such-program-here"
            [[modules]]
            name = "auth"
            wasm = "./auth.wasm"
            """)
        let outcome = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(
            outcome.standardOutput.contains(
                "ship-manifest.toml:6:1: warning: fleet.web[0].command: command 'no-such-program-here' was not found on PATH"
            ))
        #expect(outcome.standardOutput.contains("warning: modules[0].wasm: WASM file './auth.wasm'"))
        #expect(
            outcome.standardOutput.contains(
                "warning: mothership.static_dirs[0].path: static directory './public'"))
        #expect(outcome.standardOutput.contains("; 3 warnings"))
    }

    @Test func initWritesAManifestThatClearanceAcceptsAndRefusesToOverwrite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try await BinaryRunner.run(["init"], in: directory.path)
        #expect(first.status == 0, "\(first.output)")
        let written = try String(contentsOfFile: directory.file("ship-manifest.toml"), encoding: .utf8)
        let clearance = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(clearance.status == 0, "\(clearance.output)")
        #expect(
            !clearance.output.contains("warning"),
            "the starter fleet runs on a fresh machine: \(clearance.output)")

        try directory.write("ship-manifest.toml", "# mine\n")
        let again = try await BinaryRunner.run(["init"], in: directory.path)
        #expect(again.status == 1)
        #expect(again.standardError.contains("already exists; use --force"))
        #expect(
            try String(contentsOfFile: directory.file("ship-manifest.toml"), encoding: .utf8) == "# mine\n")

        let forced = try await BinaryRunner.run(["init", "--force"], in: directory.path)
        #expect(forced.status == 0)
        #expect(try String(contentsOfFile: directory.file("ship-manifest.toml"), encoding: .utf8) == written)
    }

    @Test func chartIsPlainWhenPiped() async throws {
        let outcome = try await BinaryRunner.run([
            "chart", "-c", Repository.path("Examples/full/ship-manifest.toml"),
        ])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(!outcome.standardOutput.contains("\u{1B}["))
        #expect(outcome.standardOutput.hasPrefix("Routing chart for "))
        #expect(outcome.standardOutput.contains("routes (first match wins):"))
    }

    @Test func chartHonoursTagFilters() async throws {
        let quickstart = Repository.path("Examples/quickstart/ship-manifest.toml")
        let outcome = try await BinaryRunner.run(["chart", "-c", quickstart, "--except", "workers"])
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.standardOutput.contains("Left out by the tag filter: ticker"))
    }

    @Test(arguments: [
        ["clearance", "--only", "web", "--except", "workers"],
        ["clearance", "--frobnicate"],
        ["chart", "--only", ""],
        ["launch-everything"],
    ])
    func usageErrorsExitTwo(arguments: [String]) async throws {
        let outcome = try await BinaryRunner.run(
            arguments + ["-c", Repository.path("Examples/quickstart/ship-manifest.toml")])
        #expect(outcome.status == 2, "\(outcome.output)")
        #expect(outcome.standardError.contains("Error: "))
    }

    @Test func missingManifestExitsOneAndSaysSo() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for command in [["clearance"], ["chart"], []] {
            let outcome = try await BinaryRunner.run(command, in: directory.path)
            #expect(outcome.status == 1)
            #expect(outcome.standardError.contains("ship-manifest.toml: no such manifest file"))
        }
    }

    @Test func runRefusesABadManifestBeforeStartingAnything() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write(
            "ship-manifest.toml",
            """
            [[mothership.uplinks]]
            name = "db"
            url = "$MOTHERSHIP_TEST_UNSET_URL"
            [[fleet.web]]
            name = "app"
            command = "/bin/sh"
            """)
        let outcome = try await BinaryRunner.run(["run"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(
            outcome.standardError.contains(
                "error: mothership.uplinks[0].url: environment variable $MOTHERSHIP_TEST_UNSET_URL is not set"
            ))
    }
}
