import ShipManifest

/// Docks bays (SPEC §6): the relay holds the link to each bay and terminates its clients'
/// WebSockets; the supervisor only needs to know when a bay has docked and when its link is lost.
/// Implemented in the executable over the relay's berths.
public protocol BayDocking: Sendable {
    /// Before a bay's process starts: removes what an earlier process may have left at the socket
    /// path (the new one must be able to bind it).
    func prepare(bay: String, socketPath: String)

    /// Connects to the bay's socket, retrying until `timeout` (the bay binds it when it is ready),
    /// waits for Dock and answers Moored with `config`. Returns the link once moored. Gives up when
    /// the task is cancelled (the bay exited first).
    func dock(bay: String, socketPath: String, config: [String: String], timeout: Duration)
        async throws(DockingFailure) -> any BayLink
}

/// A docked bay's link.
public protocol BayLink: Sendable {
    /// Suspends until the link is lost (the bay closed its socket, or broke the protocol); returns why.
    /// Returns at once when already lost.
    func lost() async -> String
    /// Ends the link from mothership's side (the bay's process is gone or being stopped); its clients
    /// are closed with 1011.
    func close()
    /// How many WebSocket clients the link carries now (a replaced bay drains until none is left).
    func passengers() async -> Int
    /// Ends a replaced bay's link: its remaining clients are closed with 1001 (going away; they
    /// may reconnect, to the bay that replaced it). Returns once they have left the link, before
    /// the process may be stopped: a process stopped sooner could end the link first, and its
    /// clients would be closed as if the bay had failed.
    func retire() async
}

/// Why a bay did not dock.
public struct DockingFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}
