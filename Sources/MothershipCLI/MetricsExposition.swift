import Prometheus
import Relay

/// The body of `/metrics`: the registry's families (made by `CataloguedMetricsFactory`, so each has
/// its `# HELP`), then the relay's request-duration histograms, which render themselves.
///
/// swift-prometheus has no untyped metric, so a family `MetricCatalogue` types `untyped`
/// (`mothership_fleet_ships_total`, a gauge by its values) is made as a gauge and its `# TYPE` line
/// is rewritten here; names, labels and values are the registry's.
struct MetricsExposition: Sendable {
    let registry: PrometheusCollectorRegistry
    let durations: RequestDurations?

    /// `# TYPE` lines as the registry writes them, and as they are served.
    private static let retypings: [(written: String, served: String)] = MetricCatalogue.families
        .filter { $0.kind == .untyped }
        .map { ("# TYPE \($0.name) gauge\n", "# TYPE \($0.name) untyped\n") }

    func render() -> String {
        var text = registry.emitToString()
        for retyping in Self.retypings {
            text = text.replacing(retyping.written, with: retyping.served)
        }
        return text + (durations?.render() ?? "")
    }
}
