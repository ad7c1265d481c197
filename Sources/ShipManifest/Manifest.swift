/// A validated `ship-manifest.toml`: everything later stages need, as typed values, in declaration order.
public struct Manifest: Sendable {
    public var settings: MothershipSettings
    /// Ships and bays, in manifest declaration order (the order routes are matched in).
    public var vessels: [Vessel]
    public var prelaunch: [PrelaunchJob]
    public var modules: [Module]
    /// Vessels left out by `--only`/`--except`, by name (for the chart and the logs).
    public var filteredOut: [String]

    public init(
        settings: MothershipSettings, vessels: [Vessel], prelaunch: [PrelaunchJob], modules: [Module],
        filteredOut: [String] = []
    ) {
        self.settings = settings
        self.vessels = vessels
        self.prelaunch = prelaunch
        self.modules = modules
        self.filteredOut = filteredOut
    }

    public var ships: [Vessel] { vessels.filter { $0.kind == .ship } }
    public var bays: [Vessel] { vessels.filter { $0.kind == .bay } }

    public func vessel(named name: String) -> Vessel? {
        vessels.first { $0.name == name }
    }

    /// The route table of one listener: every route of every vessel that names it, in declaration order.
    public func routes(for bind: String) -> [(route: Route, vessel: Vessel)] {
        vessels.flatMap { vessel in
            vessel.routes.filter { $0.bind == bind }.map { (route: $0, vessel: vessel) }
        }
    }
}

/// The `[mothership]` table.
public struct MothershipSettings: Sendable {
    /// Deployment name (ours): keys the flagship lock; defaults to the manifest's directory name.
    public var name: String
    public var metricsPort: Int?
    public var compression: Bool
    public var corsCache: CorsCacheSettings?
    /// `[mothership.env]` over `[mothership] env_file`'s variables: environment for every vessel.
    public var environment: [String: String]
    /// `[mothership] env_file`, as written (already read into `environment`).
    public var envFiles: [String] = []
    /// Named listeners, in declaration order.
    public var listeners: [Listener]
    public var staticDirectories: [StaticDirectory]
    public var rateLimiting: RateLimiting?
    public var flagship: FlagshipSettings?
    public var uplinks: [Uplink]
    /// `relay_workers` (ours): the threads that serve plain HTTP/1 connections; nil: one per core.
    /// Not a ship's `workers` (its instances).
    public var relayWorkers: Int?
    /// `control_socket` (ours, SPEC §12.1): where `run` takes commands.
    public var controlSocket: ControlSocketSetting = .besideManifest
    /// `[mothership.logs]` (ours, SPEC §12.5): per-vessel log files; nil: none.
    public var logs: LogSettings?
    /// `[mothership.dashboard]` (ours, SPEC §12.6): the web page on the metrics listener.
    public var dashboard = DashboardSettings()

    public init(
        name: String, metricsPort: Int? = nil, compression: Bool = false, corsCache: CorsCacheSettings? = nil,
        environment: [String: String] = [:], listeners: [Listener] = [],
        staticDirectories: [StaticDirectory] = [],
        rateLimiting: RateLimiting? = nil, flagship: FlagshipSettings? = nil, uplinks: [Uplink] = []
    ) {
        self.name = name
        self.metricsPort = metricsPort
        self.compression = compression
        self.corsCache = corsCache
        self.environment = environment
        self.listeners = listeners
        self.staticDirectories = staticDirectories
        self.rateLimiting = rateLimiting
        self.flagship = flagship
        self.uplinks = uplinks
    }

    public func listener(named name: String) -> Listener? {
        listeners.first { $0.name == name }
    }
}

/// One `[mothership.bind]` entry: a named listener that routes refer to.
public struct Listener: Sendable {
    public var name: String
    public var address: BindAddress
    public var proxyProtocol: Bool
    /// Addresses allowed to send a PROXY header (ours); empty means any.
    public var trustedProxies: [CIDRRange]
    public var tls: TLSFiles?

    public init(
        name: String, address: BindAddress, proxyProtocol: Bool = false, trustedProxies: [CIDRRange] = [],
        tls: TLSFiles? = nil
    ) {
        self.name = name
        self.address = address
        self.proxyProtocol = proxyProtocol
        self.trustedProxies = trustedProxies
        self.tls = tls
    }
}

/// PEM certificate chain and private key for a TLS listener (ours).
public struct TLSFiles: Sendable, Hashable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}

/// `[[mothership.static_dirs]]`.
public struct StaticDirectory: Sendable, Hashable {
    public var path: String
    /// URL prefix, always starting with `/`.
    public var prefix: String
    /// Limits the directory to one listener; nil serves on all.
    public var bind: String?

    public init(path: String, prefix: String, bind: String? = nil) {
        self.path = path
        self.prefix = prefix
        self.bind = bind
    }
}

/// `cors_cache = true` or `[mothership.cors_cache]`.
public struct CorsCacheSettings: Sendable, Hashable {
    public var defaultTTL: Duration
    public var maxEntries: Int

    public init(defaultTTL: Duration = .seconds(3600), maxEntries: Int = 10_000) {
        self.defaultTTL = defaultTTL
        self.maxEntries = maxEntries
    }
}

/// `[mothership.rate_limiting]`; an absent limit is unlimited.
public struct RateLimiting: Sendable, Hashable {
    public var globalRequestsPerSecond: Double?
    public var perIPRequestsPerMinute: Double?

    public init(globalRequestsPerSecond: Double? = nil, perIPRequestsPerMinute: Double? = nil) {
        self.globalRequestsPerSecond = globalRequestsPerSecond
        self.perIPRequestsPerMinute = perIPRequestsPerMinute
    }
}

/// `[mothership.flagship]` when `enabled = true`.
public struct FlagshipSettings: Sendable {
    public enum Election: Sendable {
        /// `static_flagship`: decided locally, no coordination.
        case fixed(StaticFlagship)
        /// PostgreSQL advisory lock; `url` is the raw text (may contain `$VAR`), expanded at run time.
        case postgres(url: String, viaUplink: String?)
    }

    public var election: Election
    public var prelaunchTimeout: Duration
    public var electionTimeout: Duration

    public init(
        election: Election, prelaunchTimeout: Duration = .seconds(300),
        electionTimeout: Duration = .seconds(30)
    ) {
        self.election = election
        self.prelaunchTimeout = prelaunchTimeout
        self.electionTimeout = electionTimeout
    }
}

/// How a static election decides.
public enum StaticFlagship: Sendable, Hashable {
    /// `"$MS_FLAGSHIP"`: flagship when the expanded text is `true`, `1` or `yes` (any case).
    case value(String)
    /// `{ command, equals }`: flagship when the command's trimmed output equals `equals`.
    case command(String, equals: String)

    /// The truthiness rule for `.value` after expansion.
    public static func isTruthy(_ text: String) -> Bool {
        ["true", "1", "yes"].contains(text.trimmingSpaces().lowercased())
    }
}

/// `[[mothership.uplinks]]`: an external dependency checked before launch.
public struct Uplink: Sendable {
    public var name: String
    /// The URL as written (may contain `$VAR`); expanded and parsed by `UplinkTarget` at check time.
    public var url: String
    public var timeout: Duration

    public init(name: String, url: String, timeout: Duration = .seconds(5)) {
        self.name = name
        self.url = url
        self.timeout = timeout
    }
}

/// `[[mothership.prelaunch]]`: a one-shot job that must succeed before any ship or bay starts.
public struct PrelaunchJob: Sendable {
    public var name: String
    public var command: String
    public var arguments: [String]
    public var environment: [String: String]
    public var dependsOn: [String]

    public init(
        name: String, command: String, arguments: [String] = [], environment: [String: String] = [:],
        dependsOn: [String] = []
    ) {
        self.name = name
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.dependsOn = dependsOn
    }
}

/// `[[modules]]`: a WebAssembly payload.
public struct Module: Sendable {
    public enum Phase: String, Sendable, Hashable {
        case request
        case response
    }

    public var name: String
    public var wasmPath: String
    /// Path patterns (anchored like route patterns) of the requests the module sees.
    public var routes: [RoutePattern]
    public var phase: Phase
    /// Passed to the module as strings (numbers and booleans in their TOML spelling).
    public var config: [String: String]
    public var tags: [String]
    /// Where the module is declared (`modules[0]`).
    public var manifestPath: FieldPath = .root

    public init(
        name: String, wasmPath: String, routes: [RoutePattern], phase: Phase = .request,
        config: [String: String] = [:],
        tags: [String] = []
    ) {
        self.name = name
        self.wasmPath = wasmPath
        self.routes = routes
        self.phase = phase
        self.config = config
        self.tags = tags
    }
}

/// `[mothership.logs]` (SPEC §12.5): each vessel's output in `dir/NAME.log`, mothership's own in
/// `dir/mothership.log`, rotated at `maxSize` bytes keeping `keep` older files.
public struct LogSettings: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable, CaseIterable {
        case text
        case json
    }

    /// Relative to the manifest's directory unless absolute.
    public var directory: String
    public var format: Format
    public var maxSize: Int
    public var keep: Int

    public init(directory: String, format: Format = .text, maxSize: Int = 100 * 1024 * 1024, keep: Int = 5) {
        self.directory = directory
        self.format = format
        self.maxSize = maxSize
        self.keep = keep
    }
}

/// `[mothership.dashboard]` (SPEC §12.6): the web dashboard served on the metrics listener. It is
/// read-only unless `actions` is on; then restart / stop / start / reload need `token`.
public struct DashboardSettings: Sendable, Hashable {
    /// `actions = true`: the page may restart, stop and start vessels and reload the manifest.
    public var actions: Bool
    /// `token = "$VAR"` after expansion; nil: the run generates one and logs it once.
    public var token: String?

    public init(actions: Bool = false, token: String? = nil) {
        self.actions = actions
        self.token = token
    }
}

/// Sizes as a manifest writes them: `"100MB"`, `"512KB"`, `"1GB"`, `"4096"` (bytes); K, M and G are
/// powers of 1024 (`MiB` and friends are accepted too).
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let digits = trimmed.prefix { $0 >= "0" && $0 <= "9" || $0 == "." }
        guard !digits.isEmpty, let value = Double(digits), value.isFinite, value >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingSpaces().lowercased()
        let factor: Double
        switch unit {
        case "", "b": factor = 1
        case "k", "kb", "kib": factor = 1024
        case "m", "mb", "mib": factor = 1024 * 1024
        case "g", "gb", "gib": factor = 1024 * 1024 * 1024
        default: return nil
        }
        let bytes = (value * factor).rounded()
        guard bytes < 1e15 else { return nil }
        return Int(bytes)
    }
}

/// Where the control socket of a run is (SPEC §12.1).
public enum ControlSocketSetting: Sendable, Hashable {
    /// `.mothership.sock` in the manifest's directory.
    case besideManifest
    /// A path, relative to the manifest's directory unless absolute.
    case path(String)
    /// `control_socket = false`: no control socket.
    case off
}
