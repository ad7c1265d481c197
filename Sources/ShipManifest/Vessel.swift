/// A supervised process: a ship (`[[fleet.<group>]]`) or a bay (`[[bays.<type>]]`).
///
/// Templates (`[base.ship]`, `[base.bay]`) are already merged in: every value here is final.
public struct Vessel: Sendable {
    public enum Kind: String, Sendable, Hashable {
        case ship
        case bay
    }

    public var name: String
    public var kind: Kind
    /// The fleet group for a ship (`web`, `workers`, ...), the bay type for a bay (passed as `MS_BAY_TYPE`).
    public var group: String
    public var command: String
    public var arguments: [String]
    /// The vessel's `env` over its `env_file`s' variables (templates merged in).
    public var environment: [String: String]
    /// `env_file` (the template's first), as written (already read into `environment`).
    public var envFiles: [String] = []
    public var dependsOn: [String]
    /// A crash of a critical vessel takes the fleet down; others are restarted with backoff.
    public var critical: Bool
    public var tags: [String]
    public var routes: [Route]
    public var startTimeout: Duration
    public var stopTimeout: Duration
    public var stopSignal: StopSignal
    public var workingDirectory: String?

    // Ship-only.
    /// Where the ship serves HTTP (the relay's upstream).
    public var bind: BindAddress?
    /// HTTP path checked with GET on `bind`.
    public var healthcheck: String?
    /// Runs once; exit 0 is success.
    public var oneshot: Bool
    /// `workers = N`: N instances, each on its own address from its environment (`PORT`,
    /// `MS_SOCKET_PATH`, `MS_WORKER`), restarted in phases (SPEC §12.2). Nil: one process on `bind`
    /// itself, restarted stop-then-start (the command may not read its address from the environment).
    public var workers: Int?
    /// A request to this ship without a response head within it is answered 504 (nil: the relay's
    /// `first_byte_timeout`).
    public var requestTimeout: Duration?
    /// With `request_timeout`: the instance that held a timed-out request is replaced (phased).
    public var recycleStuck = false

    // Bay-only.
    /// Sent to the bay in Moored, as strings.
    public var config: [String: String]
    /// Whether the bay's clients may agree permessage-deflate (`permessage_deflate`, default true).
    public var permessageDeflate: Bool

    /// Where the vessel is declared (`fleet.web[0]`), for messages that point into the manifest.
    public var manifestPath: FieldPath = .root

    public init(
        name: String, kind: Kind = .ship, group: String = "web", command: String, arguments: [String] = [],
        environment: [String: String] = [:], dependsOn: [String] = [], critical: Bool = true,
        tags: [String] = [],
        routes: [Route] = [], startTimeout: Duration = .seconds(60), stopTimeout: Duration = .seconds(10),
        stopSignal: StopSignal = .term, workingDirectory: String? = nil, bind: BindAddress? = nil,
        healthcheck: String? = nil, oneshot: Bool = false, config: [String: String] = [:],
        permessageDeflate: Bool = true
    ) {
        self.name = name
        self.kind = kind
        self.group = group
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.dependsOn = dependsOn
        self.critical = critical
        self.tags = tags
        self.routes = routes
        self.startTimeout = startTimeout
        self.stopTimeout = stopTimeout
        self.stopSignal = stopSignal
        self.workingDirectory = workingDirectory
        self.bind = bind
        self.healthcheck = healthcheck
        self.oneshot = oneshot
        self.config = config
        self.permessageDeflate = permessageDeflate
    }
}

/// The signal sent to a vessel's process group to stop it (`stop_signal`, ours).
public enum StopSignal: String, Sendable, Hashable, CaseIterable {
    case term = "TERM"
    case int = "INT"
    case quit = "QUIT"
    case hup = "HUP"
    case kill = "KILL"
    case usr1 = "USR1"
    case usr2 = "USR2"
    case winch = "WINCH"

    /// Accepts `TERM`, `SIGTERM`, `term`.
    public init?(parsing text: String) {
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        self.init(rawValue: name)
    }

    /// The Linux signal number.
    public var number: Int32 {
        switch self {
        case .hup: 1
        case .int: 2
        case .quit: 3
        case .kill: 9
        case .usr1: 10
        case .usr2: 12
        case .term: 15
        case .winch: 28
        }
    }
}

extension Vessel {
    /// Whether `other` runs the same way (command, environment, address, timeouts…): a reload
    /// leaves such a vessel alone. Where it is declared does not count, and neither do its routes:
    /// they are the relay's, which takes them without the process noticing.
    public func hasSameDefinition(as other: Vessel) -> Bool {
        name == other.name && kind == other.kind && group == other.group && command == other.command
            && arguments == other.arguments && environment == other.environment
            && dependsOn == other.dependsOn
            && critical == other.critical && tags == other.tags
            && startTimeout == other.startTimeout && stopTimeout == other.stopTimeout
            && stopSignal == other.stopSignal && workingDirectory == other.workingDirectory
            && bind == other.bind
            && healthcheck == other.healthcheck && oneshot == other.oneshot && config == other.config
            && permessageDeflate == other.permessageDeflate && workers == other.workers
    }

    /// Whether a restart can start the replacement before the old process stops: the ship declared
    /// `workers`, so its instances take their address from the environment.
    public var restartsInPhases: Bool { kind == .ship && workers != nil && !oneshot }

    /// The address of instance `slot` in `generation` (0 or 1): for `host:P` with N workers, port
    /// P + generation × N + slot; for a socket path, `PATH.slot.generation`. Two generations let a
    /// replacement listen while the instance it replaces still serves. Nil without a bind.
    public func instanceAddress(slot: Int, generation: Int) -> BindAddress? {
        guard let bind else { return nil }
        let count = workers ?? 1
        switch bind {
        case .tcp(let host, let port): return .tcp(host: host, port: port + generation * count + slot)
        case .unix(let path): return .unix(path: "\(path).\(slot).\(generation)")
        }
    }

    /// Every address the ship's instances may take (both generations), or its one bind.
    public var instanceAddresses: [BindAddress] {
        guard restartsInPhases, let count = workers else { return bind.map { [$0] } ?? [] }
        return (0..<2).flatMap { generation in
            (0..<count).compactMap { instanceAddress(slot: $0, generation: generation) }
        }
    }
}
