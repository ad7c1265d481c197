import NIOCore

/// One timer per connection, moved lazily: setting a later deadline is a store, not a reschedule.
/// The scheduled task fires at the earlier time, finds the new deadline and sleeps again, so the
/// hot path (a request per few microseconds) never touches the event loop's timer heap.
struct Watchdog {
    private(set) var deadline: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var scheduledAt: NIODeadline?

    /// Watches until `deadline`; `fire` runs on `loop` once it passes (and the watch was not moved
    /// or cleared meanwhile).
    mutating func watch(
        until deadline: NIODeadline, on loop: any EventLoop, fire: @escaping @Sendable () -> Void
    ) {
        self.deadline = deadline
        if let scheduledAt, scheduledAt <= deadline { return }
        scheduled?.cancel()
        scheduledAt = deadline
        scheduled = loop.scheduleTask(deadline: deadline, fire)
    }

    /// Moves the deadline when the timer already set fires no later (a store, no closure made):
    /// false when `watch` must schedule.
    mutating func move(to deadline: NIODeadline) -> Bool {
        guard let scheduledAt, scheduledAt <= deadline else { return false }
        self.deadline = deadline
        return true
    }

    mutating func clear() { deadline = nil }

    mutating func cancel() {
        deadline = nil
        scheduled?.cancel()
        scheduled = nil
        scheduledAt = nil
    }

    /// Called when the scheduled task runs: true when the deadline has passed (the watch ends);
    /// false when there is nothing to do or the deadline moved (then `rearm` is needed).
    mutating func expired(now: NIODeadline) -> Bool {
        scheduled = nil
        scheduledAt = nil
        guard let deadline else { return false }
        if now >= deadline {
            self.deadline = nil
            return true
        }
        return false
    }
}
