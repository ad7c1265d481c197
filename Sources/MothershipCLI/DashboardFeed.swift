import Dashboard
import Prometheus
import ShipManifest
import Supervision

/// What the dashboard shows besides the fleet's status: the manifest's name, the binds as they
/// listen, the relay's request total (read from the metrics registry, so the relay's hot path pays
/// nothing for the dashboard) and the manifest's modules (no payload counters yet: zeros).
struct DashboardFeed: Sendable {
    let title: String
    let binds: [String]
    let modules: [ModuleRow]
    let registry: PrometheusCollectorRegistry?

    init(manifest: Manifest, binds: [String], registry: PrometheusCollectorRegistry) {
        title = manifest.settings.name
        self.binds = binds
        modules = manifest.modules.map {
            ModuleRow(name: $0.name, phase: $0.phase.rawValue, routes: $0.routes.map(\.source))
        }
        self.registry = manifest.settings.listeners.isEmpty ? nil : registry
    }

    func snapshot(_ fleet: FleetStatus) -> DashboardSnapshot {
        DashboardSnapshot(
            fleet: fleet, title: title, binds: binds,
            requestsTotal: registry.map { Self.requestsTotal(in: $0.emitToString()) }, modules: modules,
            moduleCountersLive: false)
    }

    /// The sum of every `mothership_requests_total{...} N` sample in a Prometheus exposition.
    static func requestsTotal(in exposition: String) -> UInt64 {
        var total: UInt64 = 0
        for line in exposition.split(separator: "\n") where line.hasPrefix("mothership_requests_total") {
            if let value = line.split(separator: " ").last, let number = Double(value) {
                total += UInt64(max(0, number))
            }
        }
        return total
    }
}
