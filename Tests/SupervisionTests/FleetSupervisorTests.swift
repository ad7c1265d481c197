import MothershipTestSupport
import ShipManifest
import Supervision
import Synchronization
import Testing

/// A supervisor wired to fakes and a manual clock, running in the background.
struct Harness {
    let launcher = FakeLauncher()
    let health = FakeHealth()
    let clock = ManualClock()
    let supervisor: FleetSupervisor<ManualClock>
    let run: Task<FleetOutcome, Never>
    let states = Locked<[LifecycleState]>([])

    init(
        _ toml: String, uplinks: FakeUplinks = FakeUplinks(), elector: (any FlagshipElector)? = nil,
        bays: FakeBayDocking? = nil
    ) throws {
        let result = ManifestLoader.load(text: toml)
        let manifest = try #require(result.manifest, "\(result.diagnostics)")
        let states = self.states
        supervisor = FleetSupervisor(
            manifest: manifest,
            context: FleetContext(
                manifestDirectory: "/srv/app", inheritedEnvironment: ["PATH": "/bin"], mothershipPID: 7,
                socketDirectory: bays == nil ? nil : "/tmp/ms-run"),
            ports: FleetPorts(
                launcher: launcher, health: health, uplinks: uplinks, elector: elector, bays: bays),
            clock: clock,
            logger: .quiet, onLifecycleChange: { state in states.mutate { $0.append(state) } })
        let supervisor = self.supervisor
        run = Task { await supervisor.run() }
    }

    var journal: [String] { launcher.journal.all }
    var lifecycle: [LifecycleState] { states.value }

    /// Moves the clock event by event until `condition` holds.
    func until(
        _ condition: @escaping @Sendable () async -> Bool, sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        let met = await clock.runUntil(condition)
        #expect(met, "condition not reached; journal: \(journal)", sourceLocation: sourceLocation)
    }

    func launched(_ count: Int) async {
        let launcher = self.launcher
        await until { launcher.processes.count >= count }
    }

    func state(_ expected: LifecycleState) async {
        let supervisor = self.supervisor
        await until { await supervisor.state == expected }
    }

    func land() async -> FleetOutcome {
        await supervisor.requestShutdown()
        return await waitForOutcome()
    }

    func outcome() async -> FleetOutcome {
        await waitForOutcome()
    }

    private func waitForOutcome() async -> FleetOutcome {
        let run = self.run
        let done = Locked<FleetOutcome?>(nil)
        let watcher = Task {
            let outcome = await run.value
            done.mutate { $0 = outcome }
        }
        await until { done.value != nil }
        watcher.cancel()
        return done.value ?? .failed("did not end")
    }
}

@Suite("Fleet supervisor with fakes", .timeLimit(.minutes(1)))
struct FleetSupervisorTests {
    static let dependent = """
        [[fleet.data]]
        name = "db"
        command = "postgres"
        bind = "127.0.0.1:5432"
        healthcheck = "/ready"
        [[fleet.web]]
        name = "web"
        command = "rails"
        depends_on = ["db"]
        [[fleet.workers]]
        name = "jobs"
        command = "sidekiq"
        depends_on = ["web"]
        critical = false
        """

    @Test func dependentsWaitForTheirDependencysHealthCheck() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)
        #expect(harness.launcher.launchedNames == ["db"])
        // Several polls fail; the dependent must not start.
        let health = harness.health
        await harness.until { health.probeCount >= 5 }
        #expect(harness.launcher.launchedNames == ["db"])
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.launched(3)
        #expect(harness.launcher.launchedNames == ["db", "web", "jobs"])
        await harness.state(.running)
        #expect(harness.lifecycle == [.launching, .running])

        let outcome = await harness.land()
        #expect(outcome == .landed)
        // Reverse dependency order: jobs, then web, then db.
        let signals = harness.journal.filter { $0.hasPrefix("signal") }
        #expect(signals == ["signal jobs 15", "signal web 15", "signal db 15"])
        #expect(harness.lifecycle.suffix(2) == [.draining, .landed])
    }

    @Test func childEnvironmentAndWorkingDirectory() async throws {
        let harness = try Harness(
            """
            [mothership.env]
            SHARED = "yes"
            [[fleet.web]]
            name = "web"
            command = "rails"
            args = ["s"]
            bind = "3000"
            cwd = "app"
            env = { OWN = "1" }
            """)
        harness.health.set(.tcp(host: "127.0.0.1", port: 3000), healthy: true)
        await harness.launched(1)
        let request = try #require(harness.launcher.latest("web")?.request)
        #expect(request.command == "rails")
        #expect(request.arguments == ["s"])
        #expect(request.workingDirectory == "/srv/app/app")
        #expect(request.environment["SHARED"] == "yes")
        #expect(request.environment["OWN"] == "1")
        #expect(request.environment["PATH"] == "/bin")
        #expect(request.environment["PORT"] == "3000")
        #expect(request.environment["MS_PID"] == "7")
        _ = await harness.land()
    }

    @Test func aCriticalCrashTakesTheFleetDown() async throws {
        let harness = try Harness(Self.dependent)
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.state(.running)
        harness.launcher.latest("web")?.finish(.exited(code: 3))
        let outcome = await harness.outcome()
        #expect(outcome == .crashed(vessel: "web", reason: "exited with status 3"))
        #expect(harness.launcher.latest("db")?.signals == [15])
        #expect(harness.launcher.latest("jobs")?.signals == [15])
        #expect(harness.lifecycle.suffix(2) == [.draining, .crashed])
    }

    @Test func aNonCriticalCrashRestartsWithGrowingDelay() async throws {
        let harness = try Harness(
            "[[fleet.workers]]\nname = \"jobs\"\ncommand = \"sidekiq\"\ncritical = false\n")
        await harness.launched(1)
        var launchTimes: [Duration] = [harness.clock.now.offset]
        for attempt in 2...5 {
            harness.launcher.latest("jobs")?.finish(.exited(code: 1))
            await harness.launched(attempt)
            launchTimes.append(harness.clock.now.offset)
        }
        let gaps = zip(launchTimes.dropFirst(), launchTimes).map { $0 - $1 }
        #expect(gaps == [.zero, .milliseconds(500), .seconds(1), .seconds(2)])
        let status = await harness.supervisor.status()
        #expect(status.vessels.first?.restarts == 4)
        #expect(await harness.land() == .landed)
    }

    @Test func oneshotsCompleteAndUnblockTheirDependents() async throws {
        let harness = try Harness(
            """
            [[fleet.jobs]]
            name = "warm"
            command = "warm-cache"
            oneshot = true
            [[fleet.web]]
            name = "web"
            command = "rails"
            depends_on = ["warm"]
            """)
        await harness.launched(1)
        #expect(harness.launcher.launchedNames == ["warm"])
        harness.launcher.latest("warm")?.finish(.exited(code: 0))
        await harness.launched(2)
        await harness.state(.running)
        let status = await harness.supervisor.status()
        #expect(status.vessels.map(\.phase) == [.completed, .running])
        #expect(await harness.land() == .landed)
    }

    @Test func aFailingCriticalOneshotFailsTheLaunch() async throws {
        let harness = try Harness(
            "[[fleet.jobs]]\nname = \"migrate\"\ncommand = \"rake\"\noneshot = true\n[[fleet.web]]\nname = \"web\"\ncommand = \"x\"\ndepends_on = [\"migrate\"]\n"
        )
        await harness.launched(1)
        harness.launcher.latest("migrate")?.finish(.exited(code: 2))
        #expect(await harness.outcome() == .failed("ship 'migrate' exited with status 2"))
        #expect(harness.launcher.launchedNames == ["migrate"])
    }

    @Test func prelaunchRunsInDependencyOrderAndAFailureAbortsEverything() async throws {
        let harness = try Harness(
            """
            [[mothership.prelaunch]]
            name = "migrate"
            command = "rake"
            [[mothership.prelaunch]]
            name = "seed"
            command = "rake"
            depends_on = ["migrate"]
            [[mothership.prelaunch]]
            name = "assets"
            command = "rake"
            [[fleet.web]]
            name = "web"
            command = "rails"
            """)
        await harness.launched(2)
        #expect(Set(harness.launcher.launchedNames) == ["migrate", "assets"])
        harness.launcher.latest("migrate")?.finish(.exited(code: 0))
        harness.launcher.latest("assets")?.finish(.exited(code: 0))
        await harness.launched(3)
        #expect(harness.launcher.launchedNames.last == "seed")
        harness.launcher.latest("seed")?.finish(.exited(code: 1))
        #expect(await harness.outcome() == .failed("prelaunch job 'seed' exited with status 1"))
        #expect(!harness.launcher.launchedNames.contains("web"))
        #expect(harness.lifecycle == [.prelaunch, .draining, .failed])
    }

    @Test func aFailingPrelaunchJobStopsItsRunningSiblings() async throws {
        let harness = try Harness(
            """
            [[mothership.prelaunch]]
            name = "slow"
            command = "rake"
            [[mothership.prelaunch]]
            name = "broken"
            command = "rake"
            [[fleet.web]]
            name = "web"
            command = "rails"
            """)
        await harness.launched(2)
        harness.launcher.latest("broken")?.finish(.exited(code: 1))
        #expect(await harness.outcome() == .failed("prelaunch job 'broken' exited with status 1"))
        #expect(harness.launcher.latest("slow")?.signals == [15])
    }

    @Test func anUnreachableUplinkFailsBeforeAnythingStarts() async throws {
        let harness = try Harness(
            "[[mothership.uplinks]]\nname = \"db\"\nurl = \"postgres://db:5432/app\"\n[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\n",
            uplinks: FakeUplinks(failing: ["db": "connection refused"]))
        #expect(
            await harness.outcome() == .failed("uplink 'db' (postgres://db:5432/app): connection refused"))
        #expect(harness.launcher.processes.isEmpty)
        #expect(harness.lifecycle == [.preflight, .draining, .failed])
    }

    @Test func aCommandThatCannotStartFailsTheLaunchClearly() async throws {
        let harness = try Harness("[[fleet.web]]\nname = \"web\"\ncommand = \"nope\"\n")
        harness.launcher.failLaunches(of: "nope", with: .notFound)
        #expect(
            await harness.outcome()
                == .failed(
                    "ship 'web' cannot start 'web': command 'nope': no such file or directory (not found on PATH)"
                ))
    }

    @Test func aVesselThatIgnoresItsStopSignalIsKilledAfterTheTimeout() async throws {
        let harness = try Harness(
            "[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\nstop_timeout = \"3s\"\n")
        await harness.state(.running)
        let web = try #require(harness.launcher.latest("web"))
        web.ignore(15)
        let start = harness.clock.now
        #expect(await harness.land() == .landed)
        #expect(web.signals == [15, 9])
        #expect(start.duration(to: harness.clock.now) == .seconds(3))
    }

    @Test func customStopSignal() async throws {
        let harness = try Harness(
            "[[fleet.web]]\nname = \"web\"\ncommand = \"unicorn\"\nstop_signal = \"QUIT\"\n")
        await harness.state(.running)
        #expect(await harness.land() == .landed)
        #expect(harness.launcher.latest("web")?.signals == [3])
    }

    @Test func failingHealthChecksRestartTheShip() async throws {
        let harness = try Harness(
            """
            [[fleet.web]]
            name = "web"
            command = "rails"
            bind = "3000"
            healthcheck = "/up"
            """)
        let address = BindAddress.tcp(host: "127.0.0.1", port: 3000)
        harness.health.set(address, healthy: true)
        await harness.state(.running)
        let first = try #require(harness.launcher.latest("web"))
        harness.health.set(address, healthy: false)
        // Five failed checks (each three attempts) within a minute open the breaker: SIGKILL, then restart.
        let launcher = harness.launcher
        await harness.until { first.hasExited }
        #expect(first.signals == [9])
        harness.health.set(address, healthy: true)
        await harness.until { launcher.processes.count == 2 }
        let status = await harness.supervisor.status()
        #expect(status.vessels.first?.restarts == 1)
        #expect(harness.lifecycle.contains(.mayday), "a critical ship being recovered is Mayday")
        await harness.state(.running)
        #expect(await harness.land() == .landed)
    }

    @Test func aNonCriticalDependencyThatNeverGetsReadyLeavesItsDependentsWaiting() async throws {
        let harness = try Harness(
            """
            [[fleet.cache]]
            name = "cache"
            command = "redis"
            bind = "6379"
            critical = false
            start_timeout = "2s"
            [[fleet.web]]
            name = "web"
            command = "rails"
            depends_on = ["cache"]
            critical = false
            """)
        let launcher = harness.launcher
        await harness.until { launcher.processes(named: "cache").count >= 2 }
        #expect(!launcher.launchedNames.contains("web"))
        #expect(await harness.land() == .landed)
    }

    @Test func shutdownDuringStartupLandsWithoutStartingMore() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)
        #expect(await harness.land() == .landed)
        #expect(harness.launcher.launchedNames == ["db"])
    }

    @Test func restartOnRequestStartsACriticalVesselAgainWithoutCrashingTheFleet() async throws {
        let harness = try Harness("[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\n")
        await harness.state(.running)
        let first = try #require(harness.launcher.latest("web"))
        let supervisor = harness.supervisor
        await harness.until { await supervisor.status().vessels.first?.memory != nil }
        let start = harness.clock.now
        #expect(await harness.supervisor.restart("web"))
        await harness.launched(2)
        #expect(first.signals == [15])
        #expect(start.duration(to: harness.clock.now) == .zero)
        let status = await harness.supervisor.status()
        #expect(status.vessels.first?.restarts == 1)
        #expect(status.vessels.first?.pid == harness.launcher.latest("web")?.pid)
        #expect(
            status.vessels.first?.memory?.residentBytes != 4096 * UInt64(first.pid),
            "not the old process's memory")
        await harness.state(.running)
        #expect(harness.lifecycle.filter { $0 == .crashed || $0 == .draining }.isEmpty)
        #expect(await harness.land() == .landed)
    }

    @Test func restartOnRequestKillsAVesselThatIgnoresItsStopSignalAfterTheTimeout() async throws {
        let harness = try Harness(
            "[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\nstop_timeout = \"3s\"\n")
        await harness.state(.running)
        let web = try #require(harness.launcher.latest("web"))
        web.ignore(15)
        let start = harness.clock.now
        #expect(await harness.supervisor.restart("web"))
        #expect(await harness.supervisor.restart("web") == false, "one restart at a time")
        await harness.launched(2)
        #expect(web.signals == [15, 9])
        #expect(start.duration(to: harness.clock.now) == .seconds(3))
        #expect(await harness.land() == .landed)
    }

    @Test func restartOnRequestIgnoresUnknownAndNotRunningVessels() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)
        #expect(await harness.supervisor.restart("nope") == false)
        // web waits for db's health check: nothing to restart yet.
        #expect(await harness.supervisor.restart("web") == false)
        #expect(await harness.land() == .landed)
        #expect(await harness.supervisor.restart("db") == false)
    }

    // MARK: Stop and start on request (the control socket)

    static func phase(_ supervisor: FleetSupervisor<ManualClock>, _ name: String) async -> VesselPhase? {
        await supervisor.status().vessels.first { $0.name == name }?.phase
    }

    @Test func aStoppedCriticalVesselStaysStoppedItsDependentsKeepRunningAndStartBringsItBack() async throws {
        let harness = try Harness(Self.dependent)
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.state(.running)
        let supervisor = harness.supervisor
        let web = try #require(harness.launcher.latest("web"))
        try await supervisor.stopVessel("web")
        await harness.until { await Self.phase(supervisor, "web") == .stopped }
        #expect(web.signals == [15])
        // Not a crash (web is critical), not restarted, and jobs (which depends on it) keeps running.
        #expect(await supervisor.state == .running)
        #expect(harness.launcher.processes(named: "web").count == 1)
        #expect(await Self.phase(supervisor, "jobs") == .running)
        #expect(harness.launcher.latest("jobs")?.signals == [])
        await #expect(throws: ControlRefusal.alreadyStopped("web")) { try await supervisor.stopVessel("web") }
        await #expect(throws: ControlRefusal.notRunning("web", .stopped)) {
            try await supervisor.restartVessel("web")
        }
        await #expect(throws: ControlRefusal.notStopped("jobs", .running)) {
            try await supervisor.startVessel("jobs")
        }
        try await supervisor.startVessel("web")
        await harness.launched(4)
        await harness.until { await Self.phase(supervisor, "web") == .running }
        #expect(harness.launcher.processes(named: "web").count == 2)
        #expect(await supervisor.status().vessels.first { $0.name == "web" }?.restarts == 0)
        #expect(await harness.land() == .landed)
    }

    @Test func stopWhileWaitingForADependencyThenStartStartsItOnceTheDependencyIsReady() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)  // db, not healthy yet: web waits
        let supervisor = harness.supervisor
        try await supervisor.stopVessel("web")
        #expect(await Self.phase(supervisor, "web") == .stopped)
        try await supervisor.startVessel("web")
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.state(.running)
        // One web process only: the first task, still waiting when web was started again, did nothing.
        #expect(harness.launcher.processes(named: "web").count == 1)
        #expect(await harness.land() == .landed)
    }

    @Test func startWhileStoppingStartsAgainOnceItHasExited() async throws {
        let harness = try Harness(
            "[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\nstop_timeout = \"3s\"\n")
        await harness.state(.running)
        let web = try #require(harness.launcher.latest("web"))
        web.ignore(15)
        let supervisor = harness.supervisor
        try await supervisor.stopVessel("web")
        try await supervisor.startVessel("web")
        await harness.launched(2)
        #expect(web.signals == [15, 9])
        await harness.until { await Self.phase(supervisor, "web") == .running }
        #expect(harness.launcher.processes(named: "web").count == 2)
        #expect(await harness.land() == .landed)
    }

    @Test func unknownNamesGetASuggestionAndALandingFleetRefusesEverything() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)
        let supervisor = harness.supervisor
        await #expect(throws: ControlRefusal.unknownVessel("wbe", suggestion: "web")) {
            try await supervisor.restartVessel("wbe")
        }
        #expect(
            ControlRefusal.unknownVessel("wbe", suggestion: "web").description
                == "unknown vessel 'wbe'; did you mean 'web'?")
        await #expect(throws: ControlRefusal.unknownVessel("zzzzzz", suggestion: nil)) {
            try await supervisor.stopVessel("zzzzzz")
        }
        #expect(await harness.land() == .landed)
        await #expect(throws: ControlRefusal.landing) { try await supervisor.stopVessel("db") }
        await #expect(throws: ControlRefusal.landing) { try await supervisor.startVessel("db") }
    }

    // MARK: Reload

    static func manifest(_ toml: String) throws -> Manifest {
        let result = ManifestLoader.load(text: toml)
        return try #require(result.manifest, "\(result.diagnostics)")
    }

    @Test func reloadStopsRemovedRestartsChangedStartsAddedAndLeavesTheRestAlone() async throws {
        let harness = try Harness(Self.dependent)
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.state(.running)
        let supervisor = harness.supervisor
        let db = try #require(harness.launcher.latest("db"))
        let web = try #require(harness.launcher.latest("web"))
        let jobs = try #require(harness.launcher.latest("jobs"))
        // jobs removed (critical = false or not, its exit is no crash), web's command changed, cron added.
        let next = try Self.manifest(
            """
            [[fleet.data]]
            name = "db"
            command = "postgres"
            bind = "127.0.0.1:5432"
            healthcheck = "/ready"
            [[fleet.web]]
            name = "web"
            command = "puma"
            depends_on = ["db"]
            [[fleet.workers]]
            name = "cron"
            command = "cron"
            depends_on = ["web"]
            """)
        let reload = Task { try await supervisor.reload(next) }
        await harness.until { await Self.phase(supervisor, "cron") == .running }
        let summary = try await reload.value
        #expect(summary.added == ["cron"] && summary.removed == ["jobs"])
        #expect(summary.changed == ["web"] && summary.unchanged == ["db"])
        #expect(summary.description == "reload: 1 added, 1 removed, 1 changed, 1 unchanged")
        #expect(db.signals == [] && jobs.signals == [15] && web.signals == [15])
        await harness.until { await Self.phase(supervisor, "web") == .running }
        #expect(harness.launcher.latest("web")?.request.command == "puma")
        #expect(await supervisor.status().vessels.map(\.name) == ["db", "web", "cron"])
        #expect(await supervisor.state == .running)
        await #expect(throws: ControlRefusal.unknownVessel("jobs", suggestion: nil)) {
            try await supervisor.restartVessel("jobs")
        }
        #expect(await harness.land() == .landed)
    }

    @Test func reloadRemovesAVesselStillWaitingForItsDependencyAndCanAddItBackLater() async throws {
        let harness = try Harness(Self.dependent)
        await harness.launched(1)  // db not healthy: web and jobs wait
        let supervisor = harness.supervisor
        let without = try Self.manifest(
            """
            [[fleet.data]]
            name = "db"
            command = "postgres"
            bind = "127.0.0.1:5432"
            healthcheck = "/ready"
            """)
        let first = try await supervisor.reload(without)
        #expect(first.removed == ["web", "jobs"])
        #expect(await supervisor.status().vessels.map(\.name) == ["db"])
        // Back again: one web process once db is ready, though the first web task still waited.
        let again = try await supervisor.reload(try Self.manifest(Self.dependent))
        #expect(again.added == ["web", "jobs"])
        harness.health.set(.tcp(host: "127.0.0.1", port: 5432), healthy: true)
        await harness.state(.running)
        await harness.until { await Self.phase(supervisor, "jobs") == .running }
        #expect(harness.launcher.processes(named: "web").count == 1)
        #expect(harness.launcher.processes(named: "jobs").count == 1)
        #expect(await harness.land() == .landed)
        await #expect(throws: ControlRefusal.landing) { try await supervisor.reload(without) }
    }

    @Test func reloadRestartsEveryVesselWhenTheSharedEnvironmentChanges() async throws {
        let before = "[mothership.env]\nLEVEL = \"one\"\n[[fleet.web]]\nname = \"web\"\ncommand = \"rails\"\n"
        let harness = try Harness(before)
        await harness.state(.running)
        let supervisor = harness.supervisor
        let web = try #require(harness.launcher.latest("web"))
        let same = try await supervisor.reload(try Self.manifest(before))
        #expect(same.unchanged == ["web"])
        let next = try Self.manifest(before.replacingOccurrences(of: "\"one\"", with: "\"two\""))
        let summary = try await supervisor.reload(next)
        #expect(summary.changed == ["web"])
        #expect(web.signals == [15])
        await harness.launched(2)
        #expect(harness.launcher.latest("web")?.request.environment["LEVEL"] == "two")
        #expect(await harness.land() == .landed)
    }
}
