import Dashboard
import Supervision

/// Fleets the renderer tests draw.
enum Fixtures {
    static let fleet = FleetStatus(
        lifecycle: .running,
        vessels: [
            VesselStatus(
                name: "web", kind: .ship, group: "web", phase: .running, pid: 4242, healthy: true,
                memory: MemoryUsage(residentBytes: 13_107_200, virtualBytes: 0), startedAt: .seconds(10),
                routes: ["http:/api/*", "http:/"]),
            VesselStatus(
                name: "worker", kind: .ship, group: "workers", phase: .backingOff, restarts: 3,
                critical: false),
            VesselStatus(
                name: "chat", kind: .bay, group: "bays", phase: .starting, pid: 4250,
                startedAt: .seconds(3720)),
            VesselStatus(name: "migrate", kind: .ship, group: "jobs", phase: .completed),
            VesselStatus(
                name: "cache", kind: .ship, group: "data", phase: .running, pid: 4100, healthy: false,
                restarts: 1, memory: MemoryUsage(residentBytes: 900 * 1024, virtualBytes: 0),
                startedAt: .seconds(5)),
        ],
        now: .seconds(3725))

    static let snapshot = DashboardSnapshot(
        fleet: fleet, title: "shop", binds: ["http 127.0.0.1:8080", "admin unix:/run/admin.sock"],
        requestsTotal: 1234, requestRate: 42.25,
        modules: [
            ModuleRow(name: "auth", phase: "request", routes: ["/api/*"]),
            ModuleRow(name: "brand", phase: "response", routes: ["/", "/shop/*"]),
        ])

    static func log(_ texts: [String], source: String = "web", dropped: Int = 0) -> LogExcerpt {
        LogExcerpt(
            lines: texts.map { OutputLine(source: source, stream: .stdout, text: $0) },
            total: texts.count + dropped)
    }

    static func state(_ tab: DashboardTab, selected: String? = nil) -> DashboardState {
        var state = DashboardState()
        state.tab = tab
        state.selected = selected
        return state
    }
}
