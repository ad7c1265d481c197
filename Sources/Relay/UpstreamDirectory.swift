import ShipManifest
import Synchronization

/// One running instance of a ship: where it listens and whether it takes new requests.
public struct ShipInstance: Sendable, Hashable {
    /// Stable while the instance lives (its connections are pooled under it).
    public var id: Int
    public var address: BindAddress
    public var ready: Bool

    public init(id: Int, address: BindAddress, ready: Bool = true) {
        self.id = id
        self.address = address
        self.ready = ready
    }
}

/// Whether one ship can take traffic now, and its instances. The fleet side flips the gate and
/// replaces the instance set; the relay reads the gate on every request (a single atomic load) and
/// the set only when its version moved (a lock then, once per change and thread).
///
/// An instance that leaves the set is retired: it takes no new request, the requests it serves
/// finish, and its connections close as they come back. One that stays with `ready = false` takes
/// no new request either, and keeps its idle connections for when it is ready again.
public final class ShipGate: Sendable {
    public let ship: String
    /// The ship's place in the relay's per-thread pool tables: given once by the directory and
    /// never reused, so a reload that adds or removes ships never hands one ship's pools to another.
    let index: Int
    /// The ship's circuit breaker and its allowance of idle connections, shared by every listener
    /// and thread, and kept across reloads (they belong to the ship, not to a route table).
    let breaker = ShipBreaker()
    let idleAllowance = IdleAllowance()
    private let open = Atomic<Bool>(false)
    private let version = Atomic<Int>(0)
    private let instances = Mutex<[ShipInstance]>([])
    /// Requests in flight per instance id, over every thread; an instance's entry stays until the
    /// fleet side forgets it (after it drained), so a retired instance can be watched draining.
    private let loads = Mutex<[Int: InstanceLoad]>([:])
    /// Told of an instance that held a request past the ship's `request_timeout` (the directory's).
    private let stuckReports: StuckReports

    init(ship: String, index: Int, stuckReports: StuckReports = StuckReports()) {
        self.ship = ship
        self.index = index
        self.stuckReports = stuckReports
    }

    public var isOpen: Bool { open.load(ordering: .relaxed) }

    public func set(open value: Bool) { open.store(value, ordering: .relaxed) }

    /// Replaces the ship's instances (a worker's restart adds the new one, then retires the old).
    public func set(instances new: [ShipInstance]) {
        instances.withLock { instances in
            instances = new
            version.add(1, ordering: .releasing)
        }
    }

    /// The manifest's one instance, unless the set was given already.
    func adopt(address: BindAddress) {
        instances.withLock { instances in
            guard instances.isEmpty else { return }
            instances = [ShipInstance(id: 0, address: address)]
            version.add(1, ordering: .releasing)
        }
    }

    /// A reload moved the ship's `bind`: the one instance the manifest gave is replaced by one at
    /// the new address (its pools close as their connections come back).
    func move(to address: BindAddress) {
        instances.withLock { instances in
            guard instances.count == 1, instances[0].id == 0, instances[0].address != address else { return }
            instances = [ShipInstance(id: 0, address: address, ready: instances[0].ready)]
            version.add(1, ordering: .releasing)
        }
    }

    /// The in-flight count of instance `id`, made on first use.
    func load(for id: Int) -> InstanceLoad {
        loads.withLock { loads in
            if let load = loads[id] { return load }
            let load = InstanceLoad()
            loads[id] = load
            return load
        }
    }

    /// Requests (and tunnels) instance `id` serves now, over every thread.
    public func inFlight(instance id: Int) -> Int {
        loads.withLock { $0[id]?.current ?? 0 }
    }

    /// The fleet is done with instance `id` (it left the set and stopped).
    public func forget(instance id: Int) {
        _ = loads.withLock { $0.removeValue(forKey: id) }
    }

    func reportStuck(instance id: Int) { stuckReports.report(ship: ship, instance: id) }

    /// Moves whenever the set changes: a thread reads the set again when it differs from the one it saw.
    var instanceVersion: Int { version.load(ordering: .acquiring) }

    func snapshot() -> (version: Int, instances: [ShipInstance]) {
        instances.withLock { (version.load(ordering: .relaxed), $0) }
    }
}

/// Requests in flight to one ship instance, counted by every thread's exchanges (one relaxed atomic
/// add when a request starts and one when it ends): the relay picks the instance with the fewest,
/// and the fleet side waits for a retired instance's count to reach zero before stopping it.
final class InstanceLoad: Sendable {
    private let count = Atomic<Int>(0)

    var current: Int { count.load(ordering: .relaxed) }

    func begin() { count.wrappingAdd(1, ordering: .relaxed) }

    func end() { count.wrappingSubtract(1, ordering: .relaxed) }
}

/// Where the relay reports instances that held a request past their ship's `request_timeout`.
final class StuckReports: Sendable {
    private let reporter = Mutex<(@Sendable (String, Int) -> Void)?>(nil)

    func set(_ report: @escaping @Sendable (String, Int) -> Void) { reporter.withLock { $0 = report } }

    func report(ship: String, instance id: Int) {
        let report = reporter.withLock { $0 }
        report?(ship, id)
    }
}

/// What the relay knows about the fleet: one gate per ship, by name. Relay declares it and never
/// imports Supervision; the executable opens and closes gates from the supervisor's snapshots.
/// A ship a reload adds gets its gate when it is first named; a removed ship's gate stays (closed),
/// so a name that comes back finds its breaker where it left it.
public final class UpstreamDirectory: Sendable {
    private let gates: Mutex<[String: ShipGate]>
    private let stuckReports = StuckReports()

    public init(ships: some Sequence<String>) {
        var gates: [String: ShipGate] = [:]
        let reports = stuckReports
        for ship in ships where gates[ship] == nil {
            gates[ship] = ShipGate(ship: ship, index: gates.count, stuckReports: reports)
        }
        self.gates = Mutex(gates)
    }

    /// Called (on a relay thread) with a ship and the id of its instance that held a request past
    /// the ship's `request_timeout`.
    public func onStuck(_ report: @escaping @Sendable (_ ship: String, _ instance: Int) -> Void) {
        stuckReports.set(report)
    }

    /// The gate of `ship`, made when the directory did not know it yet.
    public func gate(for ship: String) -> ShipGate {
        gates.withLock { gates in
            if let gate = gates[ship] { return gate }
            let gate = ShipGate(ship: ship, index: gates.count, stuckReports: stuckReports)
            gates[ship] = gate
            return gate
        }
    }

    /// Opens (ready) or closes (starting, backing off, stopped) the gate of `ship`.
    public func set(ship: String, ready: Bool) { gate(for: ship).set(open: ready) }

    /// Replaces the instances of `ship` (by default the one its manifest entry binds).
    public func set(ship: String, instances: [ShipInstance]) { gate(for: ship).set(instances: instances) }

    /// Requests in flight to instance `id` of `ship`.
    public func inFlight(ship: String, instance id: Int) -> Int { gate(for: ship).inFlight(instance: id) }

    /// The fleet is done with instance `id` of `ship`.
    public func forget(ship: String, instance id: Int) { gate(for: ship).forget(instance: id) }
}
