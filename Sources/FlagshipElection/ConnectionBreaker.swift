/// The circuit breaker for connecting to the election database: retries with a doubling delay and
/// opens (gives up) after `maxFailures` consecutive failures or when the next attempt would start past
/// the election deadline. A pure value: the caller sleeps, connects and reports back.
public struct ConnectionBreaker: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Try again after this delay.
        case retry(after: Duration)
        /// Stop: the breaker is open; `attempts` were made.
        case open(attempts: Int)
    }

    public var initialDelay: Duration
    public var maximumDelay: Duration
    public var maxFailures: Int
    public private(set) var failures = 0

    public init(
        initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(2),
        maxFailures: Int = 6
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.maxFailures = maxFailures
    }

    /// Records a failed attempt, `remaining` before the election's deadline; says whether to retry
    /// and when.
    public mutating func recordFailure(remaining: Duration) -> Action {
        failures += 1
        guard failures < maxFailures else { return .open(attempts: failures) }
        var delay = initialDelay
        for _ in 1..<failures { delay = min(delay * 2, maximumDelay) }
        guard delay < remaining else { return .open(attempts: failures) }
        return .retry(after: delay)
    }

    /// A connection succeeded: the count starts over.
    public mutating func recordSuccess() {
        failures = 0
    }
}
