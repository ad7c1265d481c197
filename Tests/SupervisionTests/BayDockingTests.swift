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
}
