/// Delay before restarting a crashed vessel: at once the first time, then 0.5 s, 1 s, 2 s, ... capped
/// at 30 s; the sequence starts over when the process had stayed up for 60 s (ours; the original only
/// says "exponential backoff"). A one-off crash costs no downtime; a crash loop still backs off.
/// A pure value: the supervisor asks it for the next delay and carries out the wait itself.
public struct RestartBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var resetAfter: Duration
    /// How many restarts in a row the current sequence has had.
    public private(set) var attempt = 0

    public init(
        initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30),
        resetAfter: Duration = .seconds(60)
    ) {
        self.initial = initial
        self.maximum = maximum
        self.resetAfter = resetAfter
    }

    /// The delay before the next start, given how long the process that just ended had been running.
    public mutating func nextDelay(afterRunningFor uptime: Duration) -> Duration {
        if uptime >= resetAfter { attempt = 0 }
        defer { attempt += 1 }
        if attempt == 0 { return .zero }
        var delay = initial
        for _ in 0..<min(attempt - 1, 32) {
            delay *= 2
            if delay >= maximum { break }
        }
        return min(delay, maximum)
    }
}
