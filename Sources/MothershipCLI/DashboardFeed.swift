import Dashboard
import Payloads
import Prometheus
import ShipManifest
import Supervision

/// What the dashboard shows besides the fleet's status: the manifest's name, the binds as they
/// listen, the relay's request total (read from the metrics registry, so the relay's hot path pays
/// nothing for the dashboard) and the manifest's modules with their counters (read from the
/// payloads' atomics; zeros when no listener runs them).
struct DashboardFeed: Sendable {
    let title: String
    let binds: [String]
    let modules: [ModuleRow]
    let registry: PrometheusCollectorRegistry?
    let payloads: PayloadSet?

    init(
        manifest: Manifest, binds: [String], registry: PrometheusCollectorRegistry,
        payloads: PayloadSet? = nil
    ) {
        title = manifest.settings.name
        self.binds = binds
        modules = manifest.modules.map {
            ModuleRow(name: $0.name, phase: $0.phase.rawValue, routes: $0.routes.map(\.source))
        }
        self.registry = manifest.settings.listeners.isEmpty ? nil : registry
        self.payloads = manifest.settings.listeners.isEmpty ? nil : payloads  // no bind runs them
    }

    func snapshot(_ fleet: FleetStatus) -> DashboardSnapshot {
        var rows = modules
        if let activity = payloads?.activity, activity.count == rows.count {
            for index in rows.indices {
                rows[index].invocations = activity[index].invocations
                rows[index].blocks = activity[index].blocks
                rows[index].errors = activity[index].errors
            }
        }
        return DashboardSnapshot(
            fleet: fleet, title: title, binds: binds,
            requestsTotal: registry.map { Self.requestsTotal(in: $0.emitToString()) }, modules: rows,
            moduleCountersLive: payloads != nil)
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
