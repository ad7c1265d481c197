/// What the web dashboard (SPEC §12.6) shows and does, as the executable wires it: the fleet
/// document of `mothership status --json`, a vessel's output, and the control socket's commands.
/// Declared here so the relay learns about the fleet without importing Supervision.
public protocol WebConsole: Sendable {
    /// The fleet now: `json` is sent to the page; `fingerprint` is the same document without what
    /// changes by itself (uptimes), so a new event goes out only when something happened.
    func fleet() async -> (json: String, fingerprint: String)
    /// The last lines of a vessel's output as JSON, nil when there is no such vessel.
    func logTail(of vessel: String) async -> String?
    /// Carries out a command (restart / stop / start a vessel, reload): the HTTP status and JSON body.
    func perform(_ command: WebCommand) async -> (status: Int, body: String)
}

/// A command the page may send once actions are on.
public enum WebCommand: Sendable, Equatable {
    case restart(String)
    case stop(String)
    case start(String)
    case reload
}

/// How the dashboard behaves: `[mothership.dashboard]` after the run resolved the token.
public struct WebDashboardSettings: Sendable {
    /// Actions on: the action endpoints answer to `token`; off: every one answers 403.
    public var actions: Bool
    public var token: String
    /// How often the fleet is read while at least one page listens to `/events`.
    public var pollInterval: Duration
    /// A comment line on every stream this often, so proxies and browsers keep it open.
    public var heartbeat: Duration
    /// Streams beyond this many are answered 503.
    public var maximumStreams: Int

    public init(
        actions: Bool, token: String, pollInterval: Duration = .milliseconds(500),
        heartbeat: Duration = .seconds(15), maximumStreams: Int = 64
    ) {
        self.actions = actions
        self.token = token
        self.pollInterval = pollInterval
        self.heartbeat = heartbeat
        self.maximumStreams = maximumStreams
    }
}
