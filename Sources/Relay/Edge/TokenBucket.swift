/// A token bucket (SPEC §5.6): holds up to `capacity` tokens, refills at `perSecond`, one token per
/// request. Time is a parameter (nanoseconds on a monotonic clock), so the bucket is a plain value.
struct TokenBucket: Sendable, Equatable {
    let capacity: Double
    /// Tokens per nanosecond.
    let rate: Double
    private(set) var tokens: Double
    private(set) var updated: UInt64

    init(capacity: Double, perSecond: Double, now: UInt64) {
        self.capacity = capacity
        self.rate = perSecond / 1e9
        self.tokens = capacity
        self.updated = now
    }

    enum Decision: Equatable {
        case allow
        /// Over the limit; a token is available again in this many whole seconds (at least 1).
        case reject(retryAfterSeconds: Int)
    }

    /// Takes a token if there is one.
    mutating func take(now: UInt64) -> Decision {
        refill(now: now)
        if tokens >= 1 {
            tokens -= 1
            return .allow
        }
        let seconds = ((1 - tokens) / rate / 1e9).rounded(.up)
        return .reject(retryAfterSeconds: max(1, Int(min(seconds, 86_400))))
    }

    /// Gives back a token taken for a request that another limit refused.
    mutating func giveBack() { tokens = min(capacity, tokens + 1) }

    /// Whether the bucket has been idle long enough to be full again (it can be forgotten: a new
    /// one would behave the same).
    func isFull(now: UInt64) -> Bool {
        tokens + Double(now &- updated) * rate >= capacity
    }

    private mutating func refill(now: UInt64) {
        if now > updated {
            tokens = min(capacity, tokens + Double(now - updated) * rate)
            updated = now
        }
    }
}
