import Synchronization

/// The circuit breaker of one ship, shared by every event loop. The healthy case (closed, no recent
/// failures) costs one relaxed atomic load per request; the lock is taken only around failures.
final class ShipBreaker: Sendable {
    private let clean = Atomic<Bool>(true)
    private let breaker: Mutex<CircuitBreaker>

    init(_ breaker: CircuitBreaker = CircuitBreaker()) { self.breaker = Mutex(breaker) }

    /// The clock is read only when the breaker has seen failures: a healthy ship costs one load.
    func admit() -> CircuitBreaker.Admission {
        if clean.load(ordering: .relaxed) { return .allow }
        let now = ContinuousClock.now
        return breaker.withLock { $0.admit(now: now) }
    }

    func recordSuccess() {
        if clean.load(ordering: .relaxed) { return }
        breaker.withLock {
            $0.recordSuccess()
            clean.store($0.isClosedAndClean, ordering: .relaxed)
        }
    }

    func abandonTrial() {
        breaker.withLock { $0.abandonTrial() }
    }

    func recordFailure() {
        let now = ContinuousClock.now
        breaker.withLock {
            $0.recordFailure(now: now)
            clean.store($0.isClosedAndClean, ordering: .relaxed)
        }
    }
}

/// How many idle keep-alive connections one ship may have, over all of the relay's pools
/// together (SPEC §4: one cap per ship, not per event loop).
final class IdleAllowance: Sendable {
    static let capacity = 128
    private let count = Atomic<Int>(0)

    /// Takes a place for one more idle connection; false when the ship has its fill.
    func take() -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < Self.capacity {
            let (exchanged, original) = count.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// An idle connection left its pool (leased, closed, or handed on).
    func give() {
        count.subtract(1, ordering: .relaxed)
    }
}
