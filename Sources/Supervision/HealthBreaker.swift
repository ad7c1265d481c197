/// The per-ship health circuit breaker: it opens after `threshold` failed checks within `window`;
/// an open breaker means "restart this ship". A new process starts with a closed breaker.
/// Pure: times are offsets from any fixed origin, passed in by the caller.
public struct HealthBreaker: Sendable, Hashable {
    public var threshold: Int
    public var window: Duration
    private var failures: [Duration] = []

    public init(threshold: Int = 5, window: Duration = .seconds(60)) {
        self.threshold = threshold
        self.window = window
    }

    public enum Verdict: Sendable, Hashable {
        case healthy
        /// Failing, but not yet enough failures within the window.
        case degraded(failures: Int)
        /// Enough failures: restart.
        case open
    }

    /// Records one check's outcome at `now` and says what to do.
    public mutating func record(success: Bool, at now: Duration) -> Verdict {
        failures.removeAll { now - $0 >= window }
        if success { return failures.isEmpty ? .healthy : .degraded(failures: failures.count) }
        failures.append(now)
        if failures.count >= threshold {
            failures.removeAll()
            return .open
        }
        return .degraded(failures: failures.count)
    }
}
