import Logging
import PostgresNIO
import Supervision
import Synchronization

/// The PostgreSQL flagship's hold on the lock: it records and announces the outcome, then gives up
/// the lock and closes its connection.
final class PostgresFlagshipTicket: FlagshipTicket {
    let database: ElectionDatabase
    let description: String
    private let released = Mutex(false)

    init(database: ElectionDatabase, description: String) {
        self.database = database
        self.description = description
    }

    func prelaunchSucceeded() async throws {
        try await database.record(.ready)
    }

    func prelaunchFailed(_ reason: String) async {
        do {
            try await database.record(.aborted(reason: reason))
        } catch {
            database.logger.error("could not tell the escorts to abort: \(error)")
        }
    }

    func release() async {
        guard
            released.withLock({ done in
                defer { done = true }; return !done
            })
        else { return }
        try? await database.unlock()
        await database.close()
    }

    /// Dropped without `release()` (a launch that failed on the way): the connection still
    /// closes, which also gives the lock up. A connection left open leaked, and postgres-nio
    /// traps on one deallocated open.
    deinit {
        guard !released.withLock({ $0 }) else { return }
        let database = self.database
        Task { await database.close() }
    }
}

/// An escort of a PostgreSQL election: waits for the flagship's signal, or knows the outcome already.
final class PostgresEscortWatch: EscortWatch {
    /// Nil when the outcome was read during the election (the connection is closed then).
    let database: ElectionDatabase?
    let finished: FlagshipProgress?
    let identity: DeploymentIdentity
    let timeout: Duration
    let pollInterval: Duration
    let description: String
    private let released = Mutex(false)

    init(
        database: ElectionDatabase?, finished: FlagshipProgress?, identity: DeploymentIdentity,
        timeout: Duration,
        pollInterval: Duration, description: String
    ) {
        self.database = database
        self.finished = finished
        self.identity = identity
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.description = description
    }

    /// False only for a late escort whose flagship already signalled ready.
    var waitsForFlagship: Bool { finished != .ready }

    func awaitFlagship() async throws {
        guard let database else { return try conclude(finished ?? .running, flagship: .running) }
        let deadline = ContinuousClock.now + timeout
        let pollInterval = self.pollInterval
        let progress: FlagshipProgress? = try await database.connection.listen(
            on: database.identity.channel
        ) { notifications -> FlagshipProgress? in
            // Listening now: whatever the row says from here on cannot have been announced unheard.
            if let row = try await database.readRow(), row.isFinal { return row }
            return try await withThrowingTaskGroup(
                of: FlagshipProgress?.self, returning: FlagshipProgress?.self
            ) { group in
                group.addTask {
                    for try await notification in notifications {
                        guard
                            FlagshipProgress.announced(
                                by: notification.payload, for: database.identity.deployID)
                                != nil
                        else { continue }
                        if let row = try await database.readRow(), row.isFinal { return row }
                    }
                    try Task.checkCancellation()
                    throw FlagshipElectionError.database(
                        url: database.url, during: "listening for the flagship's signal",
                        error: "the connection closed")
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: pollInterval)
                        if let row = try await database.readRow(), row.isFinal { return row }
                    }
                }
                group.addTask {
                    try await Task.sleep(until: deadline)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
        }
        guard let progress else {
            try Task.checkCancellation()
            var sighting = FlagshipSighting.running
            do {
                let row = try await database.readRow()
                if let row, row.isFinal { return try conclude(row, flagship: .running) }
                let held = try await database.lockHeld()
                sighting = row == nil ? .neverStarted : (held ? .running : .gone)
            } catch {
                // The timeout stands; only its explanation is lost.
            }
            return try conclude(.running, flagship: sighting)
        }
        try conclude(progress, flagship: .running)
    }

    /// Returns on ready; throws on abort, or on `running` (the wait timed out).
    func conclude(_ progress: FlagshipProgress, flagship: FlagshipSighting) throws {
        let name = identity.name
        let deployID = identity.deployID
        switch progress {
        case .ready:
            return
        case .aborted(let reason):
            throw FlagshipElectionError.aborted(deployment: name, deployID: deployID, reason: reason)
        case .running:
            throw FlagshipElectionError.prelaunchTimedOut(
                deployment: name, deployID: deployID, timeout: timeout, flagship: flagship)
        }
    }

    func release() async {
        guard
            released.withLock({ done in
                defer { done = true }; return !done
            })
        else { return }
        await database?.close()
    }

    /// Dropped without `release()`: the connection still closes (see `PostgresFlagshipTicket`).
    deinit {
        guard !released.withLock({ $0 }), let database = self.database else { return }
        Task { await database.close() }
    }
}
