import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ShipManifest

/// The relay's state for one thread (a worker, or a SwiftNIO event loop serving TLS): upstream
/// pools per ship, the request-id generator, module instances and open static files. A client
/// connection and its upstream connection share the thread, so nothing here is locked.
final class LoopContext {
    /// By ship index (the manifest's order).
    private var ships: [ShipPools?] = []
    var requestIDs = RequestIDGenerator()
    /// The static files this thread served lately, open.
    let staticFiles = StaticFileCache()
    /// This loop's instances of the modules of `hooksMadeFrom` (the manifest's set when the loop
    /// first needed it; a reload that loads modules again gives a new set, and new instances).
    private var loopHooks: (any LoopHooks)?
    private var hooksMadeFrom: ObjectIdentifier?
    /// `mothership_relay_worker_requests_total{worker}` of a worker's loop (nil on SwiftNIO's).
    var requests: Counter?

    /// The pool of the instance of `entry`'s ship (a ship route's entry) that takes this request,
    /// nil when no instance is ready.
    func pool(for entry: RouteEntry) -> UpstreamPool? {
        let index = entry.shipIndex
        if index < ships.count, let ship = ships[index] { return ship.pick() }
        guard let gate = entry.shipGate else { preconditionFailure("not a ship route") }
        let ship = ShipPools(gate: gate, allowance: gate.idleAllowance)
        if ships.count <= index {
            ships.append(contentsOf: repeatElement(nil, count: index + 1 - ships.count))
        }
        ships[index] = ship
        return ship.pick()
    }

    /// This loop's instances of `set`'s modules, made on first use (on this loop: module instances
    /// never cross threads).
    func hooks(for set: any RelayHooks) throws -> any LoopHooks {
        let id = ObjectIdentifier(set)
        if id == hooksMadeFrom, let loopHooks { return loopHooks }
        let made = try set.makeLoopHooks()
        (loopHooks, hooksMadeFrom) = (made, id)
        return made
    }

    func closeIdleConnections() {
        for ship in ships { ship?.closeAll() }
        staticFiles.closeAll()
    }

    /// Takes every ship's current instance set (a worker's sweep: the idle connections of an
    /// instance retired meanwhile close without waiting for a request).
    func refreshShips() {
        for ship in ships { ship?.refresh() }
    }
}

/// One ship's pools on one thread: a pool per instance, brought up to date with the ship's
/// instance set when its version moves, and a turn among the ready instances.
final class ShipPools {
    private let gate: ShipGate
    private let allowance: IdleAllowance
    private var version = -1
    private var pools: [(instance: ShipInstance, pool: UpstreamPool)] = []
    private var ready: [UpstreamPool] = []
    private var turn = 0

    init(gate: ShipGate, allowance: IdleAllowance) {
        self.gate = gate
        self.allowance = allowance
    }

    /// The pool of the ready instance with the fewest requests in flight (over every thread; ties
    /// go round in turn), nil when none is ready.
    func pick() -> UpstreamPool? {
        refresh()
        switch ready.count {
        case 0: return nil
        case 1: return ready[0]
        default:
            turn = turn &+ 1
            let start = turn % ready.count
            var best = ready[start]
            var fewest = best.load.current
            for offset in 1..<ready.count where fewest > 0 {
                let pool = ready[(start + offset) % ready.count]
                let load = pool.load.current
                if load < fewest { (best, fewest) = (pool, load) }
            }
            return best
        }
    }

    /// Takes the instance set when it changed (one atomic load when it did not).
    func refresh() {
        if gate.instanceVersion != version { update() }
    }

    /// Takes the current instance set: new instances get a pool, an instance whose address
    /// changed gets a new one, and the pools of instances that left are retired (their idle
    /// connections close now, their busy ones when their exchange ends).
    private func update() {
        let (version, instances) = gate.snapshot()
        self.version = version
        var next: [(instance: ShipInstance, pool: UpstreamPool)] = []
        for instance in instances {
            if let kept = pools.first(where: {
                $0.instance.id == instance.id && $0.instance.address == instance.address
            }) {
                next.append((instance, kept.pool))
            } else {
                next.append(
                    (
                        instance,
                        UpstreamPool(
                            address: .of(instance.address), allowance: allowance, ship: self,
                            instance: instance.id, load: gate.load(for: instance.id))
                    )
                )
            }
        }
        for (_, pool) in pools where !next.contains(where: { $0.pool === pool }) { pool.retire() }
        pools = next
        ready = next.filter(\.instance.ready).map(\.pool)
    }

    func closeAll() {
        for (_, pool) in pools { pool.closeAll() }
    }
}

/// One `LoopContext` per event loop of the group, made on its own loop.
final class LoopContexts: Sendable {
    private let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]

    private init(_ contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) { self.contexts = contexts }

    static func make(for group: any EventLoopGroup) async throws -> LoopContexts {
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = try await loop.submit {
                NIOLoopBound(LoopContext(), eventLoop: loop)
            }.get()
        }
        return LoopContexts(contexts)
    }

    /// The context of `loop`; call on that loop.
    func context(for loop: any EventLoop) -> LoopContext {
        if let bound = contexts[ObjectIdentifier(loop)] { return bound.value }
        preconditionFailure("event loop outside the relay's group")
    }

    /// Makes each loop's hooks on that loop now, so that a module that cannot be instantiated
    /// fails the start instead of a request.
    func installHooks(_ hooks: any RelayHooks) async throws {
        for bound in contexts.values {
            _ = try await bound.eventLoop.submit { _ = try bound.value.hooks(for: hooks) }.get()
        }
    }

    /// Closes the idle upstream connections of every loop.
    func closeIdleConnections() async {
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.closeIdleConnections() }.get()
        }
    }
}
