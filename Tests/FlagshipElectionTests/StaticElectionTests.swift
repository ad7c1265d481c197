import FlagshipElection
import MothershipTestSupport
import ShipManifest
import Supervision
import Synchronization
import Testing

/// A launcher whose "process" prints a fixed output and exits at once; it records the request.
final class PrintingLauncher: ProcessLauncher {
    struct Exited: RunningProcess {
        var pid: Int32 { 4242 }
        func exitStatus() async -> ProcessExit { .exited(code: 1) }
        func signalGroup(_ signal: Int32) {}
        func memory() -> MemoryUsage? { nil }
    }

    let output: [String]
    let requests = Mutex<[LaunchRequest]>([])

    init(printing output: [String]) {
        self.output = output
    }

    func launch(_ request: LaunchRequest) async throws(SpawnError) -> any RunningProcess {
        requests.withLock { $0.append(request) }
        request.output(OutputLine(source: request.name, stream: .stderr, text: "noise on stderr"))
        for line in output { request.output(OutputLine(source: request.name, stream: .stdout, text: line)) }
        return Exited()
    }
}

@Suite("Static flagship election", .timeLimit(.minutes(1)))
struct StaticElectionTests {
    static func isFlagship(_ role: FlagshipRole) -> Bool {
        if case .flagship = role { return true }
        return false
    }

    @Test(arguments: [
        ("true", true), ("TRUE", true), ("1", true), ("yes", true), ("Yes", true), (" yes\n", true),
        ("false", false), ("0", false), ("no", false), ("", false), ("y", false), ("2", false),
    ])
    func anEnvironmentValueIsTruthyWhenTrueOneOrYes(value: String, flagship: Bool) async throws {
        let election = StaticElection(
            rule: .value("$MS_FLAGSHIP"), deployment: "shop", environment: ["MS_FLAGSHIP": value],
            workingDirectory: "/", launcher: FakeLauncher())
        #expect(Self.isFlagship(try await election.elect()) == flagship)
    }

    @Test func anUnsetVariableMeansEscortAndTheEscortDoesNotWait() async throws {
        let election = StaticElection(
            rule: .value("$MS_FLAGSHIP"), deployment: "shop", environment: [:], workingDirectory: "/",
            launcher: FakeLauncher())
        guard case .escort(let watch) = try await election.elect() else {
            Issue.record("expected an escort")
            return
        }
        #expect(!watch.waitsForFlagship)
        try await watch.awaitFlagship()
        #expect(watch.description.contains("deployment 'shop'"))
    }

    @Test func aCommandRunsThroughShAndItsTrimmedStdoutIsCompared() async throws {
        let launcher = PrintingLauncher(printing: ["  server-a  ", ""])
        let election = StaticElection(
            rule: .command("hostname", equals: "server-a"), deployment: "shop",
            environment: ["PATH": "/usr/bin"], workingDirectory: "/srv/app", launcher: launcher)
        #expect(Self.isFlagship(try await election.elect()))
        let request = try #require(launcher.requests.withLock { $0.first })
        #expect(request.command == "/bin/sh")
        #expect(request.arguments == ["-c", "hostname"])
        #expect(request.workingDirectory == "/srv/app")
        #expect(request.environment["PATH"] == "/usr/bin")
    }

    @Test func aCommandPrintingSomethingElseMeansEscort() async throws {
        let launcher = PrintingLauncher(printing: ["server-b"])
        let election = StaticElection(
            rule: .command("hostname", equals: "server-a"), deployment: "shop", environment: [:],
            workingDirectory: "/", launcher: launcher)
        #expect(!Self.isFlagship(try await election.elect()))
    }

    @Test func aCommandThatCannotStartIsAnError() async throws {
        let launcher = FakeLauncher()
        launcher.failLaunches(of: "/bin/sh", with: .notFound)
        let election = StaticElection(
            rule: .command("hostname", equals: "a"), deployment: "shop", environment: [:],
            workingDirectory: "/", launcher: launcher)
        await #expect(throws: FlagshipElectionError.self) { try await election.elect() }
    }
}

@Suite("Choosing the elector")
struct ElectorChoiceTests {
    static func choose(_ election: FlagshipSettings.Election, _ environment: [String: String]) throws
        -> any FlagshipElector
    {
        try ElectorChoice.elector(
            for: FlagshipSettings(election: election, prelaunchTimeout: .seconds(9)), deployment: "shop",
            manifestText: "text", environment: environment, workingDirectory: "/", launcher: FakeLauncher(),
            logger: .quiet)
    }

    @Test func anUplinksURLIsExpandedFromTheEnvironment() throws {
        let elector = try Self.choose(
            .postgres(url: "$DB_URL", viaUplink: "db"), ["DB_URL": "postgres://app:pw@db.internal/shop"])
        let election = try #require(elector as? PostgresElection)
        #expect(election.url.host == "db.internal")
        #expect(election.url.description == "postgres://app:***@db.internal/shop")
        #expect(election.identity.name == "shop")
        #expect(election.prelaunchTimeout == .seconds(9))
    }

    @Test func anUnsetVariableInTheURLIsAnErrorNamingItAndTheField() {
        #expect {
            try Self.choose(.postgres(url: "$DB_URL", viaUplink: "db"), [:])
        } throws: { error in
            "\(error)" == "[mothership.flagship] election_uplink 'db' uses $DB_URL, which is not set"
        }
    }

    @Test func theStaticFormNeedsNoDatabase() throws {
        #expect(try Self.choose(.fixed(.value("$MS_FLAGSHIP")), [:]) is StaticElection)
    }
}
