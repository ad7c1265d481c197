import MothershipTestSupport
import ShipManifest
import Supervision
import Testing

/// A ship with `workers` under the supervisor, with fake processes and a manual clock: instances
/// on their own addresses, phased restarts that alternate generations, and an aborted one that
/// leaves the next replacement on the free address.
@Suite("Workers under the supervisor")
struct WorkersSupervisionTests {
    static let manifest = """
        [[fleet.web]]
        name = "web"
        command = "puma"
        bind = "3000"
        workers = 2
        healthcheck = "/up"
        stop_timeout = "5s"
        """

    static func port(of process: FakeProcess?) -> String? { process?.request.environment["PORT"] }

    /// The fleet of `manifest` running: both instances launched and healthy.
    static func running() async throws -> Harness {
        let harness = try Harness(manifest)
        await harness.launched(2)
        for port in [3000, 3001] { harness.health.set(.tcp(host: "127.0.0.1", port: port), healthy: true) }
        await harness.state(.running)
        return harness
    }

    @Test(.timeLimit(.minutes(1)))
    func instancesTakeTheirOwnAddressesAndPhasedRestartsAlternateThem() async throws {
        let harness = try Harness(Self.manifest)
        await harness.launched(2)
        let first = harness.launcher.processes(named: "web")
        #expect(Set(first.compactMap(Self.port)) == ["3000", "3001"])
        #expect(Set(first.compactMap { $0.request.environment["MS_WORKER"] }) == ["0", "1"])
        for port in [3000, 3001] { harness.health.set(.tcp(host: "127.0.0.1", port: port), healthy: true) }
        await harness.state(.running)
        let status = await harness.supervisor.status().vessels[0]
        #expect(status.workers == 2 && status.instances.count == 2 && status.phase == .running)

        // A replacement that exits before it is ready aborts the restart; the old ones serve on.
        let aborted = Task { try await harness.supervisor.phasedRestart("web") }
        await harness.launched(3)
        let failed = try #require(harness.launcher.processes(named: "web").last)
        #expect(Self.port(of: failed) == "3002")
        failed.finish(.exited(code: 1))
        await #expect(throws: ControlRefusal.self) { try await aborted.value }
        #expect(first.allSatisfy { !$0.hasExited })

        // The next replacement of slot 0 takes 3002 again (the free generation), never 3000.
        let restart = Task { try await harness.supervisor.phasedRestart("web") }
        await harness.launched(4)
        let fresh0 = try #require(harness.launcher.processes(named: "web").last)
        #expect(Self.port(of: fresh0) == "3002")
        harness.health.set(.tcp(host: "127.0.0.1", port: 3002), healthy: true)
        await harness.launched(5)
        let fresh1 = try #require(harness.launcher.processes(named: "web").last)
        #expect(Self.port(of: fresh1) == "3003")
        harness.health.set(.tcp(host: "127.0.0.1", port: 3003), healthy: true)
        let replaced = Locked<Int?>(nil)
        let watcher = Task {
            let count = try? await restart.value
            replaced.mutate { $0 = count }
        }
        await harness.until { replaced.value != nil }
        await watcher.value
        #expect(replaced.value == 2)
        #expect(first.allSatisfy { $0.signals == [15] })
        #expect(!fresh0.hasExited && !fresh1.hasExited)
        let after = await harness.supervisor.status().vessels[0]
        #expect(Set(after.instances.map(\.pid)) == [fresh0.pid, fresh1.pid])
        #expect(after.restarts == 1)
        _ = await harness.land()
        #expect(fresh0.signals == [15] && fresh1.signals == [15])
    }

    @Test(.timeLimit(.minutes(1)))
    func landingDuringAPhasedRestartStopsTheReplacementToo() async throws {
        let harness = try await Self.running()
        let restart = Task { try await harness.supervisor.phasedRestart("web") }
        await harness.launched(3)
        let replacement = try #require(harness.launcher.processes(named: "web").last)
        #expect(await harness.land() == .landed)
        #expect(replacement.hasExited, "the replacement outlived the landing: \(harness.journal)")
        #expect(harness.launcher.processes.allSatisfy { $0.hasExited })
        await #expect(throws: ControlRefusal.self) { try await restart.value }
    }

    /// SPEC §12.2: an unhealthy instance takes no new request while the others serve.
    @Test(.timeLimit(.minutes(1)))
    func anUnhealthyInstanceStopsServingWhileTheOtherServes() async throws {
        let harness = try await Self.running()
        harness.health.set(.tcp(host: "127.0.0.1", port: 3001), healthy: false)
        let supervisor = harness.supervisor
        await harness.until {
            await supervisor.status().vessels[0].instances.contains { $0.slot == 1 && $0.healthy == false }
        }
        let ship = await supervisor.status().vessels[0]
        #expect(ship.instances.first { $0.slot == 1 }?.serves == false)
        #expect(ship.instances.first { $0.slot == 0 }?.serves == true)
        #expect(ship.phase == .running)
        _ = await harness.land()
    }

    /// SPEC §12.2: memory per instance (each its own process group's), and the ship's own line
    /// their sum.
    @Test(.timeLimit(.minutes(1)))
    func memoryIsSampledPerInstanceAndSummedForTheShip() async throws {
        let harness = try await Self.running()
        let supervisor = harness.supervisor
        await harness.until { await supervisor.status().vessels[0].instances.allSatisfy { $0.memory != nil } }
        let status = await supervisor.status().vessels[0]
        for instance in status.instances {
            // FakeProcess reports 4096 bytes per unit of its pid.
            #expect(instance.memory?.residentBytes == 4096 * UInt64(instance.pid))
        }
        #expect(status.memory?.residentBytes == status.instances.reduce(0) { $0 + 4096 * UInt64($1.pid) })
        #expect(await harness.land() == .landed)
    }
}
