/// A phased restart's replacement being started (a worker slot's, or a bay's while it docks):
/// tasks that need to know how it ends (it took over, or it will not) wait until it settles.
/// The supervisor's actor owns it; the continuations are resumed after it is settled.
struct PendingReplacement {
    private(set) var isPending = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    mutating func begin() { isPending = true }

    /// Waits, with `continuation`, until `settle()` (at once when nothing is pending).
    mutating func wait(_ continuation: CheckedContinuation<Void, Never>) {
        guard isPending else { return continuation.resume() }
        waiters.append(continuation)
    }

    /// It took over or failed: returns the waiters to resume.
    mutating func settle() -> [CheckedContinuation<Void, Never>] {
        isPending = false
        defer { waiters = [] }
        return waiters
    }
}
