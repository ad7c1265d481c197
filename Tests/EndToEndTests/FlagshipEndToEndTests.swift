import Foundation
import MothershipTestSupport
import Testing

/// Several `mothership run` processes on one manifest: the flagship election through the binary,
/// against a real PostgreSQL server (`PostgresCluster`) or statically. Serialized: each test starts
/// up to three motherships at once, and all of them together would starve the timing-sensitive
/// tests of other suites on a 2-core machine.
@Suite("Flagship election through the binary", .serialized, .timeLimit(.minutes(2)))
struct FlagshipEndToEndTests {
    /// A manifest with a unique deployment name, a prelaunch job and one ship that records whether
    /// prelaunch had run when it started.
    static func fleet(flagship: String, prelaunch: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-flagship")
        try directory.write(
            "ship-manifest.toml",
            """
            [mothership]
            name = "e2e-\(UUID().uuidString.prefix(8))"
            # Several hosts' runs of one deployment, simulated in one directory: on hosts of their
            # own each has its own socket; here they would all claim the same one.
            control_socket = false

            [mothership.flagship]
            enabled = true
            \(flagship)

            [[mothership.prelaunch]]
            name = "migrate"
            command = "/bin/sh"
            args = ["-c", \(prelaunch.debugDescription)]

            [[fleet.web]]
            name = "web"
            command = "/bin/sh"
            args = ["-c", "if test -s prelaunch.log; then echo after >> ships.log; else echo before >> ships.log; fi; exec sleep 300"]
            """)
        return directory
    }

    static func postgres(prelaunchTimeout: String = "30s") async throws -> String {
        let url = try await PostgresCluster.shared().url
        return """
            election = "postgres"
            election_url = "\(url)"
            election_timeout = "15s"
            prelaunch_timeout = "\(prelaunchTimeout)"
            """
    }

    static func lines(_ directory: TemporaryDirectory, _ name: String) -> [String] {
        ((try? String(contentsOfFile: directory.file(name), encoding: .utf8)) ?? "").split(separator: "\n")
            .map(String.init)
    }

    static func start(_ count: Int, in directory: TemporaryDirectory) throws -> [RunningMothership] {
        try (0..<count).map { _ in try RunningMothership([], in: directory.path) }
    }

    @Test func exactlyOneOfThreeRunsPrelaunchAndTheEscortsLaunchAfterItsSignal() async throws {
        let directory = try Self.fleet(
            flagship: try await Self.postgres(), prelaunch: "sleep 1; echo ran >> prelaunch.log")
        defer { directory.remove() }
        let fleet = try Self.start(3, in: directory)
        defer { for mothership in fleet { mothership.stop() } }
        for mothership in fleet { try await mothership.waitFor("lifecycle: Running", timeout: .seconds(40)) }
        let flagships = fleet.filter { $0.output.contains("elected flagship for deployment 'e2e-") }
        let escorts = fleet.filter { $0.output.contains("escort for deployment 'e2e-") }
        #expect(flagships.count == 1 && escorts.count == 2, "\(fleet.map(\.output))")
        #expect(flagships.first?.output.contains("lifecycle: Prelaunch (flagship)") == true)
        for escort in escorts {
            // Waiting when the signal came, or (an escort started late on a loaded machine) reading
            // the recorded ready outcome: either way it launches on the flagship's word.
            #expect(
                escort.output.contains("the flagship signalled ready: launching")
                    || escort.output.contains("the flagship already finished"), "\(escort.output)")
            #expect(!escort.output.contains("prelaunch job 'migrate' started"))
        }
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        try await fleet[0].waitUntil("three ships started", timeout: .seconds(10)) {
            Self.lines(directory, "ships.log").count == 3
        }
        #expect(Self.lines(directory, "ships.log") == ["after", "after", "after"])
        for mothership in fleet { mothership.signal(SIGTERM) }
        for mothership in fleet { #expect(try await mothership.waitForExit() == 0) }
    }

    @Test func aFailingPrelaunchMakesEveryInstanceExitOne() async throws {
        let directory = try Self.fleet(
            flagship: try await Self.postgres(), prelaunch: "echo ran >> prelaunch.log; sleep 1; exit 3")
        defer { directory.remove() }
        let fleet = try Self.start(3, in: directory)
        defer { for mothership in fleet { mothership.stop() } }
        for mothership in fleet { #expect(try await mothership.waitForExit(timeout: .seconds(40)) == 1) }
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        #expect(Self.lines(directory, "ships.log").isEmpty)
        let escorts = fleet.filter { !$0.output.contains("elected flagship") }
        #expect(escorts.count == 2)
        for escort in escorts {
            #expect(escort.output.contains("aborted prelaunch"), "\(escort.output)")
            #expect(escort.output.contains("prelaunch job 'migrate' exited with status 3"))
            #expect(escort.lines.last?.contains(#""status":"failed""#) == true)
        }
    }

    @Test func anEscortStartedAfterTheFlagshipFinishedLaunchesAtOnce() async throws {
        let directory = try Self.fleet(
            flagship: try await Self.postgres(prelaunchTimeout: "300s"),
            prelaunch: "echo ran >> prelaunch.log")
        defer { directory.remove() }
        let flagship = try RunningMothership([], in: directory.path)
        defer { flagship.stop() }
        try await flagship.waitFor("lifecycle: Running", timeout: .seconds(30))
        #expect(flagship.output.contains("elected flagship"))
        let started = ContinuousClock.now
        let late = try RunningMothership([], in: directory.path)
        defer { late.stop() }
        try await late.waitFor("lifecycle: Running", timeout: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(late.output.contains("the flagship already finished: skipping prelaunch"), "\(late.output)")
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        for mothership in [flagship, late] { mothership.signal(SIGTERM) }
        for mothership in [flagship, late] { #expect(try await mothership.waitForExit() == 0) }
    }

    @Test func escortsOfAFlagshipKilledMidPrelaunchFailAfterTheirTimeout() async throws {
        let directory = try Self.fleet(
            flagship: try await Self.postgres(prelaunchTimeout: "4s"),
            prelaunch: "echo ran >> prelaunch.log; exec sleep 300")
        defer { directory.remove() }
        let fleet = try Self.start(3, in: directory)
        defer { for mothership in fleet { mothership.stop() } }
        var flagship: RunningMothership?
        try await fleet[0].waitUntil("a flagship and two escorts", timeout: .seconds(40)) {
            flagship = fleet.first { $0.output.contains("elected flagship") }
            return flagship != nil && fleet.filter { $0.output.contains("escort for deployment") }.count == 2
        }
        let killed = try #require(flagship)
        try await killed.waitUntil("the prelaunch job to start", timeout: .seconds(10)) {
            Self.lines(directory, "prelaunch.log").count == 1
        }
        killed.signal(SIGKILL)
        for escort in fleet where escort !== killed {
            #expect(try await escort.waitForExit(timeout: .seconds(30)) == 1)
            #expect(escort.output.contains("within prelaunch_timeout (4s)"), "\(escort.output)")
            #expect(escort.output.contains("likely died during prelaunch"))
            #expect(!escort.output.contains("elected flagship"))
        }
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        #expect(Self.lines(directory, "ships.log").isEmpty)
    }

    @Test func anUnreachableDatabaseIsAClearErrorNamingTheRedactedURL() async throws {
        let port = ProcessInspector.freePort()
        let directory = try Self.fleet(
            flagship: """
                election = "postgres"
                election_url = "postgres://app:hunter2@127.0.0.1:\(port)/shop"
                election_timeout = "3s"
                """,
            prelaunch: "echo ran >> prelaunch.log")
        defer { directory.remove() }
        let outcome = try await BinaryRunner.run([], in: directory.path, timeout: .seconds(30))
        #expect(outcome.status == 1)
        #expect(
            outcome.output.contains(
                "cannot reach the election database postgres://app:***@127.0.0.1:\(port)/shop"),
            "\(outcome.output)")
        #expect(!outcome.output.contains("hunter2"))
        #expect(Self.lines(directory, "prelaunch.log").isEmpty)
    }

    @Test func aStaticElectionByEnvironmentValueRunsPrelaunchOnlyOnTheFlagship() async throws {
        let directory = try Self.fleet(
            flagship: #"static_flagship = "$MS_FLAGSHIP""#, prelaunch: "echo ran >> prelaunch.log")
        defer { directory.remove() }
        let escort = try RunningMothership([], in: directory.path, environment: ["MS_FLAGSHIP": "no"])
        defer { escort.stop() }
        try await escort.waitFor("lifecycle: Running")
        #expect(escort.output.contains("escort for deployment"))
        #expect(escort.output.contains("skipping prelaunch"))
        #expect(Self.lines(directory, "prelaunch.log").isEmpty)
        let flagship = try RunningMothership([], in: directory.path, environment: ["MS_FLAGSHIP": "Yes"])
        defer { flagship.stop() }
        try await flagship.waitFor("lifecycle: Running")
        #expect(flagship.output.contains("elected flagship for deployment"))
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        for mothership in [escort, flagship] { mothership.signal(SIGTERM) }
        for mothership in [escort, flagship] { #expect(try await mothership.waitForExit() == 0) }
    }

    @Test func aStaticElectionByCommandComparesItsTrimmedOutput() async throws {
        let directory = try Self.fleet(
            flagship: #"static_flagship = { command = "printenv DYNO", equals = "web.1" }"#,
            prelaunch: "echo ran >> prelaunch.log")
        defer { directory.remove() }
        let escort = try RunningMothership([], in: directory.path, environment: ["DYNO": "web.2"])
        defer { escort.stop() }
        try await escort.waitFor("lifecycle: Running")
        #expect(escort.output.contains("skipping prelaunch"), "\(escort.output)")
        #expect(Self.lines(directory, "prelaunch.log").isEmpty)
        let flagship = try RunningMothership([], in: directory.path, environment: ["DYNO": "web.1"])
        defer { flagship.stop() }
        try await flagship.waitFor("lifecycle: Running")
        #expect(flagship.output.contains("elected flagship"), "\(flagship.output)")
        #expect(Self.lines(directory, "prelaunch.log") == ["ran"])
        for mothership in [escort, flagship] { mothership.signal(SIGTERM) }
        for mothership in [escort, flagship] { #expect(try await mothership.waitForExit() == 0) }
    }
}
