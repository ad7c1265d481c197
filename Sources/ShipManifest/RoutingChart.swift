/// The routing chart (`mothership chart`): for each listener, its address and options, its routes in
/// match order with their targets, the static directories that apply to it and the modules.
public struct RoutingChart: Sendable {
    public let manifest: Manifest

    public init(manifest: Manifest) {
        self.manifest = manifest
    }

    /// Plain text; with `color`, names and targets are highlighted with ANSI escapes.
    public func render(color: Bool = false) -> String {
        let style = Style(enabled: color)
        var lines: [String] = []
        let settings = manifest.settings
        lines.append(style.bold("Routing chart for '\(settings.name)'"))
        if settings.listeners.isEmpty {
            lines.append("")
            lines.append("No binds declared: [mothership.bind] is empty, so nothing is exposed.")
        }
        for listener in settings.listeners {
            lines.append("")
            lines.append(header(for: listener, style: style))
            lines.append(contentsOf: staticLines(for: listener.name))
            lines.append(contentsOf: routeLines(for: listener.name, style: style))
            lines.append(contentsOf: moduleLines())
        }
        let unrouted = manifest.vessels.filter { $0.routes.isEmpty }
        if !unrouted.isEmpty {
            lines.append("")
            lines.append(style.bold("Not routed") + " (no routes; supervised only):")
            for vessel in unrouted {
                var text = "  \(vessel.name)  \(vessel.kind.rawValue), \(vessel.group)"
                if let bind = vessel.bind { text += ", serves \(bind)" }
                text += Self.workers(of: vessel)
                if vessel.oneshot { text += ", oneshot" }
                lines.append(text)
            }
        }
        if !manifest.filteredOut.isEmpty {
            lines.append("")
            lines.append("Left out by the tag filter: \(manifest.filteredOut.joined(separator: ", "))")
        }
        var extras: [String] = []
        if settings.compression { extras.append("compression on (br, gzip, deflate)") }
        if let cors = settings.corsCache {
            extras.append(
                "CORS preflight cache on (ttl \(DurationText.format(cors.defaultTTL)), \(cors.maxEntries) entries)"
            )
        }
        if let limits = settings.rateLimiting {
            var parts: [String] = []
            if let rps = limits.globalRequestsPerSecond { parts.append("\(Self.number(rps)) req/s overall") }
            if let rpm = limits.perIPRequestsPerMinute {
                parts.append("\(Self.number(rpm)) req/min per client")
            }
            if !parts.isEmpty { extras.append("rate limit: " + parts.joined(separator: ", ")) }
        }
        if let port = settings.metricsPort { extras.append("metrics on http://127.0.0.1:\(port)/metrics") }
        if !extras.isEmpty {
            lines.append("")
            lines.append(contentsOf: extras)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func header(for listener: Listener, style: Style) -> String {
        var options: [String] = []
        if let tls = listener.tls { options.append("tls (cert \(tls.certificate))") }
        if listener.proxyProtocol {
            options.append(
                listener.trustedProxies.isEmpty
                    ? "proxy_protocol (any source)"
                    : "proxy_protocol (from \(listener.trustedProxies.map(\.description).joined(separator: ", ")))"
            )
        }
        let scheme = listener.tls == nil ? "" : "https "
        var text = "bind " + style.bold(listener.name) + "  \(scheme)\(listener.address)"
        if !options.isEmpty { text += "  [" + options.joined(separator: "; ") + "]" }
        return text
    }

    private func staticLines(for bind: String) -> [String] {
        let directories = manifest.settings.staticDirectories
            .filter { $0.bind == nil || $0.bind == bind }
            .sorted { $0.prefix.count > $1.prefix.count }
        guard !directories.isEmpty else { return [] }
        return ["  static files (longest prefix first, missing files fall through to routes):"]
            + directories.map { directory in
                let padding = String(
                    repeating: " ", count: directories[0].prefix.count - directory.prefix.count)
                return "    \(directory.prefix)\(padding)  -> \(directory.path)"
            }
    }

    private func routeLines(for bind: String, style: Style) -> [String] {
        let table = manifest.routes(for: bind)
        guard !table.isEmpty else { return ["  routes: none (every request is answered 404)"] }
        let rows: [[String]] = table.enumerated().map { index, entry in
            let route = entry.route
            var conditions: [String] = []
            if let filter = route.userAgentFilter { conditions.append("ua=\(filter)") }
            if let strip = route.stripPrefix { conditions.append("strip \(strip)") }
            return [
                "\(index + 1).", route.pattern.source, conditions.joined(separator: " "),
                target(entry.vessel, style: style),
            ]
        }
        var widths = [0, 0, 0]
        for row in rows {
            for column in 0..<3 { widths[column] = max(widths[column], row[column].count) }
        }
        return ["  routes (first match wins):"]
            + rows.map { row in
                var text = "    "
                for column in 0..<3 where widths[column] > 0 {
                    text +=
                        row[column] + String(repeating: " ", count: widths[column] - row[column].count) + "  "
                }
                return text + "-> " + row[3]
            }
    }

    /// `, 2 workers on 127.0.0.1:3000-3001 (3002-3003 while restarting)`, or nothing.
    static func workers(of vessel: Vessel) -> String {
        guard vessel.restartsInPhases, let count = vessel.workers else { return "" }
        let noun = count == 1 ? "worker" : "workers"
        let first = vessel.instanceAddress(slot: 0, generation: 0)
        let last = vessel.instanceAddress(slot: count - 1, generation: 0)
        let spare = (
            vessel.instanceAddress(slot: 0, generation: 1),
            vessel.instanceAddress(slot: count - 1, generation: 1)
        )
        switch (first, last, spare) {
        case (.tcp(let host, let low)?, .tcp(_, let high)?, (.tcp(_, let spareLow)?, .tcp(_, let spareHigh)?)):
            let range = { (a: Int, b: Int) in a == b ? "\(a)" : "\(a)-\(b)" }
            return
                ", \(count) \(noun) on \(host):\(range(low, high)) (\(range(spareLow, spareHigh)) while restarting)"
        case (.unix(let path)?, _, _):
            return ", \(count) \(noun) on \(path.dropLast(4)).N.0 and .N.1"
        default:
            return ", \(count) \(noun)"
        }
    }

    private func target(_ vessel: Vessel, style: Style) -> String {
        switch vessel.kind {
        case .ship:
            let address = vessel.bind.map(\.description) ?? "no bind: 502"
            return "ship " + style.cyan(vessel.name) + " (\(address)\(Self.workers(of: vessel)))"
        case .bay:
            return "bay " + style.cyan(vessel.name) + " (docking socket \(vessel.name).sock)"
        }
    }

    private func moduleLines() -> [String] {
        guard !manifest.modules.isEmpty else { return [] }
        return ["  payloads (in this order):"]
            + manifest.modules.map { module in
                let routes =
                    module.routes.isEmpty
                    ? "no routes (sees nothing)" : module.routes.map(\.source).joined(separator: ", ")
                return
                    "    \(module.name)  \(module.phase.rawValue) phase  on \(routes)  (\(module.wasmPath))"
            }
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    struct Style {
        let enabled: Bool
        func bold(_ text: String) -> String { enabled ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
        func cyan(_ text: String) -> String { enabled ? "\u{1B}[36m\(text)\u{1B}[0m" : text }
    }
}
