/// Requests per second from successive samples of a running total, over about the last second.
public struct RateMeter: Sendable {
    private var samples: [(at: Duration, total: UInt64)] = []
    public let window: Duration

    public init(window: Duration = .seconds(1)) {
        self.window = window
    }

    /// Records `total` at `time` (any monotonic clock's offset) and returns the current rate, nil
    /// until two samples at least half a window apart exist.
    public mutating func sample(_ total: UInt64, at time: Duration) -> Double? {
        if let last = samples.last, total < last.total { samples = [] }  // counter reset
        samples.append((time, total))
        while samples.count > 2, time - samples[1].at >= window { samples.removeFirst() }
        guard let oldest = samples.first, time - oldest.at >= window / 2 else { return nil }
        let seconds =
            Double((time - oldest.at).components.seconds)
            + Double((time - oldest.at).components.attoseconds) / 1e18
        return Double(total - oldest.total) / seconds
    }
}
