import NIOCore
import NIOPosix
import ShipManifest
import Supervision

/// Checks `[[mothership.uplinks]]` over SwiftNIO before launch (and for `mothership preflight`).
///
/// Each URL is expanded (`$VAR`, `${VAR}`, `${VAR:-default}`) and parsed by `UplinkTarget`. Every
/// distinct `host:port` is checked once, all of them in parallel, and the result is shared by every
/// uplink on it:
/// - database, cache and `tcp://` schemes: a TCP connect;
/// - `http://`: a GET of the URL's path; any status below 500 is up;
/// - `https://`: a TCP connect only, since this target has no TLS (NIOSSL) yet; a listening port is
///   reported as up even if the TLS handshake or the response would fail.
///
/// When uplinks on one endpoint differ, the endpoint gets the strongest check among them (an HTTP GET
/// if any is plain `http://`) with the longest timeout; each uplink then reads the shared outcome with
/// its own rules: a TCP uplink is up once the connection was made, an HTTP one needs a status below
/// 500, and an answer slower than the uplink's own timeout counts as timed out.
///
/// Errors read as operator messages ("connection refused", "timed out after 5s", "no such host
/// 'db.internal'", "HTTP 503"); a password in a URL never appears in a report.
public struct NIOUplinkCheck: UplinkCheck {
    private let connector: ProbeConnector

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.connector = ProbeConnector(group: group)
    }

    public func check(_ uplinks: [Uplink], environment: [String: String]) async -> [UplinkReport] {
        let plans = uplinks.map { UplinkPlan($0, environment: environment) }
        let probes = SharedProbe.plan(uplinks: uplinks, plans: plans)
        let connector = self.connector
        let outcomes = await withTaskGroup(of: (String, ProbeOutcome).self) { group in
            for probe in probes {
                group.addTask { (probe.endpoint, await probe.run(with: connector)) }
            }
            var outcomes: [String: ProbeOutcome] = [:]
            for await (endpoint, outcome) in group { outcomes[endpoint] = outcome }
            return outcomes
        }
        return zip(uplinks, plans).map { uplink, plan in
            switch plan {
            case .invalid(let address, let error):
                return UplinkReport(name: uplink.name, address: address, error: error, latency: .zero)
            case .target(let target):
                let outcome =
                    outcomes[target.endpoint] ?? ProbeOutcome(result: .failure(.cancelled), latency: .zero)
                return UplinkReport(
                    name: uplink.name, address: target.endpoint,
                    error: outcome.error(for: target, timeout: uplink.timeout), latency: outcome.latency)
            }
        }
    }
}

/// An uplink after expansion and parsing: a target to check, or the reason it cannot be checked.
enum UplinkPlan {
    case target(UplinkTarget)
    case invalid(address: String, error: String)

    init(_ uplink: Uplink, environment: [String: String]) {
        // The URL as written is shown (redacted), never the expansion: variables may hold secrets.
        let address = UplinkTarget.redact(uplink.url)
        let expansion = EnvironmentExpansion(expanding: uplink.url, environment: environment)
        if !expansion.undefined.isEmpty {
            let names = expansion.undefined.map { "'\($0)'" }.joined(separator: ", ")
            let error =
                expansion.undefined.count == 1
                ? "environment variable \(names) is not set" : "environment variables \(names) are not set"
            self = .invalid(address: address, error: error)
            return
        }
        do {
            self = .target(try UplinkTarget(parsing: expansion.value))
        } catch {
            self = .invalid(address: address, error: error.description)
        }
    }
}

/// One check of one endpoint, shared by every uplink on it.
struct SharedProbe: Sendable {
    var endpoint: String
    var target: UplinkTarget
    var timeout: Duration

    /// One probe per distinct endpoint, in order of first appearance.
    static func plan(uplinks: [Uplink], plans: [UplinkPlan]) -> [SharedProbe] {
        var probes: [SharedProbe] = []
        var index: [String: Int] = [:]
        for (uplink, plan) in zip(uplinks, plans) {
            guard case .target(let target) = plan else { continue }
            guard let existing = index[target.endpoint] else {
                index[target.endpoint] = probes.count
                probes.append(SharedProbe(endpoint: target.endpoint, target: target, timeout: uplink.timeout))
                continue
            }
            probes[existing].timeout = max(probes[existing].timeout, uplink.timeout)
            if target.sendsRequest, !probes[existing].target.sendsRequest { probes[existing].target = target }
        }
        return probes
    }

    func run(with connector: ProbeConnector) async -> ProbeOutcome {
        let endpoint = ProbeEndpoint.tcp(host: target.host, port: target.port)
        var request: ProbeRequest?
        if case .httpGet(tls: false, let path) = target.check {
            let bareHost = target.host.contains(":") ? "[\(target.host)]" : target.host
            request = ProbeRequest(path: path, host: target.port == 80 ? bareHost : target.endpoint)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let result = await connector.run(endpoint, request: request, timeout: timeout)
        return ProbeOutcome(result: result, latency: start.duration(to: clock.now))
    }
}

/// What one endpoint's check found, and how long it took.
struct ProbeOutcome: Sendable {
    var result: ProbeResult
    var latency: Duration

    /// The outcome as seen by one uplink on the endpoint: nil when up.
    func error(for target: UplinkTarget, timeout: Duration) -> String? {
        switch result {
        case .failure(.timedOut):
            return ProbeFailure.timedOut(timeout).description
        case .failure(let failure):
            return failure.description
        case .success(let status):
            if latency > timeout { return ProbeFailure.timedOut(timeout).description }
            if target.sendsRequest, let status, status >= 500 { return "HTTP \(status)" }
            return nil
        }
    }
}

extension UplinkTarget {
    /// Whether the check is an HTTP GET this target can send (plain HTTP; https is a TCP connect).
    var sendsRequest: Bool {
        if case .httpGet(tls: false, _) = check { return true }
        return false
    }
}
