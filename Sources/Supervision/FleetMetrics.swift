import Metrics
import ShipManifest

/// The fleet metrics of SPEC §10 through the swift-metrics facade (the executable chooses the backend):
/// `mothership_ship_status`, `_healthy`, `_restarts_total`, `_memory_rss_bytes`, `_memory_virtual_bytes`
/// per `{ship, group}`, and `mothership_fleet_ships_total`.
struct FleetMetrics: Sendable {
    struct Instruments: Sendable {
        let status: Gauge
        let healthy: Gauge
        let restarts: Counter
        let resident: Gauge
        let virtual: Gauge
    }

    private(set) var instruments: [String: Instruments]
    let shipsTotal: Gauge

    /// One instance slot of a ship with workers (`{ship, worker}`).
    struct WorkerInstruments: Sendable {
        let ready: Gauge
        let restarts: Counter
        let resident: Gauge

        init(ship: String, slot: Int) {
            let dimensions = [("ship", ship), ("worker", String(slot))]
            ready = Gauge(label: "mothership_worker_ready", dimensions: dimensions)
            restarts = Counter(label: "mothership_worker_restarts_total", dimensions: dimensions)
            resident = Gauge(label: "mothership_worker_memory_rss_bytes", dimensions: dimensions)
        }
    }

    private(set) var workers: [String: [WorkerInstruments]] = [:]

    init(vessels: [Vessel]) {
        instruments = [:]
        shipsTotal = Gauge(label: "mothership_fleet_ships_total")
        for vessel in vessels {
            instruments[vessel.name] = Self.instruments(for: vessel)
            addWorkers(of: vessel)
        }
    }

    /// The series of every slot of a ship with workers, from 0.
    private mutating func addWorkers(of vessel: Vessel) {
        guard vessel.restartsInPhases, let count = vessel.workers else { return }
        let slots = (0..<count).map { WorkerInstruments(ship: vessel.name, slot: $0) }
        for slot in slots {
            slot.ready.record(0)
            slot.restarts.increment(by: 0)
            slot.resident.record(0)
        }
        workers[vessel.name] = slots
    }

    /// A reload changed a ship's worker count: its slots' series follow.
    mutating func changeWorkers(of vessel: Vessel) {
        for slot in workers.removeValue(forKey: vessel.name) ?? [] {
            slot.ready.destroy()
            slot.restarts.destroy()
            slot.resident.destroy()
        }
        addWorkers(of: vessel)
    }

    static func instruments(for vessel: Vessel) -> Instruments {
        let dimensions = [("ship", vessel.name), ("group", vessel.group)]
        return Instruments(
            status: Gauge(label: "mothership_ship_status", dimensions: dimensions),
            healthy: Gauge(label: "mothership_ship_healthy", dimensions: dimensions),
            restarts: Counter(label: "mothership_ship_restarts_total", dimensions: dimensions),
            resident: Gauge(label: "mothership_ship_memory_rss_bytes", dimensions: dimensions),
            virtual: Gauge(label: "mothership_ship_memory_virtual_bytes", dimensions: dimensions))
    }

    /// A vessel a reload added: its series from 0.
    mutating func add(_ vessel: Vessel) {
        let instrument = Self.instruments(for: vessel)
        instruments[vessel.name] = instrument
        changeWorkers(of: vessel)
        instrument.status.record(0)
        instrument.healthy.record(0)
        instrument.restarts.increment(by: 0)
        instrument.resident.record(0)
        instrument.virtual.record(0)
    }

    /// A vessel a reload removed: its series are gone from `/metrics`.
    mutating func remove(_ name: String) {
        guard let instrument = instruments.removeValue(forKey: name) else { return }
        instrument.status.destroy()
        instrument.healthy.destroy()
        instrument.restarts.destroy()
        instrument.resident.destroy()
        instrument.virtual.destroy()
        for slot in workers.removeValue(forKey: name) ?? [] {
            slot.ready.destroy()
            slot.restarts.destroy()
            slot.resident.destroy()
        }
    }

    /// Every series exists from the start (a restart counter at 0 is information).
    func publishInitial(_ vessels: [Vessel]) {
        shipsTotal.record(vessels.count)
        for vessel in vessels {
            guard let instrument = instruments[vessel.name] else { continue }
            instrument.status.record(0)
            instrument.healthy.record(0)
            instrument.restarts.increment(by: 0)
            instrument.resident.record(0)
            instrument.virtual.record(0)
        }
    }

    func update(_ status: VesselStatus) {
        guard let instrument = instruments[status.name] else { return }
        instrument.status.record(status.phase == .running || status.phase == .completed ? 1 : 0)
        // Without a health check, a running vessel counts as healthy.
        let healthy = status.healthy ?? (status.phase == .running || status.phase == .completed)
        instrument.healthy.record(healthy ? 1 : 0)
        instrument.resident.record(Int64(clamping: status.memory?.residentBytes ?? 0))
        instrument.virtual.record(Int64(clamping: status.memory?.virtualBytes ?? 0))
        guard let slots = workers[status.name] else { return }
        for (slot, series) in slots.enumerated() {
            let instance = status.instances.first { $0.slot == slot && !$0.draining }
            series.ready.record(instance?.serves == true ? 1 : 0)
            series.resident.record(Int64(clamping: instance?.memory?.residentBytes ?? 0))
        }
    }

    func countRestart(_ name: String) {
        instruments[name]?.restarts.increment()
    }

    func countWorkerRestart(_ name: String, slot: Int) {
        guard let slots = workers[name], slot < slots.count else { return }
        slots[slot].restarts.increment()
    }
}
