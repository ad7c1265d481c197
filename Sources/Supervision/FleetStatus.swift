import ShipManifest

/// What one vessel is doing, as the dashboard, the metrics and /health see it.
public enum VesselPhase: String, Sendable, Hashable {
    /// Waiting for its dependencies.
    case waiting
    case starting
    /// Up and ready (healthy, accepting, docked or simply spawned).
    case running
    /// A oneshot that exited 0.
    case completed
    /// Crashed; waiting out the restart delay.
    case backingOff = "backing off"
    case stopping
    case stopped
    /// Could not be started or exited for good.
    case failed
}

/// A snapshot of one vessel.
public struct VesselStatus: Sendable, Hashable {
    public var name: String
    public var kind: Vessel.Kind
    public var group: String
    public var phase: VesselPhase
    public var pid: Int32?
    /// Nil when the vessel has no health check (or has not been checked yet).
    public var healthy: Bool?
    public var restarts: Int
    public var memory: MemoryUsage?
    /// When the current process started, on the fleet's clock (offset from the fleet's start).
    public var startedAt: Duration?
    public var routes: [String]
    public var critical: Bool
    /// A ship with `workers`: how many, and its instances (the draining ones a phased restart
    /// replaced last). Nil and empty for a vessel without.
    public var workers: Int?
    public var instances: [InstanceStatus] = []

    public var isUp: Bool { phase == .running }

    public init(
        name: String, kind: Vessel.Kind, group: String, phase: VesselPhase, pid: Int32? = nil,
        healthy: Bool? = nil, restarts: Int = 0, memory: MemoryUsage? = nil, startedAt: Duration? = nil,
        routes: [String] = [], critical: Bool = true
    ) {
        self.name = name
        self.kind = kind
        self.group = group
        self.phase = phase
        self.pid = pid
        self.healthy = healthy
        self.restarts = restarts
        self.memory = memory
        self.startedAt = startedAt
        self.routes = routes
        self.critical = critical
    }
}

/// One instance of a ship with workers.
public struct InstanceStatus: Sendable, Hashable {
    /// Its id in the relay's instance set.
    public var id: Int
    public var slot: Int
    public var address: BindAddress?
    public var pid: Int32
    /// Takes requests: answered its readiness check, not draining, not failing its health checks.
    public var ready: Bool
    public var healthy: Bool?
    public var memory: MemoryUsage?
    public var startedAt: Duration?
    /// Replaced by a phased restart: finishing its requests, then stopped.
    public var draining: Bool
    /// Its slot's restarts after a crash or failed health checks.
    public var restarts: Int

    public init(
        id: Int, slot: Int, address: BindAddress?, pid: Int32, ready: Bool, healthy: Bool? = nil,
        memory: MemoryUsage? = nil, startedAt: Duration? = nil, draining: Bool = false, restarts: Int = 0
    ) {
        self.restarts = restarts
        self.id = id
        self.slot = slot
        self.address = address
        self.pid = pid
        self.ready = ready
        self.healthy = healthy
        self.memory = memory
        self.startedAt = startedAt
        self.draining = draining
    }

    /// Whether the relay sends it new requests.
    public var serves: Bool { ready && !draining && healthy != false }
}

/// A snapshot of the fleet: lifecycle state and every vessel in manifest order.
public struct FleetStatus: Sendable, Hashable {
    public var lifecycle: LifecycleState
    public var vessels: [VesselStatus]
    /// The fleet clock's offset now, for computing uptimes from `startedAt`.
    public var now: Duration

    public init(lifecycle: LifecycleState, vessels: [VesselStatus], now: Duration) {
        self.lifecycle = lifecycle
        self.vessels = vessels
        self.now = now
    }
}
