import Supervision
import Synchronization

/// Docks bays when the test says so, and lets it lose their links.
public final class FakeBayDocking: BayDocking, Sendable {
    public struct Request: Sendable {
        public var bay: String
        public var socketPath: String
        public var config: [String: String]
        public var timeout: Duration
    }

    private struct State {
        var prepared: [String] = []
        var requests: [Request] = []
        var waiting: [String: CheckedContinuation<Result<FakeBayLink, DockingFailure>, Never>] = [:]
        var links: [String: [FakeBayLink]] = [:]
    }
    private let state = Mutex(State())
    public let journal: Journal

    public init(journal: Journal = Journal()) { self.journal = journal }

    public func prepare(bay: String, socketPath: String) {
        state.withLock { $0.prepared.append(socketPath) }
    }

    public func dock(bay: String, socketPath: String, config: [String: String], timeout: Duration)
        async throws(DockingFailure) -> any BayLink
    {
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock {
                    $0.requests.append(
                        Request(bay: bay, socketPath: socketPath, config: config, timeout: timeout))
                    $0.waiting[bay] = continuation
                }
            }
        } onCancel: {
            state.withLock { $0.waiting.removeValue(forKey: bay) }?.resume(
                returning: .failure(DockingFailure("cancelled")))
        }
        return try result.get()
    }

    /// Whether `bay` is waiting to dock.
    public func isWaiting(_ bay: String) -> Bool { state.withLock { $0.waiting[bay] != nil } }

    /// Docks the waiting `bay`.
    public func moor(_ bay: String) {
        let link = FakeBayLink(bay: bay, journal: journal)
        let waiter = state.withLock { state in
            state.links[bay, default: []].append(link)
            return state.waiting.removeValue(forKey: bay)
        }
        journal.record("moored \(bay)")
        waiter?.resume(returning: .success(link))
    }

    public var prepared: [String] { state.withLock { $0.prepared } }
    public var requests: [Request] { state.withLock { $0.requests } }
    public func links(_ bay: String) -> [FakeBayLink] { state.withLock { $0.links[bay] ?? [] } }
}

public final class FakeBayLink: BayLink, Sendable {
    public let bay: String
    private let journal: Journal
    private struct State {
        var lostReason: String?
        var waiters: [CheckedContinuation<String, Never>] = []
        var closed = false
        var retired = false
        var passengers = 0
        var holdsRetirement = false
        var retirement: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    init(bay: String, journal: Journal) {
        self.bay = bay
        self.journal = journal
    }

    public func lost() async -> String {
        await withCheckedContinuation { continuation in
            let reason: String? = state.withLock { state in
                if let reason = state.lostReason { return reason }
                state.waiters.append(continuation)
                return nil
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }

    /// The bay's side goes away (EOF, a protocol violation).
    public func lose(_ reason: String) {
        let waiters = state.withLock { state in
            state.lostReason = reason
            defer { state.waiters = [] }
            return state.waiters
        }
        journal.record("lost \(bay)")
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    public func close() {
        state.withLock { $0.closed = true }
        journal.record("closed link \(bay)")
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// The clients the link carries (the test sets how many).
    public func setPassengers(_ count: Int) { state.withLock { $0.passengers = count } }

    public func passengers() async -> Int { state.withLock { $0.passengers } }

    public func retire() async {
        state.withLock {
            $0.retired = true
            $0.closed = true
        }
        journal.record("retired link \(bay)")
        await withCheckedContinuation { continuation in
            let held = state.withLock { state in
                guard state.holdsRetirement else { return false }
                state.retirement = continuation
                return true
            }
            if !held { continuation.resume() }
        }
    }

    /// Later retirements do not return until `releaseRetirement()` (the relay still closing the
    /// link's clients).
    public func holdRetirement() { state.withLock { $0.holdsRetirement = true } }

    public func releaseRetirement() {
        let waiter = state.withLock { state in
            state.holdsRetirement = false
            defer { state.retirement = nil }
            return state.retirement
        }
        waiter?.resume()
    }

    public var isRetired: Bool { state.withLock { $0.retired } }
}
