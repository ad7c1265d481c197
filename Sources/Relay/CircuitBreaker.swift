/// One ship's circuit breaker, as a pure state machine: it decides whether a request may go to the
/// ship and learns from how requests ended, so a ship that keeps failing is given room to recover
/// instead of a queue of requests that will fail too.
///
/// Closed, it admits everything and counts consecutive failed requests (a request's retries count as
/// one). At `failureThreshold` it opens: every request is rejected (the relay answers `503` with
/// `Retry-After`) until `openDuration` has passed. It then half-opens: exactly one trial request goes
/// through while the others are still rejected; the trial's success closes the breaker, its failure
/// opens it for another `openDuration`.
///
/// It never reads a clock: callers pass `now`. It is a value; the relay keeps one per ship under its
/// own lock and calls it once when a request is routed and once when the request ends.
public struct CircuitBreaker: Sendable {
    /// What to do with a request.
    public enum Admission: Equatable, Sendable {
        /// Send it: the breaker is closed.
        case allow
        /// Send it as the half-open trial, and report how it ended: the breaker's state hangs on it.
        case trial
        /// Do not send it; answer `503` with `Retry-After: retryAfterSeconds(retryAfter)`.
        case reject(retryAfter: Duration)
    }

    private enum State: Equatable, Sendable {
        case closed(failures: Int)
        case open(until: ContinuousClock.Instant)
        /// `trialSince` is when the trial in flight was admitted, nil when none is.
        case halfOpen(trialSince: ContinuousClock.Instant?)
    }

    /// What a request rejected during a half-open trial is told to wait: the trial usually answers
    /// well within it.
    public static let trialRetryAfter: Duration = .seconds(1)

    public let failureThreshold: Int
    public let openDuration: Duration
    private var state = State.closed(failures: 0)

    public init(failureThreshold: Int = 5, openDuration: Duration = .seconds(30)) {
        precondition(failureThreshold >= 1, "a circuit breaker needs a failure threshold of at least 1")
        precondition(openDuration > .zero, "a circuit breaker needs a positive open duration")
        self.failureThreshold = failureThreshold
        self.openDuration = openDuration
    }

    /// Closed with no failures counted: nothing to decide or record for a request that succeeds, so
    /// the hot path can skip the breaker's lock until something fails.
    public var isClosedAndClean: Bool { state == .closed(failures: 0) }

    /// Whether a request arriving at `now` may go to the ship.
    ///
    /// A trial that has not reported within `openDuration` (its outcome was lost) is presumed failed
    /// as far as blocking goes: the next request becomes a new trial, so the breaker cannot stick.
    public mutating func admit(now: ContinuousClock.Instant) -> Admission {
        switch state {
        case .closed:
            return .allow
        case .open(let until):
            guard now >= until else { return .reject(retryAfter: until - now) }
            state = .halfOpen(trialSince: now)
            return .trial
        case .halfOpen(let trialSince):
            if let trialSince, now < trialSince.advanced(by: openDuration) {
                return .reject(retryAfter: Self.trialRetryAfter)
            }
            state = .halfOpen(trialSince: now)
            return .trial
        }
    }

    /// A request (the trial or any other) got its response from the ship.
    ///
    /// Closed, this resets the failure count; half-open, it closes the breaker. While open it is a
    /// request admitted before the breaker opened, and changes nothing: the breaker opened on newer
    /// evidence, and only a trial closes it.
    public mutating func recordSuccess() {
        switch state {
        case .closed, .halfOpen: state = .closed(failures: 0)
        case .open: break
        }
    }

    /// A request failed at `now` (after its retries): refused, timed out, or reset by the ship.
    ///
    /// Closed, it counts towards the threshold; half-open, it opens the breaker again for
    /// `openDuration`. While open it is a late answer to an earlier request and does not extend the wait.
    public mutating func recordFailure(now: ContinuousClock.Instant) {
        switch state {
        case .closed(let failures):
            let failures = failures + 1
            state =
                failures >= failureThreshold
                ? .open(until: now.advanced(by: openDuration)) : .closed(failures: failures)
        case .halfOpen:
            state = .open(until: now.advanced(by: openDuration))
        case .open:
            break
        }
    }

    /// The trial (the request admitted with `.trial`; the caller knows which one it holds) ended
    /// without telling anything about the ship, say the client went away first: the next request
    /// becomes the trial at once instead of after `openDuration`.
    public mutating func abandonTrial() {
        if case .halfOpen(.some) = state { state = .halfOpen(trialSince: nil) }
    }

    /// The `Retry-After` value for a rejection: whole seconds, rounded up, at least 1 (a client told
    /// `0` would retry at once into the same rejection).
    public static func retryAfterSeconds(_ retryAfter: Duration) -> Int {
        let (seconds, attoseconds) = retryAfter.components
        let whole = attoseconds > 0 ? seconds + 1 : seconds
        return Int(max(1, whole))
    }
}
