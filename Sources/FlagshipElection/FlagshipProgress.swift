/// What the status row (and the notifications) say about one release's prelaunch, and the pure
/// decisions of the PostgreSQL election built on it.
public enum FlagshipProgress: Sendable, Hashable {
    /// A flagship took the lock and is running prelaunch (or died doing so).
    case running
    /// Prelaunch succeeded: escorts launch.
    case ready
    /// Prelaunch failed or was stopped: escorts exit 1.
    case aborted(reason: String)

    /// The row's `state` and `detail` columns; nil for a state this version does not know.
    public init?(state: String, detail: String?) {
        switch state {
        case "running": self = .running
        case "ready": self = .ready
        case "abort": self = .aborted(reason: detail ?? "no reason recorded")
        default: return nil
        }
    }

    /// The `state` column.
    public var state: String {
        switch self {
        case .running: "running"
        case .ready: "ready"
        case .aborted: "abort"
        }
    }

    /// Whether the flagship is done (escorts need not wait).
    public var isFinal: Bool { self != .running }

    /// A notification payload: `ready <deploy id>` or `abort <deploy id>`. Escorts ignore payloads for
    /// another release of the same deployment; the reason of an abort is read from the row.
    public static func payload(_ state: String, deployID: String) -> String { "\(state) \(deployID)" }

    /// The state a notification announces for `deployID`, or nil when it is about another release.
    public static func announced(by payload: String, for deployID: String) -> String? {
        let parts = payload.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[1] == deployID, parts[0] == "ready" || parts[0] == "abort" else {
            return nil
        }
        return String(parts[0])
    }
}

/// The steps of a PostgreSQL election, decided from what the database said.
public enum ElectionStep: Sendable, Hashable {
    /// Try `pg_try_advisory_lock`.
    case tryLock
    /// Become the flagship; `takingOver` when an earlier flagship of this release left the row
    /// `running` without a signal (it died and the lock was freed).
    case flagship(takingOver: Bool)
    /// Escort of a flagship that already finished: launch or fail at once.
    case escortFinished(FlagshipProgress)
    /// Escort of a flagship in progress: wait for its signal.
    case escortWaiting
    /// The lock was taken, but the row shows a finished prelaunch: give the lock back, then escort.
    case unlockThenEscort(FlagshipProgress)

    /// After reading the row before the lock: a finished release needs no lock.
    public static func afterFirstRead(_ row: FlagshipProgress?) -> ElectionStep {
        if let row, row.isFinal { return .escortFinished(row) }
        return .tryLock
    }

    /// After `pg_try_advisory_lock` and (when it was acquired) a second read of the row, which closes
    /// the race with a flagship that finished between the first read and the lock.
    public static func afterLock(acquired: Bool, rowNow: FlagshipProgress?) -> ElectionStep {
        guard acquired else { return .escortWaiting }
        if let rowNow, rowNow.isFinal { return .unlockThenEscort(rowNow) }
        return .flagship(takingOver: rowNow == .running)
    }
}
