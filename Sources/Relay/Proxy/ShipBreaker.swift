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

/// One breaker per ship, by the ship's index in the manifest.
final class BreakerBoard: Sendable {
    private let breakers: [ShipBreaker]

    init(ships: Int) { breakers = (0..<ships).map { _ in ShipBreaker() } }

    func breaker(_ index: Int) -> ShipBreaker { breakers[index] }
}
