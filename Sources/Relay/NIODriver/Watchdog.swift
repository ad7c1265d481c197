import NIOCore

/// A connection's one timer on an event loop, moved lazily: a later deadline than the one set is
/// left to the core (the timer fires early, the core finds its deadline has not passed and asks
/// again), so the hot path (a request per few microseconds) never touches the loop's timer heap.
struct Watchdog {
    private var scheduled: Scheduled<Void>?
    private var scheduledAt: NIODeadline?

    /// Makes sure the timer fires no later than `deadline`; `fire` runs on `loop` then.
    mutating func watch(
        until deadline: NIODeadline, on loop: any EventLoop, fire: @escaping @Sendable () -> Void
    ) {
        if let scheduledAt, scheduledAt <= deadline { return }
        scheduled?.cancel()
        scheduledAt = deadline
        scheduled = loop.scheduleTask(deadline: deadline, fire)
    }

    /// Whether a timer already set fires no later than `deadline` (no closure needs making).
    func covers(_ deadline: NIODeadline) -> Bool {
        guard let scheduledAt else { return false }
        return scheduledAt <= deadline
    }

    /// The timer ran.
    mutating func fired() {
        scheduled = nil
        scheduledAt = nil
    }

    mutating func cancel() {
        scheduled?.cancel()
        scheduled = nil
        scheduledAt = nil
    }
}
