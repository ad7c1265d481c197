import Metrics
import Prometheus
import Relay

/// The run's swift-metrics backend: `PrometheusMetricsFactory` with help text. Each handler is made
/// with the `# HELP` text `MetricCatalogue` has for its name (`PrometheusMetricsFactory` always
/// passes an empty one, so no family had a HELP line); everything else is `PrometheusMetricsFactory`'s
/// own: its name and label sanitizer, its buckets for timers and aggregating recorders, and its
/// destroy methods.
struct CataloguedMetricsFactory: MetricsFactory {
    private let prometheus: PrometheusMetricsFactory

    var registry: PrometheusCollectorRegistry { prometheus.registry }

    init(registry: PrometheusCollectorRegistry) {
        prometheus = PrometheusMetricsFactory(registry: registry)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let (name, labels) = prometheus.nameAndLabelSanitizer(label, dimensions)
        return registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
    }

    func makeFloatingPointCounter(
        label: String, dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        let (name, labels) = prometheus.nameAndLabelSanitizer(label, dimensions)
        return registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
    }

    func makeRecorder(
        label: String, dimensions: [(String, String)], aggregate: Bool
    ) -> any RecorderHandler {
        let (name, labels) = prometheus.nameAndLabelSanitizer(label, dimensions)
        guard aggregate else {
            return registry.makeGauge(descriptor: Self.descriptor(name), labels: labels)
        }
        let buckets = prometheus.valueHistogramBuckets[name] ?? prometheus.defaultValueHistogramBuckets
        return registry.makeValueHistogram(
            descriptor: Self.descriptor(name), labels: labels, buckets: buckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        let (name, labels) = prometheus.nameAndLabelSanitizer(label, dimensions)
        return registry.makeGauge(descriptor: Self.descriptor(name), labels: labels)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let (name, labels) = prometheus.nameAndLabelSanitizer(label, dimensions)
        let buckets = prometheus.durationHistogramBuckets[name] ?? prometheus.defaultDurationHistogramBuckets
        return registry.makeDurationHistogram(
            descriptor: Self.descriptor(name), labels: labels, buckets: buckets)
    }

    /// `name` whole (the descriptor joins its parts with `_`, and an empty unit is left out) with
    /// its catalogue help ("" when the catalogue lacks it: no HELP line, as before).
    private static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: MetricCatalogue.help(for: name))
    }

    func destroyCounter(_ handler: any CounterHandler) {
        prometheus.destroyCounter(handler)
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        prometheus.destroyFloatingPointCounter(handler)
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        prometheus.destroyRecorder(handler)
    }

    func destroyMeter(_ handler: any MeterHandler) {
        prometheus.destroyMeter(handler)
    }

    func destroyTimer(_ handler: any TimerHandler) {
        prometheus.destroyTimer(handler)
    }
}
