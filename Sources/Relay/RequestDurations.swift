import Synchronization

/// `mothership_request_duration_seconds{route, ship}`: the proxied requests' durations, one
/// histogram per route and ship, with the buckets swift-prometheus gives timers (5 ms … 10 s) and
/// the same text format. Kept here rather than as a swift-metrics timer because a timer's record
/// takes a lock and eleven `Duration` comparisons on every proxied request (the hot path takes no
/// locks per request: DESIGN.md §3.13); this takes one bucket search over integers and two relaxed
/// atomic adds. The measured difference is in docs/PERFORMANCE.md.
public final class RequestDurations: Sendable {
    private let histograms = Mutex<[Key: RequestDurationHistogram]>([:])
    /// In the order they were made, for a stable rendering.
    private let order = Mutex<[Key]>([])

    private struct Key: Hashable {
        var route: String
        var ship: String
    }

    /// The family's name, as `MetricCatalogue` knows it.
    static let name = "mothership_request_duration_seconds"

    public init() {}

    /// The histogram of `route` and `ship` (the same one for every bind that has the route).
    func histogram(route: String, ship: String) -> RequestDurationHistogram {
        let key = Key(route: route, ship: ship)
        return histograms.withLock { histograms in
            if let existing = histograms[key] { return existing }
            let made = RequestDurationHistogram(
                labels: #"route="\#(Self.escaped(route))",ship="\#(Self.escaped(ship))""#)
            histograms[key] = made
            order.withLock { $0.append(key) }
            return made
        }
    }

    /// The Prometheus text of every histogram, after the family's `# HELP` and `# TYPE` lines
    /// (nothing when there is none).
    public func render() -> String {
        let keys = order.withLock { $0 }
        guard !keys.isEmpty else { return "" }
        let all = histograms.withLock { $0 }
        var text = "# HELP \(Self.name) \(MetricCatalogue.help(for: Self.name))\n"
        text += "# TYPE \(Self.name) histogram\n"
        for key in keys {
            all[key]?.render(into: &text)
        }
        return text
    }

    /// Label values escaped as the text format wants (`\`, `"` and newlines).
    static func escaped(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

/// One route's request durations. Buckets are stored apart (not cumulative) and summed when
/// rendered, so `_count` always equals the `+Inf` bucket.
final class RequestDurationHistogram: Sendable {
    /// Upper bounds in nanoseconds, then the overflow bucket.
    static let bounds: [Int64] = [
        5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000, 500_000_000,
        1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]
    private let counts: [Counter]
    private let sum = Atomic<Int64>(0)
    private let labels: String

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    init(labels: String) {
        self.labels = labels
        self.counts = (0...Self.bounds.count).map { _ in Counter() }
    }

    func record(nanoseconds: Int64) {
        var index = 0
        while index < Self.bounds.count && nanoseconds > Self.bounds[index] { index += 1 }
        counts[index].value.wrappingAdd(1, ordering: .relaxed)
        sum.wrappingAdd(nanoseconds, ordering: .relaxed)
    }

    func render(into text: inout String) {
        var cumulative = 0
        for (index, bound) in Self.bounds.enumerated() {
            cumulative += counts[index].value.load(ordering: .relaxed)
            text +=
                "mothership_request_duration_seconds_bucket{\(labels),le=\"\(Self.seconds(bound))\"} \(cumulative)\n"
        }
        cumulative += counts[Self.bounds.count].value.load(ordering: .relaxed)
        text += "mothership_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
        text +=
            "mothership_request_duration_seconds_sum{\(labels)} \(Self.seconds(sum.load(ordering: .relaxed)))\n"
        text += "mothership_request_duration_seconds_count{\(labels)} \(cumulative)\n"
    }

    /// Nanoseconds as swift-prometheus writes a `Duration`: whole seconds, a dot, the fraction
    /// without trailing zeros (`0.005`, `1.0`, `2.5`).
    static func seconds(_ nanoseconds: Int64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = nanoseconds % 1_000_000_000
        guard fraction > 0 else { return "\(whole).0" }
        var digits = 9
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}
