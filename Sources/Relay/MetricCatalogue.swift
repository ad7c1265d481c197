/// Every metric family `/metrics` exposes, with its Prometheus type and the `# HELP` text an
/// operator reads: what it counts, in which unit, and what its labels mean.
///
/// The one place these texts live. The executable's metrics factory looks a family's help up here
/// when the swift-metrics facade creates it (the families of Supervision and Payloads included: the
/// relay owns the metrics endpoint), and `RequestDurations` writes its own. A name missing here is
/// exposed without help; `MetricCatalogueTests` checks that every name the sources create is here.
public enum MetricCatalogue {
    /// A family's type as the text format names it.
    public enum Kind: String, Sendable, Hashable {
        case counter
        case gauge
        case histogram
        /// A gauge in meaning whose name ends in `_total` (see `mothership_fleet_ships_total`).
        case untyped
    }

    public struct Family: Sendable, Hashable {
        public let name: String
        public let kind: Kind
        public let help: String
    }

    /// Every family, in the order the README presents them.
    public static let families: [Family] = [
        Family(
            name: "mothership_ship_status", kind: .gauge,
            help: "Whether the vessel is up: 1 while it runs (a oneshot ship: also once it exited 0), 0 "
                + "otherwise. Labels: ship = the ship's or bay's name, group = its fleet group (a bay: its "
                + "bay type)."),
        Family(
            name: "mothership_ship_healthy", kind: .gauge,
            help: "Whether the vessel passes its health check: 1 healthy, 0 not (without a healthcheck, a "
                + "running vessel counts as healthy). Labels: ship = the ship's or bay's name, group = its "
                + "fleet group (a bay: its bay type)."),
        Family(
            name: "mothership_ship_restarts_total", kind: .counter,
            help: "Restarts of the vessel since mothership started: after it exited, after failed health "
                + "checks, or on request. Labels: ship = the ship's or bay's name, group = its fleet group "
                + "(a bay: its bay type)."),
        Family(
            name: "mothership_ship_memory_rss_bytes", kind: .gauge,
            help: "Resident memory of the vessel's whole process group, in bytes, read from /proc every "
                + "5 s; 0 while it does not run. Labels: ship = the ship's or bay's name, group = its fleet "
                + "group (a bay: its bay type)."),
        Family(
            name: "mothership_ship_memory_virtual_bytes", kind: .gauge,
            help: "Virtual memory size of the vessel's whole process group, in bytes, read from /proc "
                + "every 5 s; 0 while it does not run. Labels: ship = the ship's or bay's name, group = "
                + "its fleet group (a bay: its bay type)."),
        Family(
            name: "mothership_worker_ready", kind: .gauge,
            help: "Whether one instance of a ship with workers takes requests: 1 ready (answered its "
                + "readiness check, healthy, not draining), 0 otherwise. Labels: ship = the ship's name, "
                + "worker = the instance's slot (0 to workers - 1, its MS_WORKER)."),
        Family(
            name: "mothership_worker_restarts_total", kind: .counter,
            help: "Restarts of one instance slot of a ship with workers after its process exited or "
                + "failed its health checks (phased restarts count in mothership_ship_restarts_total). "
                + "Labels: ship = the ship's name, worker = the instance's slot."),
        Family(
            name: "mothership_worker_memory_rss_bytes", kind: .gauge,
            help: "Resident memory of one instance of a ship with workers (its process group), in bytes, "
                + "read every 5 s; 0 while the slot has no process. Labels: ship = the ship's name, "
                + "worker = the instance's slot."),
        Family(
            name: "mothership_fleet_ships_total", kind: .untyped,
            help: "Vessels (ships and bays) in this run's manifest, after --only and --except. A gauge: "
                + "the name keeps its _total suffix for compatibility with the original tool, so it is "
                + "exposed untyped (Prometheus' lint rejects a gauge named *_total)."),
        Family(
            name: "mothership_requests_total", kind: .counter,
            help: "Requests a route matched, counted when answered: proxied to the ship, answered by the "
                + "relay in its place (such as 503 while it is not ready), or a WebSocket accepted for a "
                + "bay. Labels: route = the route's pattern as written in the manifest, ship = the ship "
                + "or bay it routes to."),
        Family(
            name: "mothership_request_duration_seconds", kind: .histogram,
            help: "Time from the relay taking a proxied request to the end of the ship's response (or "
                + "its failure, or the accepted upgrade), in seconds. Labels: route = the route's pattern "
                + "as written in the manifest, ship = the ship or bay it routes to (a bay's route is not "
                + "timed: its histogram stays at 0)."),
        Family(
            name: "mothership_connections", kind: .gauge,
            help: "Client connections open now on the bind. Label: bind = the bind's name in "
                + "[mothership.bind]."),
        Family(
            name: "mothership_relay_worker_requests_total", kind: .counter,
            help: "Request heads each relay worker thread read (plain binds; TLS binds run on SwiftNIO "
                + "and are not counted here). Label: worker = the worker thread's number, from 0."),
        Family(
            name: "mothership_relay_driver_moves_total", kind: .counter,
            help: "Client connections that left the worker thread that accepted them. Label: reason = "
                + "why (bay: a WebSocket accepted for a bay, handed to the bay's handling)."),
        Family(
            name: "mothership_rate_limited_total", kind: .counter,
            help: "Requests refused with 429 Too Many Requests by [mothership.rate_limiting] (global or "
                + "per client address); none of them reached a ship."),
        Family(
            name: "mothership_cors_cache_hits_total", kind: .counter,
            help: "CORS preflight requests (OPTIONS) answered from the relay's preflight cache, without "
                + "reaching the ship."),
        Family(
            name: "mothership_cors_cache_misses_total", kind: .counter,
            help: "CORS preflight requests (OPTIONS) not found fresh in the preflight cache, so passed "
                + "to the ship."),
        Family(
            name: "mothership_bay_connections", kind: .gauge,
            help: "WebSocket clients connected to the bay now. Label: bay = the bay's name."),
        Family(
            name: "mothership_bay_messages_total", kind: .counter,
            help: "WebSocket messages relayed between the bay and its clients. Labels: bay = the bay's "
                + "name, direction = in (client to bay) or out (bay to client)."),
        Family(
            name: "mothership_log_dropped_lines_total", kind: .counter,
            help: "Output lines that were not written to their log file ([mothership.logs]) because the "
                + "disk was full or too slow; the vessel is never blocked. Labels: vessel = the vessel's "
                + "name, or mothership for its own log."),
        Family(
            name: "mothership_module_invocations_total", kind: .counter,
            help: "Calls of the WebAssembly module: one per request it saw (request phase) or per ship "
                + "response head (response phase). Labels: module = the module's name in [[modules]], "
                + "phase = request or response."),
        Family(
            name: "mothership_module_blocks_total", kind: .counter,
            help: "Requests the module answered itself instead of passing them on (request phase only). "
                + "Labels: module = the module's name in [[modules]], phase = request or response."),
        Family(
            name: "mothership_module_errors_total", kind: .counter,
            help: "Failed calls of the module: a trap, exhausted fuel or a broken contract (the request "
                + "fails with 500 in the request phase, the response passes unchanged in the response "
                + "phase). Labels: module = the module's name in [[modules]], phase = request or response."),
        Family(
            name: "mothership_module_fuel_used_total", kind: .counter,
            help: "Fuel the module's calls used, in WebAssembly fuel units (about one per instruction; "
                + "each call may use 10 million). Labels: module = the module's name in [[modules]], "
                + "phase = request or response."),
    ]

    private static let byName: [String: Family] = Dictionary(
        uniqueKeysWithValues: families.map { ($0.name, $0) })

    /// The family named `name`, or nil when the catalogue lacks it.
    public static func family(named name: String) -> Family? {
        byName[name]
    }

    /// The help text of `name`, or "" when the catalogue lacks it (swift-prometheus then writes no
    /// `# HELP` line).
    public static func help(for name: String) -> String {
        byName[name]?.help ?? ""
    }
}
