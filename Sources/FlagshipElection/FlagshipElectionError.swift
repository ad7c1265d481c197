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
    /// No signal within `prelaunch_timeout`, and what the escort saw of the flagship at the end.
    case prelaunchTimedOut(
        deployment: String, deployID: String, timeout: Duration, flagship: FlagshipSighting)
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
        case .prelaunchTimedOut(let deployment, let deployID, let timeout, let flagship):
            "no signal from the flagship of deployment '\(deployment)' (deploy id \(Self.short(deployID))) within prelaunch_timeout (\(DurationText.format(timeout)))"
                + flagship.explanation
        case .staticCommand(let command, let error):
            "static_flagship command '\(command)' could not run: \(error)"
        case .invalidURL(let text):
            "[mothership.flagship] \(text)"
        }
    }

    static func short(_ deployID: String) -> String {
        deployID.count > 12 ? String(deployID.prefix(12)) : deployID
    }
}

/// What a waiting escort saw of its flagship when its wait timed out.
public enum FlagshipSighting: Sendable, Hashable {
    /// The lock is held and this release's row says `running`.
    case running
    /// The row says `running` but nobody holds the lock: the flagship died mid-prelaunch.
    case gone
    /// This release has no row: the lock was held by an instance of another release.
    case neverStarted

    var explanation: String {
        switch self {
        case .running:
            ": it is still running prelaunch; raise prelaunch_timeout if prelaunch takes longer"
        case .gone:
            ": its lock was released without a signal, so it likely died during prelaunch. Not taking over (its prelaunch may be half done); restart the deployment to elect a new flagship"
        case .neverStarted:
            ": no flagship of this deploy id ever started; the lock was held by an instance of another release (another MS_DEPLOY_ID or manifest) of this deployment. Restart once it has finished"
        }
    }
}
