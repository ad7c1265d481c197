import MothershipTestSupport
import ShipManifest
import Supervision
import Testing

/// The Electing → Prelaunch → Launching phases with `[mothership.flagship]`, against a fake elector.
@Suite("Flagship phases with a fake elector", .timeLimit(.minutes(1)))
struct FlagshipPhaseTests {
    static let manifest = """
        [mothership.flagship]
        enabled = true
        static_flagship = "$MS_FLAGSHIP"
        [[mothership.prelaunch]]
        name = "migrate"
        command = "rake"
        [[fleet.web]]
        name = "web"
        command = "rails"
        """

    @Test func theFlagshipRunsPrelaunchThenSignalsReadyAndReleasesTheLock() async throws {
        let elector = FakeElector(.flagship)
        let harness = try Harness(Self.manifest, elector: elector)
        await harness.launched(1)
        #expect(harness.launcher.launchedNames == ["migrate"])
        #expect(elector.journal.all == ["elect"])
        harness.launcher.latest("migrate")?.finish(.exited(code: 0))
        await harness.launched(2)
        #expect(elector.journal.all == ["elect", "signal ready", "release lock"])
        await harness.state(.running)
        #expect(harness.lifecycle.prefix(3) == [.electing, .prelaunch, .launching])
        #expect(await harness.land() == .landed)
    }

    @Test func aFailingPrelaunchOnTheFlagshipSignalsAbortAndFails() async throws {
        let elector = FakeElector(.flagship)
        let harness = try Harness(Self.manifest, elector: elector)
        await harness.launched(1)
        harness.launcher.latest("migrate")?.finish(.exited(code: 1))
        #expect(await harness.outcome() == .failed("prelaunch job 'migrate' exited with status 1"))
        #expect(
            elector.journal.all == [
                "elect", "signal abort: prelaunch job 'migrate' exited with status 1", "release lock",
            ])
        #expect(harness.launcher.launchedNames == ["migrate"])
    }

    @Test func aShutdownDuringTheFlagshipsPrelaunchTellsTheEscortsToAbort() async throws {
        let elector = FakeElector(.flagship)
        let harness = try Harness(Self.manifest, elector: elector)
        await harness.launched(1)
        #expect(await harness.land() == .landed)
        #expect(
            elector.journal.all == [
                "elect", "signal abort: the flagship was shut down before its prelaunch finished",
                "release lock",
            ])
    }

    @Test func aStaticEscortSkipsPrelaunchAndLaunches() async throws {
        let elector = FakeElector(.escort(waits: false, outcome: nil))
        let harness = try Harness(Self.manifest, elector: elector)
        await harness.launched(1)
        #expect(harness.launcher.launchedNames == ["web"])
        #expect(elector.journal.all == ["elect", "release watch"])
        await harness.state(.running)
        #expect(harness.lifecycle.prefix(2) == [.electing, .launching])
        #expect(await harness.land() == .landed)
    }

    @Test func aWaitingEscortLaunchesOnlyAfterTheFlagshipIsReady() async throws {
        let elector = FakeElector(.escort(waits: true, outcome: nil))
        let harness = try Harness(Self.manifest, elector: elector)
        let supervisor = harness.supervisor
        await harness.until { await supervisor.state == .prelaunch }
        #expect(harness.launcher.launchedNames.isEmpty)
        elector.gate.mutate { $0 = true }
        await harness.launched(1)
        #expect(harness.launcher.launchedNames == ["web"])
        #expect(elector.journal.all == ["elect", "await flagship", "release watch"])
        #expect(await harness.land() == .landed)
    }

    @Test func anEscortFailsWhenTheFlagshipAborts() async throws {
        let elector = FakeElector(.escort(waits: true, outcome: "the flagship aborted prelaunch"))
        elector.gate.mutate { $0 = true }
        let harness = try Harness(Self.manifest, elector: elector)
        #expect(await harness.outcome() == .failed("the flagship aborted prelaunch"))
        #expect(harness.launcher.launchedNames.isEmpty)
    }

    @Test func aShutdownEndsAnEscortsWait() async throws {
        let elector = FakeElector(.escort(waits: true, outcome: nil))
        let harness = try Harness(Self.manifest, elector: elector)
        let supervisor = harness.supervisor
        await harness.until { await supervisor.state == .prelaunch }
        #expect(await harness.land() == .landed)
        #expect(harness.launcher.launchedNames.isEmpty)
        #expect(elector.journal.all.last == "release watch")
    }

    @Test func aFailedElectionFailsTheLaunch() async throws {
        let elector = FakeElector(.fails("cannot reach the election database"))
        let harness = try Harness(Self.manifest, elector: elector)
        #expect(await harness.outcome() == .failed("flagship election: cannot reach the election database"))
        #expect(harness.launcher.launchedNames.isEmpty)
        #expect(harness.lifecycle == [.electing, .draining, .failed])
    }
}
