import Synchronization

/// The result of whichever operation finishes first with a value (nil when none does). The losers are
/// cancelled but not awaited, so an operation that ignores cancellation (waiting for a process to
/// exit) cannot hold the caller up.
func firstOf<T: Sendable>(_ operations: [@Sendable () async -> T?]) async -> T? {
    guard !operations.isEmpty else { return nil }
    let race = Race<T>(count: operations.count)
    return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        race.begin(continuation)
        for operation in operations {
            race.add(Task { race.finished(with: await operation()) })
        }
    }
}

private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        var remaining: Int
        var tasks: [Task<Void, Never>] = []
        var done = false
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(remaining: count))
    }

    func begin(_ continuation: CheckedContinuation<T?, Never>) {
        state.withLock { $0.continuation = continuation }
    }

    func add(_ task: Task<Void, Never>) {
        let cancel = state.withLock { state -> Bool in
            state.tasks.append(task)
            return state.done
        }
        if cancel { task.cancel() }
    }

    func finished(with value: T?) {
        let (continuation, losers): (CheckedContinuation<T?, Never>?, [Task<Void, Never>]) = state.withLock {
            state in
            state.remaining -= 1
            guard !state.done, value != nil || state.remaining == 0 else { return (nil, []) }
            state.done = true
            defer { state.continuation = nil }
            return (state.continuation, state.tasks)
        }
        for loser in losers { loser.cancel() }
        continuation?.resume(returning: value)
    }
}
