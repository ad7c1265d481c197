import MothershipTestSupport
import ShipManifest
import Supervision
import Testing

@Suite("Bays in the supervisor", .timeLimit(.minutes(1)))
struct BayDockingTests {
    static func fleet(critical: Bool) -> String {
        """
        [[bays.websocket]]
        name = "chat"
        command = "chat-bay"
        critical = \(critical)
        config = { greeting = "hi", workers = 3, verbose = true }
        [[fleet.web]]
        name = "web"
        command = "rails"
        depends_on = ["chat"]
        """
    }

    @Test func aBayIsReadyOnceDockedWithItsConfigAndItsDependentsWaitForIt() async throws {
        let bays = FakeBayDocking()
        let harness = try Harness(Self.fleet(critical: true), bays: bays)
        await harness.launched(1)
        await harness.until { bays.isWaiting("chat") }
        #expect(bays.prepared == ["/tmp/ms-run/chat.sock"])
        let request = try #require(bays.requests.first)
        #expect(request.socketPath == "/tmp/ms-run/chat.sock")
        #expect(request.config == ["greeting": "hi", "workers": "3", "verbose": "true"])
        #expect(request.timeout == .seconds(60))
        let environment = try #require(harness.launcher.latest("chat")?.request.environment)
        #expect(environment["MS_SOCKET_PATH"] == "/tmp/ms-run/chat.sock")
        #expect(environment["MS_SOCKET_DIR"] == "/tmp/ms-run")
        #expect(environment["MS_BAY_TYPE"] == "websocket")
        // Spawned but not docked: the dependent waits.
        #expect(harness.launcher.launchedNames == ["chat"])
        #expect(await harness.supervisor.state == .docking)

        bays.moor("chat")
        await harness.launched(2)
        #expect(harness.launcher.launchedNames == ["chat", "web"])
        await harness.state(.running)
        #expect(harness.lifecycle == [.docking, .launching, .running])
        #expect(await harness.land() == .landed)
        #expect(bays.links("chat").allSatisfy { $0.isClosed })
    }

    @Test func aLostLinkStopsANonCriticalBayWhichIsRestartedAndDocksAgain() async throws {
        let bays = FakeBayDocking()
        let harness = try Harness(Self.fleet(critical: false), bays: bays)
        await harness.until { bays.isWaiting("chat") }
        bays.moor("chat")
        await harness.state(.running)
        let first = try #require(harness.launcher.latest("chat"))

        try #require(bays.links("chat").first).lose("the bay closed its docking socket")
        await harness.until { first.signals == [9] }
        await harness.until { harness.launcher.processes(named: "chat").count == 2 }
        await harness.until { bays.isWaiting("chat") }
        #expect(bays.prepared.count == 2)
        bays.moor("chat")
        await harness.until {
            await harness.supervisor.status().vessels.first { $0.name == "chat" }?.phase == .running
        }
        #expect(await harness.supervisor.status().vessels.first { $0.name == "chat" }?.restarts == 1)
        #expect(bays.links("chat").count == 2)
        #expect(try #require(bays.links("chat").first).isClosed)
        // The ship that depends on it kept running.
        #expect(harness.launcher.processes(named: "web").count == 1)
        #expect(await harness.land() == .landed)
    }

    @Test func aCriticalBayThatLosesItsLinkTakesTheFleetDown() async throws {
        let bays = FakeBayDocking()
        let harness = try Harness(Self.fleet(critical: true), bays: bays)
        await harness.until { bays.isWaiting("chat") }
        bays.moor("chat")
        await harness.state(.running)
        try #require(bays.links("chat").first).lose("protocol violation: unknown message type 0x7F")
        let outcome = await harness.outcome()
        #expect(
            outcome
                == .crashed(
                    vessel: "chat",
                    reason: "lost its docking link (protocol violation: unknown message type 0x7F)"))
    }

    @Test func aBayThatExitsBeforeDockingIsACrashLikeAnyOther() async throws {
        let bays = FakeBayDocking()
        let harness = try Harness(Self.fleet(critical: true), bays: bays)
        await harness.until { bays.isWaiting("chat") }
        harness.launcher.latest("chat")?.finish(.exited(code: 2))
        let outcome = await harness.outcome()
        #expect(outcome == .failed("bay 'chat' exited with status 2"))
        #expect(harness.launcher.launchedNames == ["chat"])
    }

    // MARK: Phased replacement (SPEC §12.2)

    static func chat(_ harness: Harness) async -> VesselStatus? {
        await harness.supervisor.status().vessels.first { $0.name == "chat" }
    }

    /// The fleet, running with `chat` docked.
    static func docked(bays: FakeBayDocking, critical: Bool = true) async throws -> Harness {
        let harness = try Harness(fleet(critical: critical), bays: bays)
        await harness.until { bays.isWaiting("chat") }
        bays.moor("chat")
        await harness.state(.running)
        return harness
    }

    /// `restart chat`, once its replacement (the `process`-th `chat` process) waits to dock; the
    /// task ends with the refusal, if any.
    static func restarting(
        _ harness: Harness, bays: FakeBayDocking, process: Int
    ) async -> Task<ControlRefusal?, Never> {
        let supervisor = harness.supervisor
        let restart = Task { () async -> ControlRefusal? in
            do throws(ControlRefusal) {
                try await supervisor.restartVessel("chat")
                return nil
            } catch { return error }
        }
        await harness.until {
            bays.isWaiting("chat") && harness.launcher.processes(named: "chat").count == process
        }
        return restart
    }

    /// `restart` of a docked bay: the replacement binds the other socket path and docks; the old
    /// process keeps its clients until they leave (or `stop_timeout` ends, when the rest are closed
    /// with 1001), then gets its stop signal. A critical bay's replacement is no crash.
    @Test func restartingADockedBayDocksItsReplacementBesideItAndDrainsTheOld() async throws {
        let bays = FakeBayDocking()
        let harness = try await Self.docked(bays: bays)
        let old = try #require(harness.launcher.latest("chat"))
        let oldLink = try #require(bays.links("chat").first)
        oldLink.setPassengers(2)

        let supervisor = harness.supervisor
        let restart = await Self.restarting(harness, bays: bays, process: 2)
        let fresh = try #require(harness.launcher.latest("chat"))
        #expect(fresh.request.environment["MS_SOCKET_PATH"] == "/tmp/ms-run/chat.1.sock")
        #expect(bays.prepared.last == "/tmp/ms-run/chat.1.sock")
        #expect(bays.requests.last?.socketPath == "/tmp/ms-run/chat.1.sock")
        #expect(old.signals.isEmpty)
        // Status shows both: the serving process, and its replacement starting until it docks.
        let docking = try #require(await Self.chat(harness))
        #expect(docking.pid == old.pid)
        #expect(docking.instances.map(\.pid) == [old.pid, fresh.pid])
        #expect(docking.instances.map(\.draining) == [false, false])
        #expect(docking.instances.map(\.ready) == [true, false])
        bays.moor("chat")
        await harness.until { await Self.chat(harness)?.pid == fresh.pid }
        // Clients are still on the old process: it serves on, and shows as draining.
        #expect(old.signals.isEmpty && !oldLink.isRetired)
        let draining = try #require(await Self.chat(harness))
        #expect(draining.instances.map(\.pid) == [fresh.pid, old.pid])
        #expect(draining.instances.map(\.draining) == [false, true])
        oldLink.setPassengers(0)
        await harness.until { old.signals == [15] }
        #expect(oldLink.isRetired)
        await harness.until { await Self.chat(harness)?.restarts == 1 }
        // Once the old process has stopped, the bay is one process again.
        #expect(await Self.chat(harness)?.instances.isEmpty == true)
        #expect(await restart.value == nil)
        #expect(await supervisor.state == .running)
        #expect(await Self.chat(harness)?.phase == .running)

        // The next replacement takes the first path again; clients that stay past stop_timeout are
        // closed (the link retired) and the old process stopped.
        // The process is not stopped before its clients are closed: stopped sooner, it could end
        // the link first, and they would be closed as if the bay had failed (1011).
        let freshLink = try #require(bays.links("chat").last)
        freshLink.setPassengers(3)
        freshLink.holdRetirement()
        let again = await Self.restarting(harness, bays: bays, process: 3)
        let third = try #require(harness.launcher.latest("chat"))
        #expect(third.request.environment["MS_SOCKET_PATH"] == "/tmp/ms-run/chat.sock")
        bays.moor("chat")
        await harness.until { freshLink.isRetired }
        for _ in 0..<20 { await Task.yield() }
        #expect(fresh.signals.isEmpty)
        freshLink.releaseRetirement()
        await harness.until { fresh.signals == [15] }
        #expect(await again.value == nil)
        #expect(await Self.chat(harness)?.pid == third.pid)
        #expect(harness.launcher.processes(named: "chat").count == 3)
        #expect(await harness.land() == .landed)
        #expect(third.signals == [15])
    }

    /// A replacement that exits before it docks aborts the restart with the reason; the old
    /// process keeps serving on its link, and later replacements still work.
    @Test func aReplacementThatExitsBeforeDockingAbortsAndTheOldBayServesOn() async throws {
        let bays = FakeBayDocking()
        let harness = try await Self.docked(bays: bays)
        let old = try #require(harness.launcher.latest("chat"))
        let supervisor = harness.supervisor
        let restart = await Self.restarting(harness, bays: bays, process: 2)
        try #require(harness.launcher.latest("chat")).finish(.exited(code: 3))
        #expect(
            await restart.value
                == .restartAborted(
                    "phased restart of bay 'chat' aborted: its replacement exited with status 3 before it docked"
                ))
        #expect(old.signals.isEmpty)
        #expect(try #require(bays.links("chat").first).isClosed == false)
        #expect(await Self.chat(harness)?.pid == old.pid)
        #expect(await supervisor.state == .running)

        // The old process's crash is still handled as a crash (a critical bay takes the fleet down).
        old.finish(.exited(code: 1))
        #expect(await harness.outcome() == .crashed(vessel: "chat", reason: "exited with status 1"))
    }

    /// A reload that changes a docked bay replaces it the same way: the replacement docks with the
    /// new config beside it, and the old one is stopped once drained.
    @Test func aReloadThatChangesADockedBayReplacesItBesideTheServingOne() async throws {
        let bays = FakeBayDocking()
        let harness = try await Self.docked(bays: bays)
        let old = try #require(harness.launcher.latest("chat"))
        let changed = Self.fleet(critical: true).replacingOccurrences(
            of: #"greeting = "hi""#, with: #"greeting = "hey""#)
        let result = ManifestLoader.load(text: changed)
        let summary = try await harness.supervisor.reload(try #require(result.manifest))
        #expect(summary.changed == ["chat"])
        await harness.until { bays.isWaiting("chat") && harness.launcher.processes(named: "chat").count == 2 }
        #expect(bays.requests.last?.config["greeting"] == "hey")
        #expect(bays.requests.last?.socketPath == "/tmp/ms-run/chat.1.sock")
        #expect(old.signals.isEmpty)
        bays.moor("chat")
        await harness.until { old.signals == [15] }
        #expect(try #require(bays.links("chat").first).isRetired)
        #expect(await Self.chat(harness)?.pid == harness.launcher.latest("chat")?.pid)
        #expect(await harness.supervisor.state == .running)
        #expect(harness.launcher.processes(named: "web").count == 1)
        #expect(await harness.land() == .landed)
    }

    /// The new process crashing while the old one still drains is a crash like any other, handled
    /// at once: the drain goes on for the old process's clients.
    @Test func aReplacementThatCrashesWhileTheOldOneDrainsIsRestartedAtOnce() async throws {
        let bays = FakeBayDocking()
        let harness = try await Self.docked(bays: bays, critical: false)
        let old = try #require(harness.launcher.latest("chat"))
        try #require(bays.links("chat").first).setPassengers(5)
        let restart = await Self.restarting(harness, bays: bays, process: 2)
        let fresh = try #require(harness.launcher.latest("chat"))
        bays.moor("chat")
        await harness.until { await Self.chat(harness)?.pid == fresh.pid }
        fresh.finish(.exited(code: 1))
        // Restarted after its backoff (well under the 10 s drain), the old process still serving.
        await harness.until { harness.launcher.processes(named: "chat").count == 3 }
        #expect(old.signals.isEmpty)
        #expect(
            harness.launcher.latest("chat")?.request.environment["MS_SOCKET_PATH"]
                == "/tmp/ms-run/chat.1.sock")
        bays.moor("chat")
        await harness.until { old.signals == [15] }
        #expect(await restart.value == nil)
        #expect(await harness.land() == .landed)
    }

    /// `stop chat` while its replacement docks stops both at once, and the restart says why it ended.
    @Test func stoppingABayWhileItsReplacementDocksStopsBoth() async throws {
        let bays = FakeBayDocking()
        let harness = try await Self.docked(bays: bays)
        let old = try #require(harness.launcher.latest("chat"))
        let restart = await Self.restarting(harness, bays: bays, process: 2)
        let fresh = try #require(harness.launcher.latest("chat"))
        try await harness.supervisor.stopVessel("chat")
        await harness.until { old.signals == [15] && fresh.signals.first == 15 }
        #expect(
            await restart.value
                == .restartAborted("phased restart of bay 'chat' aborted: the bay is stopping"))
        await harness.until { await Self.chat(harness)?.phase == .stopped }
        #expect(harness.launcher.processes(named: "chat").count == 2)
        #expect(await harness.supervisor.state == .running)
        #expect(await harness.land() == .landed)
    }
}
