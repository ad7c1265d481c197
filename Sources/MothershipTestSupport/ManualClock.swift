import Synchronization

/// A clock that moves only when a test says so. Sleepers wake when `advance` passes their deadline;
/// `runUntil` moves time from one deadline to the next until a condition holds, so tests of timed
/// behaviour never sleep for real.
public final class ManualClock: Clock, Sendable {
    public struct Instant: InstantProtocol, CustomStringConvertible {
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }
        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
        public var description: String { "t+\(offset)" }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { state in
                    if deadline <= state.now { return true }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward, waking every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let due: [Sleeper] = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for key in due.keys { state.sleepers.removeValue(forKey: key) }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Advances to the earliest sleeper's deadline; false when nobody sleeps.
    @discardableResult
    public func advanceToNextDeadline() -> Bool {
        let next: Instant? = state.withLock { state in state.sleepers.values.map(\.deadline).min() }
        guard let next else { return false }
        advance(by: now.duration(to: next))
        return true
    }

    /// Lets other tasks run, then moves time deadline by deadline until `condition` holds or
    /// `limit` of clock time has passed. Returns whether the condition was met.
    public func runUntil(
        limit: Duration = .seconds(600), _ condition: @Sendable () async -> Bool
    ) async -> Bool {
        let start = now
        var idleRounds = 0
        while start.duration(to: now) <= limit {
            for _ in 0..<20 { await Task.yield() }
            if await condition() { return true }
            if sleeperCount > 0 {
                idleRounds = 0
                // Give tasks that are about to sleep a moment to register, so time moves in order:
                // yields for this executor, and a little real time for the cooperative pool's other
                // threads (under load, an actor may still be on its way to `sleep`).
                for _ in 0..<20 { await Task.yield() }
                try? await Task.sleep(for: .milliseconds(2))
                if await condition() { return true }
                advanceToNextDeadline()
            } else {
                idleRounds += 1
                if idleRounds > 2000 { return await condition() }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        return await condition()
    }
}
