import Supervision

/// Everything one frame shows besides the logs: the fleet's snapshot plus what Supervision does not
/// know (binds, request rate, modules), gathered by the executable, which sees every target.
public struct DashboardSnapshot: Sendable, Hashable {
    public var fleet: FleetStatus
    /// `[mothership] name`.
    public var title: String
    /// `name address` of each listener.
    public var binds: [String]
    /// Requests the relay has answered in all, if it runs; the dashboard turns it into a rate.
    public var requestsTotal: UInt64?
    /// Requests per second over the last second or so (set by the dashboard from `requestsTotal`).
    public var requestRate: Double?
    public var modules: [ModuleRow]
    /// False while payload counters are not collected (every counter shows as 0).
    public var moduleCountersLive: Bool

    public init(
        fleet: FleetStatus, title: String = "mothership", binds: [String] = [], requestsTotal: UInt64? = nil,
        requestRate: Double? = nil, modules: [ModuleRow] = [], moduleCountersLive: Bool = false
    ) {
        self.fleet = fleet
        self.title = title
        self.binds = binds
        self.requestsTotal = requestsTotal
        self.requestRate = requestRate
        self.modules = modules
        self.moduleCountersLive = moduleCountersLive
    }
}

/// One `[[modules]]` entry as the Modules tab shows it.
public struct ModuleRow: Sendable, Hashable {
    public var name: String
    /// `request` or `response`.
    public var phase: String
    public var routes: [String]
    public var invocations: UInt64
    public var blocks: UInt64
    public var errors: UInt64

    public init(
        name: String, phase: String, routes: [String], invocations: UInt64 = 0, blocks: UInt64 = 0,
        errors: UInt64 = 0
    ) {
        self.name = name
        self.phase = phase
        self.routes = routes
        self.invocations = invocations
        self.blocks = blocks
        self.errors = errors
    }
}

/// The selected log as the Logs tab needs it: the retained lines and how many were ever appended.
public struct LogExcerpt: Sendable, Hashable {
    public var lines: [OutputLine]
    public var total: Int

    public init(lines: [OutputLine], total: Int) {
        self.lines = lines
        self.total = total
    }

    public static let empty = LogExcerpt(lines: [], total: 0)
}
