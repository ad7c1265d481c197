import FlagshipElection
import Foundation
import Logging
import MothershipTestSupport
import Supervision
import Testing

/// The PostgreSQL election against a real server (`PostgresCluster`), several electors in one process.
@Suite("PostgreSQL flagship election", .timeLimit(.minutes(2)))
struct PostgresElectionTests {
    static func election(
        _ deployment: String, deployID: String = "v1", prelaunchTimeout: Duration = .seconds(20),
        url: String? = nil
    ) async throws -> PostgresElection {
        var text = url ?? ""
        // No TLS in process: the test server has none, and building a TLS context per connection
        // (the trust store is parsed each time) would load the cooperative pool other suites time on.
        if url == nil {
            let base = try await PostgresCluster.shared().url
            text = base + (base.contains("?") ? "&" : "?") + "sslmode=disable"
        }
        var election = PostgresElection(
            url: try PostgresURL(parsing: text),
            identity: DeploymentIdentity(name: deployment, deployID: deployID),
            electionTimeout: .seconds(15), prelaunchTimeout: prelaunchTimeout, logger: .quiet)
        election.pollInterval = .milliseconds(200)
        return election
    }

    static func unique(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8))" }

    struct Roles {
        var tickets: [any FlagshipTicket] = []
        var watches: [any EscortWatch] = []
    }

    static func elect(_ elections: [PostgresElection]) async throws -> Roles {
        var roles = Roles()
        do {
            try await withThrowingTaskGroup(of: FlagshipRole.self) { group in
                for election in elections { group.addTask { try await election.elect() } }
                for try await role in group {
                    switch role {
                    case .flagship(let ticket): roles.tickets.append(ticket)
                    case .escort(let watch): roles.watches.append(watch)
                    }
                }
            }
        } catch {
            // One election failed: the others' connections are given back before the error.
            for ticket in roles.tickets { await ticket.release() }
            for watch in roles.watches { await watch.release() }
            throw error
        }
        return roles
    }

    @Test func oneOfThreeIsFlagshipAndTheEscortsLaunchOnReady() async throws {
        let name = Self.unique("three")
        let elections = [
            try await Self.election(name), try await Self.election(name), try await Self.election(name),
        ]
        let roles = try await Self.elect(elections)
        #expect(roles.tickets.count == 1)
        #expect(roles.watches.count == 2)
        #expect(roles.watches.allSatisfy { $0.waitsForFlagship })
        let waits = roles.watches.map { watch in Task { try await watch.awaitFlagship() } }
        try await roles.tickets[0].prelaunchSucceeded()
        await roles.tickets[0].release()
        for wait in waits { try await wait.value }
        for watch in roles.watches { await watch.release() }
    }

    @Test func anAbortReachesTheEscortsWithItsReason() async throws {
        let name = Self.unique("abort")
        let roles = try await Self.elect([try await Self.election(name), try await Self.election(name)])
        let ticket = try #require(roles.tickets.first)
        let watch = try #require(roles.watches.first)
        let wait = Task { try await watch.awaitFlagship() }
        await ticket.prelaunchFailed("prelaunch job 'migrate' exited with status 3")
        await ticket.release()
        do {
            try await wait.value
            Issue.record("the escort launched after an abort")
        } catch {
            #expect("\(error)".contains("aborted prelaunch"))
            #expect("\(error)".contains("prelaunch job 'migrate' exited with status 3"))
        }
        await watch.release()
    }

    @Test func aLateEscortReadsTheRecordedOutcomeAndNeverTakesTheLock() async throws {
        let name = Self.unique("late")
        guard case .flagship(let ticket) = try await Self.election(name).elect() else {
            Issue.record("the only instance was not elected")
            return
        }
        try await ticket.prelaunchSucceeded()
        await ticket.release()
        // The lock is free now, but this release is done: a newcomer is an escort that launches at once.
        guard case .escort(let watch) = try await Self.election(name, prelaunchTimeout: .seconds(1)).elect()
        else {
            Issue.record("a late instance became a second flagship")
            return
        }
        try await watch.awaitFlagship()
        await watch.release()
        // A new release of the same deployment elects again.
        guard case .flagship(let next) = try await Self.election(name, deployID: "v2").elect() else {
            Issue.record("a new deploy id did not elect a flagship")
            return
        }
        await next.release()
    }

    /// A ticket dropped without `release()` (a launch that failed on the way) closes its
    /// connection by itself: no trap in postgres-nio (a debug build's assertion took the whole test
    /// process down in CI), no leaked connection, and the lock is given up.
    @Test func aTicketDroppedWithoutReleaseClosesItsConnectionAndGivesTheLockUp() async throws {
        let name = Self.unique("dropped")
        do {
            guard case .flagship = try await Self.election(name).elect() else {
                Issue.record("a lone election did not elect a flagship")
                return
            }
        }
        // Its connection closes soon after, and with it the lock: the next instance of the release
        // takes it (the first never signalled ready). While the lock is held it is an escort.
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            switch try await Self.election(name, prelaunchTimeout: .seconds(1)).elect() {
            case .flagship(let ticket):
                await ticket.release()
                return
            case .escort(let watch):
                await watch.release()
                guard ContinuousClock.now < deadline else {
                    Issue.record("the dropped ticket's lock was still held after 30 s")
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test func escortsTimeOutWhenTheFlagshipVanishesAndDoNotTakeOver() async throws {
        let name = Self.unique("vanish")
        let roles = try await Self.elect([
            try await Self.election(name, prelaunchTimeout: .seconds(1)),
            try await Self.election(name, prelaunchTimeout: .seconds(1)),
        ])
        let ticket = try #require(roles.tickets.first)
        let watch = try #require(roles.watches.first)
        await ticket.release()  // as if the flagship died: lock gone, no signal
        do {
            try await watch.awaitFlagship()
            Issue.record("the escort launched without a signal")
        } catch {
            #expect("\(error)".contains("within prelaunch_timeout (1s)"))
            #expect("\(error)".contains("likely died during prelaunch"))
        }
        await watch.release()
    }

    @Test func anEscortOfAReleaseWhoseLockIsHeldByAnotherReleaseSaysSoWhenItTimesOut() async throws {
        let name = Self.unique("overlap")
        guard case .flagship(let older) = try await Self.election(name, deployID: "v1").elect() else {
            Issue.record("the first instance was not elected")
            return
        }
        guard
            case .escort(let watch) = try await Self.election(
                name, deployID: "v2", prelaunchTimeout: .seconds(1)
            )
            .elect()
        else {
            Issue.record("two releases ran prelaunch at once")
            return
        }
        try await older.prelaunchSucceeded()
        await older.release()
        do {
            try await watch.awaitFlagship()
            Issue.record("the escort launched on another release's signal")
        } catch {
            #expect("\(error)".contains("no flagship of this deploy id ever started"), "\(error)")
        }
        await watch.release()
    }

    @Test func anUnreachableDatabaseEndsInAClearErrorWithThePasswordRedacted() async throws {
        let port = ProcessInspector.freePort()
        var election = try await Self.election(
            Self.unique("down"), url: "postgres://app:hunter2@127.0.0.1:\(port)/shop")
        election.electionTimeout = .seconds(5)
        do {
            _ = try await election.elect()
            Issue.record("elected without a database")
        } catch {
            let text = "\(error)"
            #expect(
                text.contains("cannot reach the election database postgres://app:***@127.0.0.1:\(port)/shop"))
            #expect(!text.contains("hunter2"))
        }
    }
}
