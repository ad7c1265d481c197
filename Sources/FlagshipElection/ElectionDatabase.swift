import Logging
import PostgresNIO

/// One dedicated connection to the election database and the few statements an election needs. A
/// session advisory lock lives as long as this connection: if mothership dies, the server drops the
/// connection and with it the lock.
struct ElectionDatabase: Sendable {
    let connection: PostgresConnection
    let identity: DeploymentIdentity
    /// Redacted, for messages.
    let url: String
    let logger: Logger

    static let createTable: PostgresQuery = """
        CREATE TABLE IF NOT EXISTS mothership_flagship (
            deployment text NOT NULL,
            deploy_id text NOT NULL,
            state text NOT NULL,
            detail text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (deployment, deploy_id)
        )
        """

    /// Serializes `CREATE TABLE IF NOT EXISTS` between instances (run together, it can fail on the
    /// catalog's unique index); a transaction-scoped lock on a key of its own.
    static let tableLockKey = Int64(bitPattern: 0x6d6f_7468_6572_7368)  // "mothersh"

    /// Creates the status table when it is missing.
    func prepareTable() async throws {
        try await step("creating the mothership_flagship table") {
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(\(Self.tableLockKey))", logger: logger)
                try await connection.query(Self.createTable, logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// This release's row, if any.
    func readRow() async throws -> FlagshipProgress? {
        try await step("reading the flagship status") {
            let rows = try await connection.query(
                """
                SELECT state, detail FROM mothership_flagship
                WHERE deployment = \(identity.name) AND deploy_id = \(identity.deployID)
                """, logger: logger)
            for try await (state, detail) in rows.decode((String, String?).self) {
                return FlagshipProgress(state: state, detail: detail)
            }
            return nil
        }
    }

    /// `pg_try_advisory_lock`: true when this connection now holds the deployment's lock.
    func tryLock() async throws -> Bool {
        try await step("taking the flagship lock") {
            let rows = try await connection.query(
                "SELECT pg_try_advisory_lock(\(identity.lockKey))", logger: logger)
            for try await acquired in rows.decode(Bool.self) { return acquired }
            return false
        }
    }

    func unlock() async throws {
        try await step("releasing the flagship lock") {
            try await connection.query("SELECT pg_advisory_unlock(\(identity.lockKey))", logger: logger)
        }
    }

    /// Whether any session holds the deployment's lock (a read of `pg_locks`; takes nothing).
    func lockHeld() async throws -> Bool {
        let key = UInt64(bitPattern: identity.lockKey)
        let high = Int64(key >> 32)
        let low = Int64(key & 0xFFFF_FFFF)
        return try await step("looking for the flagship's lock") {
            let rows = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                    AND objsubid = 1 AND classid::bigint = \(high) AND objid::bigint = \(low))
                """, logger: logger)
            for try await held in rows.decode(Bool.self) { return held }
            return false
        }
    }

    /// Records `progress` in the row and, when it is final, notifies the escorts in the same
    /// transaction (a notification is delivered on commit, together with the row it announces).
    func record(_ progress: FlagshipProgress) async throws {
        var detail: String?
        if case .aborted(let reason) = progress { detail = reason }
        try await step("recording '\(progress.state)' in mothership_flagship") {
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query(
                    """
                    INSERT INTO mothership_flagship (deployment, deploy_id, state, detail, updated_at)
                    VALUES (\(identity.name), \(identity.deployID), \(progress.state), \(detail), now())
                    ON CONFLICT (deployment, deploy_id)
                    DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail, updated_at = now()
                    """, logger: logger)
                if progress.isFinal {
                    let payload = FlagshipProgress.payload(progress.state, deployID: identity.deployID)
                    try await connection.query(
                        "SELECT pg_notify(\(identity.channel), \(payload))", logger: logger)
                }
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    func close() async {
        try? await connection.close()
    }

    /// Runs a statement group, turning a failure into an error that names the database and the step.
    @discardableResult
    func step<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as CancellationError {
            throw error
        } catch {
            throw FlagshipElectionError.database(url: url, during: what, error: Self.describe(error))
        }
    }

    /// PSQLError's own description hides everything; this shows the server's message or the cause.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
        }
        if let underlying = error.underlying { return "\(underlying)" }
        return "\(error.code)"
    }
}
