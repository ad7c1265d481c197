import Logging
import NIOSSL
import PostgresNIO
import ShipManifest
import Supervision

/// `election = "postgres"`: the first instance to take the deployment's session advisory lock is the
/// flagship; it holds the lock (on a dedicated connection) for its whole prelaunch, records the
/// outcome in `mothership_flagship` and announces it with NOTIFY. Escorts LISTEN, then read the row
/// (so a signal sent before they arrived is not missed), then wait up to `prelaunch_timeout`.
public struct PostgresElection: FlagshipElector {
    public var url: PostgresURL
    public var identity: DeploymentIdentity
    public var electionTimeout: Duration
    public var prelaunchTimeout: Duration
    public var breaker = ConnectionBreaker()
    /// How often a waiting escort re-reads the row (a safety net under the notifications).
    public var pollInterval: Duration = .seconds(1)
    public var logger: Logger

    public init(
        url: PostgresURL, identity: DeploymentIdentity, electionTimeout: Duration, prelaunchTimeout: Duration,
        logger: Logger
    ) {
        self.url = url
        self.identity = identity
        self.electionTimeout = electionTimeout
        self.prelaunchTimeout = prelaunchTimeout
        self.logger = logger
    }

    var label: String {
        "deployment '\(identity.name)' (deploy id \(identity.shortDeployID), postgres election on \(url))"
    }

    public func elect() async throws -> FlagshipRole {
        let deadline = ContinuousClock.now + electionTimeout
        let connection = try await connect(until: deadline)
        let database = ElectionDatabase(
            connection: connection, identity: identity, url: url.description, logger: logger)
        do {
            return try await withThrowingTaskGroup(of: FlagshipRole?.self) { group in
                group.addTask { try await self.decide(database) }
                group.addTask {
                    try await Task.sleep(until: deadline)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let first else {
                    throw FlagshipElectionError.electionTimedOut(
                        url: url.description, timeout: electionTimeout)
                }
                return first
            }
        } catch {
            // Closing the connection also frees the lock, should the timeout have struck after it was taken.
            await database.close()
            throw error
        }
    }

    /// The election proper, on a connected database (see `ElectionStep`).
    func decide(_ database: ElectionDatabase) async throws -> FlagshipRole {
        try await database.prepareTable()
        let first = try await database.readRow()
        if case .escortFinished(let progress) = ElectionStep.afterFirstRead(first) {
            await database.close()
            return .escort(finishedEscort(progress))
        }
        let acquired = try await database.tryLock()
        let now = acquired ? try await database.readRow() : first
        switch ElectionStep.afterLock(acquired: acquired, rowNow: now) {
        case .flagship(let takingOver):
            if takingOver {
                logger.warning(
                    "an earlier flagship of \(label) left its prelaunch unfinished and released the lock (it died); this instance takes over"
                )
            }
            try await database.record(.running)
            return .flagship(PostgresFlagshipTicket(database: database, description: label))
        case .unlockThenEscort(let progress), .escortFinished(let progress):
            try? await database.unlock()
            await database.close()
            return .escort(finishedEscort(progress))
        case .escortWaiting, .tryLock:
            return .escort(
                PostgresEscortWatch(
                    database: database, finished: nil, identity: identity, timeout: prelaunchTimeout,
                    pollInterval: pollInterval,
                    description: label))
        }
    }

    func finishedEscort(_ progress: FlagshipProgress) -> PostgresEscortWatch {
        PostgresEscortWatch(
            database: nil, finished: progress, identity: identity, timeout: prelaunchTimeout,
            pollInterval: pollInterval,
            description: label + ": the flagship already finished")
    }

    /// Connects through the circuit breaker: retries with growing delays while the server cannot be
    /// reached, gives up when the breaker opens or the election's deadline nears. A server that
    /// answers with an error (bad password, no such database) is not retried.
    func connect(until deadline: ContinuousClock.Instant) async throws -> PostgresConnection {
        var breaker = self.breaker
        var attempt = 0
        let tls = try tls()
        while true {
            attempt += 1
            let remaining = ContinuousClock.now.duration(to: deadline)
            var configuration = PostgresConnection.Configuration(
                host: url.host, port: url.port, username: url.user, password: url.password,
                database: url.database, tls: tls)
            let (seconds, attoseconds) = min(remaining, .seconds(10)).components
            configuration.options.connectTimeout = .milliseconds(
                max(100, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
            do {
                return try await PostgresConnection.connect(
                    configuration: configuration, id: attempt, logger: logger)
            } catch {
                try Task.checkCancellation()
                let text = ElectionDatabase.describe(error)
                if let psql = error as? PSQLError, psql.serverInfo != nil {
                    throw FlagshipElectionError.database(
                        url: url.description, during: "connecting", error: text)
                }
                switch breaker.recordFailure(remaining: ContinuousClock.now.duration(to: deadline)) {
                case .retry(let delay):
                    logger.warning(
                        "election database \(url): connection attempt \(attempt) failed: \(text); retrying in \(DurationText.format(delay))"
                    )
                    try await Task.sleep(for: delay)
                case .open(let attempts):
                    throw FlagshipElectionError.unreachable(
                        url: url.description, attempts: attempts, lastError: text)
                }
            }
        }
    }

    func tls() throws -> PostgresConnection.Configuration.TLS {
        guard url.tls != .disable else { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if url.tls != .verify { configuration.certificateVerification = .none }
        do {
            let context = try NIOSSLContext(configuration: configuration)
            return url.tls == .prefer ? .prefer(context) : .require(context)
        } catch {
            throw FlagshipElectionError.invalidURL("cannot set up TLS for \(url): \(error)")
        }
    }
}
