import NIOHTTP1

/// What the dashboard does with one request on the metrics listener: a plain value, decided without
/// I/O from the method, the path and three headers (`Host`, `Origin`, `X-Mothership-Token`).
///
/// Every dashboard path is answered only for a loopback `Host` (a page on another site that rebinds
/// its name to 127.0.0.1 gets 403), and only without an `Origin` or with the page's own
/// (`http://` + `Host`, so an SSH tunnel on another local port works). Actions need POST, actions
/// on, and the token, compared in constant time.
enum WebRoute: Equatable {
    case page
    case script
    case style
    case events
    case logs(vessel: String)
    case command(WebCommand)
    case refused(HTTPResponseStatus, String)

    static let tokenHeader = "X-Mothership-Token"

    /// nil: not a dashboard path (`/metrics`, `/health` and 404s are the metrics routes').
    init?(
        method: HTTPMethod, uri: String, headers: HTTPHeaders, settings: WebDashboardSettings
    ) {
        let path = uri.prefix { $0 != "?" && $0 != "#" }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let wanted: WebRoute
        let isAction: Bool
        switch parts {
        case [""], ["index.html"]: (wanted, isAction) = (.page, false)
        case ["dashboard.js"]: (wanted, isAction) = (.script, false)
        case ["dashboard.css"]: (wanted, isAction) = (.style, false)
        case ["events"]: (wanted, isAction) = (.events, false)
        case ["api", "reload"]: (wanted, isAction) = (.command(.reload), true)
        case let parts
        where parts.count == 4 && parts[0] == "api" && parts[1] == "vessels" && !parts[2].isEmpty:
            let name = parts[2]
            switch parts[3] {
            case "logs": (wanted, isAction) = (.logs(vessel: name), false)
            case "restart": (wanted, isAction) = (.command(.restart(name)), true)
            case "stop": (wanted, isAction) = (.command(.stop(name)), true)
            case "start": (wanted, isAction) = (.command(.start(name)), true)
            default: return nil
            }
        default: return nil
        }
        guard let host = headers.first(name: "Host"), Self.isLoopback(host: host) else {
            self = .refused(.forbidden, "the dashboard answers only on 127.0.0.1 or localhost")
            return
        }
        if let origin = headers.first(name: "Origin"), origin.lowercased() != "http://" + host.lowercased() {
            self = .refused(.forbidden, "cross-origin requests are refused")
            return
        }
        if isAction {
            guard method == .POST else {
                self = .refused(.methodNotAllowed, "use POST")
                return
            }
            guard settings.actions else {
                self = .refused(.forbidden, "actions are off ([mothership.dashboard] actions = true)")
                return
            }
            guard let token = headers.first(name: Self.tokenHeader), Self.same(token, settings.token) else {
                self = .refused(.forbidden, "missing or wrong \(Self.tokenHeader)")
                return
            }
        } else if method != .GET && method != .HEAD {
            self = .refused(.methodNotAllowed, "use GET")
            return
        }
        self = wanted
    }

    /// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
    static func isLoopback(host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            guard let end = name.firstIndex(of: "]") else { return false }
            let rest = name[name.index(after: end)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isNumber)) else {
                return false
            }
            return name[...end] == "[::1]"
        }
        if let colon = name.firstIndex(of: ":") {
            guard name[name.index(after: colon)...].allSatisfy(\.isNumber) else { return false }
            name = name[..<colon]
        }
        return name == "127.0.0.1" || name == "localhost"
    }

    /// Equal strings, in time that depends only on their lengths.
    static func same(_ given: String, _ expected: String) -> Bool {
        let lhs = Array(given.utf8)
        let rhs = Array(expected.utf8)
        var difference = UInt8(lhs.count == rhs.count ? 0 : 1)
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0
    }
}
