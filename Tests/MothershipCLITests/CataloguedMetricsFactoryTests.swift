import Metrics
import MothershipTestSupport
import Prometheus
import Relay
import Testing

@testable import MothershipCLI

/// The run's metrics backend: `PrometheusMetricsFactory`'s handlers and text, with each family's
/// `# HELP` from `MetricCatalogue`.
@Suite("Catalogued metrics factory")
struct CataloguedMetricsFactoryTests {
    @Test func everyCatalogueFamilyIsServedWithItsHelpAndTypeBeforeItsSamples() {
        let registry = PrometheusCollectorRegistry()
        let factory = CataloguedMetricsFactory(registry: registry)
        for family in MetricCatalogue.families {
            switch family.kind {
            case .counter:
                factory.makeCounter(label: family.name, dimensions: [("ship", "web")]).increment(by: 2)
            case .gauge, .untyped:
                factory.makeRecorder(label: family.name, dimensions: [], aggregate: false).record(Int64(3))
            case .histogram:
                continue  // RequestDurations renders its own (RequestDurationsTests)
            }
        }
        let text = MetricsExposition(registry: registry, durations: nil).render()
        #expect(ExpositionCheck.problems(in: text) == [], "\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        for family in MetricCatalogue.families where family.kind != .histogram {
            #expect(lines.contains("# HELP \(family.name) \(family.help)"), "\(text)")
            #expect(lines.contains("# TYPE \(family.name) \(family.kind.rawValue)"), "\(text)")
        }
        // Values as before: the untyped family is the registry's gauge under another TYPE.
        #expect(lines.contains("mothership_fleet_ships_total 3.0"), "\(text)")
        #expect(lines.contains(#"mothership_requests_total{ship="web"} 2"#), "\(text)")
    }

    /// A name the catalogue lacks gets no HELP line (the catalogue test keeps that from happening),
    /// and otherwise every kind of handler is made, recorded and destroyed as
    /// `PrometheusMetricsFactory` does it: the same text, line for line.
    @Test func forwardsEveryHandlerKindAsPrometheusMetricsFactoryDoes() {
        func exercise(_ factory: any MetricsFactory) {
            factory.makeCounter(label: "example_counter_total", dimensions: [("a", "1")]).increment(by: 4)
            factory.makeFloatingPointCounter(label: "example_float_total", dimensions: []).increment(by: 1.5)
            factory.makeRecorder(label: "example_gauge", dimensions: [], aggregate: false).record(7.25)
            factory.makeRecorder(label: "example_values", dimensions: [], aggregate: true).record(Int64(30))
            factory.makeMeter(label: "example_meter", dimensions: [("b", "2")]).set(Int64(9))
            factory.makeTimer(label: "example_seconds", dimensions: []).recordNanoseconds(12_000_000)
            factory.destroyCounter(factory.makeCounter(label: "gone_total", dimensions: []))
            factory.destroyFloatingPointCounter(
                factory.makeFloatingPointCounter(label: "gone_float_total", dimensions: []))
            factory.destroyRecorder(
                factory.makeRecorder(label: "gone_gauge", dimensions: [], aggregate: false))
            factory.destroyRecorder(
                factory.makeRecorder(label: "gone_values", dimensions: [], aggregate: true))
            factory.destroyMeter(factory.makeMeter(label: "gone_meter", dimensions: []))
            factory.destroyTimer(factory.makeTimer(label: "gone_seconds", dimensions: []))
        }
        let ours = PrometheusCollectorRegistry()
        exercise(CataloguedMetricsFactory(registry: ours))
        let theirs = PrometheusCollectorRegistry()
        exercise(PrometheusMetricsFactory(registry: theirs))
        let text = ours.emitToString()
        // Families come out in dictionary order: compare the lines as sets.
        #expect(text.split(separator: "\n").sorted() == theirs.emitToString().split(separator: "\n").sorted())
        #expect(!text.contains("# HELP"))
        #expect(!text.contains("gone_"), "\(text)")
        #expect(text.contains(#"example_seconds_bucket{le="0.025"} 1"#), "\(text)")
        #expect(text.contains(#"example_values_bucket{le="50.0"} 1"#), "\(text)")
    }
}
