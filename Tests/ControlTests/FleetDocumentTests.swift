import Control
import ShipManifest
import Supervision
import Testing

/// What `status --json` (and the web dashboard) say of a vessel's processes: a ship's instances,
/// and a bay's two processes during a phased restart.
@Suite("Fleet document")
struct FleetDocumentTests {
    @Test func aShipsInstancesAndABaysTwoProcessesAreListedUnderThem() {
        var web = VesselStatus(name: "web", kind: .ship, group: "web", phase: .running, pid: 11)
        web.instances = [
            InstanceStatus(id: 1, slot: 0, address: nil, pid: 11, ready: true, startedAt: .seconds(5)),
            InstanceStatus(id: 2, slot: 1, address: nil, pid: 12, ready: false),
        ]
        var chat = VesselStatus(name: "chat", kind: .bay, group: "websocket", phase: .running, pid: 21)
        chat.instances = [
            InstanceStatus(id: 21, slot: 0, address: nil, pid: 21, ready: true),
            InstanceStatus(id: 20, slot: 0, address: nil, pid: 20, ready: false, draining: true),
        ]
        let quiet = VesselStatus(name: "ticker", kind: .ship, group: "workers", phase: .running, pid: 31)
        let document = FleetDocument(
            name: "fleet",
            status: FleetStatus(lifecycle: .running, vessels: [web, chat, quiet], now: .seconds(9)))

        let ship = document.vessels[0].workers
        #expect(ship.map(\.name) == ["web[0]", "web[1]"])
        #expect(ship.map(\.kind) == ["worker", "worker"])
        #expect(ship.map(\.state) == ["running", "starting"])
        #expect(ship.map(\.uptimeSeconds) == [4, nil])
        let bay = document.vessels[1].workers
        #expect(bay.map(\.name) == ["chat[0]", "chat[0]"])
        #expect(bay.map(\.kind) == ["bay", "bay"])
        #expect(bay.map(\.state) == ["running", "draining"])
        #expect(bay.map(\.pid) == [21, 20])
        #expect(document.vessels[2].workers.isEmpty)
        #expect(document.json().contains("\"kind\":\"bay\""))
    }
}
