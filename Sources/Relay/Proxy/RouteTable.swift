import Metrics
import NIOCore
import ShipManifest

/// Where a route sends its requests.
enum RouteTarget: Sendable {
    /// A ship listening on TCP or a Unix socket.
    case ship(index: Int, address: BindAddress, gate: ShipGate)
    /// A bay: WebSockets reach it through the docking protocol.
    case bay(BayBerth)
}

/// One compiled route: the manifest's route plus everything the hot path needs, resolved once.
/// A class: a match hands out one reference instead of copying (and retaining) every field.
final class RouteEntry: Sendable {
    let route: Route
    let ship: String
    let target: RouteTarget
    /// `mothership_requests_total{route, ship}`.
    let requests: Counter
    /// `mothership_request_duration_seconds{route, ship}`.
    let duration: RequestDurationHistogram
    /// Facts about `route` the hot path asks for, stored flat: reading them through `route` copies
    /// the route (and retains each of its strings) per request.
    let matchesEveryPath: Bool
    let hasUserAgentFilter: Bool
    let stripsPrefix: Bool
    /// A ship target's gate and index, flat for the same reason (matching on `target` copies the
    /// address's strings out per request); nil and -1 for a bay.
    let shipGate: ShipGate?
    let shipIndex: Int
    /// The ship's `request_timeout` (nil: the relay's `first_byte_timeout`), and whether a request
    /// that times out has its instance replaced (`recycle_stuck`).
    let requestTimeout: TimeAmount?
    let recycleStuck: Bool

    init(
        route: Route, ship: String, target: RouteTarget, requests: Counter,
        duration: RequestDurationHistogram,
        requestTimeout: Duration? = nil, recycleStuck: Bool = false
    ) {
        self.requestTimeout = requestTimeout.map {
            .nanoseconds(
                Int64($0.components.seconds) * 1_000_000_000
                    + Int64($0.components.attoseconds / 1_000_000_000))
        }
        self.recycleStuck = recycleStuck
        self.route = route
        self.ship = ship
        self.target = target
        self.requests = requests
        self.duration = duration
        self.matchesEveryPath = route.pattern.matchesEveryPath
        self.hasUserAgentFilter = route.userAgentFilter != nil
        self.stripsPrefix = route.stripPrefix != nil
        if case .ship(let index, _, let gate) = target {
            (self.shipGate, self.shipIndex) = (gate, index)
        } else {
            (self.shipGate, self.shipIndex) = (nil, -1)
        }
    }
}

/// The routes of one bind in manifest declaration order; the first whose pattern matches the whole
/// path and whose User-Agent filter accepts the request wins.
struct RouteTable {
    let entries: [RouteEntry]
    /// Whether any route has a User-Agent filter (otherwise the User-Agent is never classified).
    let filtersUserAgents: Bool

    init(entries: [RouteEntry]) {
        self.entries = entries
        self.filtersUserAgents = entries.contains { $0.route.userAgentFilter != nil }
    }

    /// The winning route for `path`, and the User-Agent class when it had to be computed.
    func match(path: Substring, userAgent: String?) -> (entry: RouteEntry, kind: UserAgentKind?)? {
        var kind: UserAgentKind?
        for entry in entries where entry.matchesEveryPath || entry.route.pattern.matches(path) {
            guard entry.hasUserAgentFilter, let filter = entry.route.userAgentFilter else {
                return (entry, kind)
            }
            let classified = kind ?? UserAgentKind(userAgent: userAgent)
            kind = classified
            if filter.accepts(userAgent: userAgent, kind: classified) { return (entry, kind) }
        }
        return nil
    }
}

extension RouteTable {
    /// The route table of `bind`, resolving each target ship's address and gate. Ships without a
    /// `bind` cannot be proxied to and are left out (clearance warns about them).
    static func build(
        bind: String, manifest: Manifest, directory: UpstreamDirectory, bays: BayDirectory? = nil,
        durations: RequestDurations = RequestDurations()
    ) -> RouteTable {
        var entries: [RouteEntry] = []
        // Without the fleet's berths (a relay on its own), bays are never docked: their routes answer 503.
        let bays = bays ?? BayDirectory(bays: manifest.bays)
        for (route, vessel) in manifest.routes(for: bind) {
            let target: RouteTarget
            if vessel.kind == .bay {
                guard let berth = bays.berth(for: vessel.name) else { continue }
                target = .bay(berth)
            } else if let address = vessel.bind {
                let gate = directory.gate(for: vessel.name)
                gate.adopt(address: address)
                target = .ship(index: gate.index, address: address, gate: gate)
            } else {
                continue
            }
            let dimensions = [("route", route.pattern.source), ("ship", vessel.name)]
            entries.append(
                RouteEntry(
                    route: route, ship: vessel.name, target: target,
                    requests: Counter(label: "mothership_requests_total", dimensions: dimensions),
                    duration: durations.histogram(route: route.pattern.source, ship: vessel.name),
                    requestTimeout: vessel.requestTimeout, recycleStuck: vessel.recycleStuck))
        }
        return RouteTable(entries: entries)
    }
}
