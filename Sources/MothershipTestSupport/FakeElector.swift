import Supervision

/// An election decided by the test; what the supervisor tells the ticket or the watch is journaled.
public struct FakeElector: FlagshipElector {
    public enum Plan: Sendable {
        case flagship
        /// An escort that waits (until `release` of the gate, then `outcome`) or launches at once.
        case escort(waits: Bool, outcome: String?)
        case fails(String)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let plan: Plan
    public let journal: Journal
    /// Opened by the test to end an escort's wait.
    public let gate = Locked(false)

    public init(_ plan: Plan, journal: Journal = Journal()) {
        self.plan = plan
        self.journal = journal
    }

    public func elect() async throws -> FlagshipRole {
        journal.record("elect")
        switch plan {
        case .flagship: return .flagship(Ticket(journal: journal))
        case .escort(let waits, let outcome):
            return .escort(Watch(journal: journal, waitsForFlagship: waits, outcome: outcome, gate: gate))
        case .fails(let message): throw Failure(description: message)
        }
    }

    struct Ticket: FlagshipTicket {
        let journal: Journal
        var description: String { "fake deployment" }
        func prelaunchSucceeded() async throws { journal.record("signal ready") }
        func prelaunchFailed(_ reason: String) async { journal.record("signal abort: \(reason)") }
        func release() async { journal.record("release lock") }
    }

    struct Watch: EscortWatch {
        let journal: Journal
        let waitsForFlagship: Bool
        /// Nil: ready; else the abort message.
        let outcome: String?
        let gate: Locked<Bool>
        var description: String { "fake deployment" }

        func awaitFlagship() async throws {
            journal.record("await flagship")
            while !gate.value { try await Task.sleep(for: .milliseconds(5)) }
            if let outcome { throw Failure(description: outcome) }
        }

        func release() async { journal.record("release watch") }
    }
}
