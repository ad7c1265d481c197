import Relay
import Testing

@Suite("Circuit breaker")
struct CircuitBreakerTests {
    /// An arbitrary origin; the breaker only ever compares instants it was given.
    private let start = ContinuousClock.now

    private func at(_ seconds: Double) -> ContinuousClock.Instant {
        start.advanced(by: .milliseconds(Int64((seconds * 1000).rounded())))
    }

    /// A breaker that has just opened at `at(0)` after the default five failures.
    private func openedBreaker() -> CircuitBreaker {
        var breaker = CircuitBreaker()
        for _ in 0..<5 { breaker.recordFailure(now: at(0)) }
        return breaker
    }

    @Test func newBreakerIsClosedCleanAndAllows() {
        var breaker = CircuitBreaker()
        #expect(breaker.isClosedAndClean)
        #expect(breaker.admit(now: at(0)) == .allow)
        #expect(breaker.failureThreshold == 5)
        #expect(breaker.openDuration == .seconds(30))
    }

    @Test func staysClosedBelowTheThresholdButIsNoLongerClean() {
        var breaker = CircuitBreaker()
        for _ in 0..<4 { breaker.recordFailure(now: at(0)) }
        #expect(!breaker.isClosedAndClean)
        #expect(breaker.admit(now: at(0)) == .allow)
    }

    @Test func opensAfterFiveConsecutiveFailuresAndRejectsForThirtySeconds() {
        var breaker = openedBreaker()
        #expect(!breaker.isClosedAndClean)
        #expect(breaker.admit(now: at(0)) == .reject(retryAfter: .seconds(30)))
        #expect(breaker.admit(now: at(29.9)) == .reject(retryAfter: .milliseconds(100)))
    }

    @Test func successResetsTheConsecutiveFailureCount() {
        var breaker = CircuitBreaker()
        for _ in 0..<4 { breaker.recordFailure(now: at(0)) }
        breaker.recordSuccess()
        #expect(breaker.isClosedAndClean)
        for _ in 0..<4 { breaker.recordFailure(now: at(1)) }
        #expect(breaker.admit(now: at(1)) == .allow)
        breaker.recordFailure(now: at(1))
        #expect(breaker.admit(now: at(1)) == .reject(retryAfter: .seconds(30)))
    }

    @Test(arguments: [1, 2, 3, 10])
    func opensExactlyAtACustomThreshold(threshold: Int) {
        var breaker = CircuitBreaker(failureThreshold: threshold, openDuration: .seconds(5))
        for _ in 0..<(threshold - 1) { breaker.recordFailure(now: at(0)) }
        #expect(breaker.admit(now: at(0)) == .allow)
        breaker.recordFailure(now: at(0))
        #expect(breaker.admit(now: at(0)) == .reject(retryAfter: .seconds(5)))
        #expect(breaker.admit(now: at(5)) == .trial)
    }

    @Test func retryAfterCountsDownWhileOpen() {
        var breaker = openedBreaker()
        let waits = [0, 1, 10, 29, 29.5, 29.999].map { second -> Int in
            guard case .reject(let retryAfter) = breaker.admit(now: at(second)) else { return -1 }
            return CircuitBreaker.retryAfterSeconds(retryAfter)
        }
        #expect(waits == [30, 29, 20, 1, 1, 1])
    }

    @Test func halfOpensAfterTheOpenDurationWithOneTrial() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(30)) == .trial)
        #expect(!breaker.isClosedAndClean)
    }

    @Test func rejectsOthersWhileTheTrialIsInFlight() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(30)) == .trial)
        #expect(breaker.admit(now: at(30)) == .reject(retryAfter: CircuitBreaker.trialRetryAfter))
        #expect(breaker.admit(now: at(31)) == .reject(retryAfter: .seconds(1)))
        #expect(breaker.admit(now: at(59.9)) == .reject(retryAfter: .seconds(1)))
    }

    @Test func trialSuccessClosesTheBreaker() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(45)) == .trial)
        breaker.recordSuccess()
        #expect(breaker.isClosedAndClean)
        #expect(breaker.admit(now: at(45)) == .allow)
        #expect(breaker.admit(now: at(45)) == .allow)
    }

    @Test func trialFailureReopensForAnotherOpenDuration() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(30)) == .trial)
        breaker.recordFailure(now: at(32))
        #expect(breaker.admit(now: at(32)) == .reject(retryAfter: .seconds(30)))
        #expect(breaker.admit(now: at(61.5)) == .reject(retryAfter: .milliseconds(500)))
        #expect(breaker.admit(now: at(62)) == .trial)
        breaker.recordSuccess()
        #expect(breaker.isClosedAndClean)
    }

    @Test func closedAgainAfterTrialNeedsAFullThresholdToReopen() {
        var breaker = openedBreaker()
        _ = breaker.admit(now: at(30))
        breaker.recordSuccess()
        for _ in 0..<4 { breaker.recordFailure(now: at(31)) }
        #expect(breaker.admit(now: at(31)) == .allow)
    }

    @Test func lateFailureWhileOpenDoesNotExtendTheWait() {
        var breaker = openedBreaker()
        breaker.recordFailure(now: at(20))
        #expect(breaker.admit(now: at(20)) == .reject(retryAfter: .seconds(10)))
        #expect(breaker.admit(now: at(30)) == .trial)
    }

    @Test func lateSuccessWhileOpenDoesNotCloseTheBreaker() {
        var breaker = openedBreaker()
        breaker.recordSuccess()
        #expect(!breaker.isClosedAndClean)
        #expect(breaker.admit(now: at(10)) == .reject(retryAfter: .seconds(20)))
    }

    @Test func abandonedTrialLetsTheNextRequestBeTheTrial() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(30)) == .trial)
        breaker.abandonTrial()
        #expect(breaker.admit(now: at(31)) == .trial)
        #expect(breaker.admit(now: at(31)) == .reject(retryAfter: .seconds(1)))
    }

    @Test func abandoningWithoutATrialChangesNothing() {
        var closed = CircuitBreaker()
        closed.abandonTrial()
        #expect(closed.isClosedAndClean)
        var open = openedBreaker()
        open.abandonTrial()
        #expect(open.admit(now: at(1)) == .reject(retryAfter: .seconds(29)))
    }

    @Test func trialThatNeverReportsIsReplacedAfterTheOpenDuration() {
        var breaker = openedBreaker()
        #expect(breaker.admit(now: at(30)) == .trial)
        #expect(breaker.admit(now: at(59)) == .reject(retryAfter: .seconds(1)))
        #expect(breaker.admit(now: at(60)) == .trial)
        #expect(breaker.admit(now: at(60)) == .reject(retryAfter: .seconds(1)))
    }

    @Test(arguments: [
        (Duration.zero, 1),
        (.nanoseconds(1), 1),
        (.milliseconds(999), 1),
        (.seconds(1), 1),
        (.milliseconds(1001), 2),
        (.nanoseconds(29_999_999_999), 30),
        (.seconds(30), 30),
        (.seconds(-3), 1),
    ])
    func retryAfterSecondsRoundsUpToWholeSecondsAndIsAtLeastOne(duration: Duration, seconds: Int) {
        #expect(CircuitBreaker.retryAfterSeconds(duration) == seconds)
    }
}
