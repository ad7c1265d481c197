import MothershipTestSupport
import Testing

@testable import Relay

/// `mothership_request_duration_seconds` as Prometheus reads it: cumulative buckets with
/// swift-prometheus's bounds and number format, `_count` equal to the `+Inf` bucket.
@Suite("Request duration histograms")
struct RequestDurationsTests {
    @Test func rendersCumulativeBucketsSumAndCountPerRouteAndShip() {
        let durations = RequestDurations()
        let api = durations.histogram(route: "/api/.*", ship: "web")
        for milliseconds: Int64 in [1, 5, 7, 30, 400, 12_000] {
            api.record(nanoseconds: milliseconds * 1_000_000)
        }
        // The same route and ship on another bind shares the histogram.
        #expect(durations.histogram(route: "/api/.*", ship: "web") === api)
        _ = durations.histogram(route: #"/say-"hi"\.*"#, ship: "web")
        let text = durations.render()
        let labels = #"route="/api/.*",ship="web""#
        let lines = text.split(separator: "\n").map(String.init)
        #expect(
            lines.prefix(2) == [
                "# HELP mothership_request_duration_seconds \(MetricCatalogue.help(for: RequestDurations.name))",
                "# TYPE mothership_request_duration_seconds histogram",
            ])
        #expect(lines.filter { $0.hasPrefix("#") }.count == 2)
        #expect(ExpositionCheck.problems(in: text) == [], "\(text)")
        let expected = [
            ("0.005", 2), ("0.01", 3), ("0.025", 3), ("0.05", 4), ("0.1", 4), ("0.25", 4), ("0.5", 5),
            ("1.0", 5), ("2.5", 5), ("5.0", 5), ("10.0", 5), ("+Inf", 6),
        ]
        for (bound, count) in expected {
            let line = "mothership_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(count)"
            #expect(lines.contains(line), "\(line) in \(text)")
        }
        #expect(lines.contains("mothership_request_duration_seconds_sum{\(labels)} 12.443"))
        #expect(lines.contains("mothership_request_duration_seconds_count{\(labels)} 6"))
        // Quotes and backslashes in a route are escaped; an empty histogram still has its lines.
        #expect(
            lines.contains(
                #"mothership_request_duration_seconds_count{route="/say-\"hi\"\\.*",ship="web"} 0"#))
        #expect(
            lines.contains(
                #"mothership_request_duration_seconds_sum{route="/say-\"hi\"\\.*",ship="web"} 0.0"#))
    }

    @Test func writesSecondsAsSwiftPrometheusWritesDurations() {
        #expect(RequestDurationHistogram.seconds(0) == "0.0")
        #expect(RequestDurationHistogram.seconds(5_000_000) == "0.005")
        #expect(RequestDurationHistogram.seconds(2_500_000_000) == "2.5")
        #expect(RequestDurationHistogram.seconds(1_000_000_001) == "1.000000001")
        #expect(RequestDurationHistogram.seconds(30_120_000_000) == "30.12")
    }

    @Test func rendersNothingWithoutRoutes() {
        #expect(RequestDurations().render() == "")
    }
}
