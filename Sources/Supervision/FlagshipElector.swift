// The flagship election (SPEC §8), declared here and implemented by `FlagshipElection` (static and
// PostgreSQL elections). Among several mothership instances of one deployment, the flagship runs the
// prelaunch jobs and then tells the escorts how they went; escorts skip prelaunch.

/// Takes part in the election of one deployment's flagship.
public protocol FlagshipElector: Sendable {
    /// Decides this instance's role. Throws an error whose description speaks to the operator (the
    /// database cannot be reached, the election timed out). Ends promptly when the task is cancelled
    /// (a shutdown during the election).
    func elect() async throws -> FlagshipRole
}

/// The outcome of an election.
public enum FlagshipRole: Sendable {
    /// This instance runs prelaunch and reports the outcome through the ticket.
    case flagship(any FlagshipTicket)
    /// Another instance runs (or ran) prelaunch; the watch tells when this one may launch.
    case escort(any EscortWatch)
}

/// Held by the flagship for the whole prelaunch.
public protocol FlagshipTicket: Sendable, CustomStringConvertible {
    /// Tells the escorts that prelaunch succeeded: they launch. Throws when the signal cannot be sent.
    func prelaunchSucceeded() async throws
    /// Tells the escorts that prelaunch failed (or was stopped): they exit 1. Best effort.
    func prelaunchFailed(_ reason: String) async
    /// Gives up the flagship's lock and connection. Called on every path; harmless twice.
    func release() async
    /// Whether escorts wait for this flagship's signal (false for a static election: nobody waits).
    var signalsEscorts: Bool { get }
}

extension FlagshipTicket {
    public var signalsEscorts: Bool { true }
}

/// Held by an escort until it may launch.
public protocol EscortWatch: Sendable, CustomStringConvertible {
    /// Whether the escort must wait for (or check) the flagship's outcome; false when it may launch
    /// at once (a static election, or a flagship known to have signalled ready).
    var waitsForFlagship: Bool { get }
    /// Returns when the flagship signalled ready (at once for a static escort); throws an error that
    /// speaks to the operator on abort or when the prelaunch timeout passes. Ends when cancelled.
    func awaitFlagship() async throws
    /// Closes whatever the watch holds. Called on every path; harmless twice.
    func release() async
}
