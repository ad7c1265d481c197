import ShipManifest

/// Why an election, or an escort's wait, failed. Each description names the deployment or the
/// database (password redacted) and what to do.
public enum FlagshipElectionError: Error, Sendable, CustomStringConvertible {
    /// The circuit breaker opened: the database could not be reached.
    case unreachable(url: String, attempts: Int, lastError: String)
    /// Connected, but the election (table, lock) did not finish within `election_timeout`.
    case electionTimedOut(url: String, timeout: Duration)
    /// A query failed.
    case database(url: String, during: String, error: String)
    /// The flagship signalled abort.
    case aborted(deployment: String, deployID: String, reason: String)
    /// No signal within `prelaunch_timeout`; `flagshipGone` when the flagship's lock was free at the end.
    case prelaunchTimedOut(deployment: String, deployID: String, timeout: Duration, flagshipGone: Bool)
    /// `static_flagship = { command, equals }` could not run its command.
    case staticCommand(command: String, error: String)
    /// The URL (from `election_url` or the uplink) is not usable.
    case invalidURL(String)

    public var description: String {
        switch self {
        case .unreachable(let url, let attempts, let lastError):
            "cannot reach the election database \(url) (\(attempts) attempt\(attempts == 1 ? "" : "s")): \(lastError); check [mothership.flagship] election_url / election_uplink and that PostgreSQL is up"
        case .electionTimedOut(let url, let timeout):
            "the election on \(url) did not finish within election_timeout (\(DurationText.format(timeout)))"
        case .database(let url, let during, let error):
            "election database \(url): \(during) failed: \(error)"
        case .aborted(let deployment, let deployID, let reason):
            "the flagship of deployment '\(deployment)' aborted prelaunch (deploy id \(Self.short(deployID))): \(reason); not launching. To retry this release, start every instance with a new MS_DEPLOY_ID"
        case .prelaunchTimedOut(let deployment, let deployID, let timeout, let flagshipGone):
            "no signal from the flagship of deployment '\(deployment)' (deploy id \(Self.short(deployID))) within prelaunch_timeout (\(DurationText.format(timeout)))"
                + (flagshipGone
                    ? ": its lock was released without a signal, so it likely died during prelaunch. Not taking over (its prelaunch may be half done); restart the deployment to elect a new flagship"
                    : ": it is still running prelaunch; raise prelaunch_timeout if prelaunch takes longer")
        case .staticCommand(let command, let error):
            "static_flagship command '\(command)' could not run: \(error)"
        case .invalidURL(let text):
            "flagship election_url: \(text)"
        }
    }

    static func short(_ deployID: String) -> String {
        deployID.count > 12 ? String(deployID.prefix(12)) : deployID
    }
}
