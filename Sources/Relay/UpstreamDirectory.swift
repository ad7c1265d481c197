import Synchronization

/// Whether one ship can take traffic now. The fleet side flips it; the relay reads it on every
/// request, so it is a single atomic load (no lock, no hashing on the hot path).
public final class ShipGate: Sendable {
    public let ship: String
    private let open = Atomic<Bool>(false)

    init(ship: String) { self.ship = ship }

    public var isOpen: Bool { open.load(ordering: .relaxed) }

    public func set(open value: Bool) { open.store(value, ordering: .relaxed) }
}

/// What the relay knows about the fleet: one gate per ship, by name. Relay declares it and never
/// imports Supervision; the executable opens and closes gates from the supervisor's snapshots.
public final class UpstreamDirectory: Sendable {
    private let gates: [String: ShipGate]

    public init(ships: some Sequence<String>) {
        var gates: [String: ShipGate] = [:]
        for ship in ships { gates[ship] = ShipGate(ship: ship) }
        self.gates = gates
    }

    /// The gate of `ship`, or nil when the directory does not know it.
    public func gate(for ship: String) -> ShipGate? { gates[ship] }

    /// Opens (ready) or closes (starting, backing off, stopped) the gate of `ship`.
    public func set(ship: String, ready: Bool) { gates[ship]?.set(open: ready) }
}
