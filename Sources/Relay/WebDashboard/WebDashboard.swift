import NIOCore
import NIOHTTP1

/// The web dashboard on the metrics listener (SPEC §12.6): its settings, the console it reads and
/// acts through, and the open `/events` streams.
public final class WebDashboard: Sendable {
    let console: any WebConsole
    let settings: WebDashboardSettings
    let streams: EventStreams
    let page: String

    public init(console: any WebConsole, settings: WebDashboardSettings) {
        self.console = console
        self.settings = settings
        streams = EventStreams(console: console, settings: settings)
        page = WebAssets.page(actions: settings.actions)
    }

    /// Open `/events` streams right now.
    public var openStreams: Int { streams.count }

    /// Headers every dashboard answer carries.
    static func addSecurityHeaders(to headers: inout HTTPHeaders) {
        headers.add(name: "Content-Security-Policy", value: WebAssets.contentSecurityPolicy)
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
        headers.add(name: "X-Frame-Options", value: "DENY")
    }

    /// The answer to a route that is not a stream: at once, or after the console answered.
    enum Answer {
        case now(MetricsResponse)
        case later(@Sendable () async -> MetricsResponse)
        case stream
    }

    func answer(_ route: WebRoute) -> Answer {
        switch route {
        case .page: return .now(Self.ok("text/html; charset=utf-8", page))
        case .script: return .now(Self.ok("text/javascript; charset=utf-8", WebAssets.script))
        case .style: return .now(Self.ok("text/css; charset=utf-8", WebAssets.style))
        case .events: return .stream
        case .refused(let status, let message): return .now(Self.error(status, message))
        case .logs(let vessel):
            return .later { [console] in
                guard let tail = await console.logTail(of: vessel) else {
                    return Self.error(.notFound, "no vessel named '\(vessel)'")
                }
                return Self.ok("application/json", tail)
            }
        case .command(let command):
            return .later { [console] in
                let answer = await console.perform(command)
                let status =
                    (100...599).contains(answer.status)
                    ? HTTPResponseStatus(statusCode: answer.status) : .internalServerError
                return MetricsResponse(status: status, contentType: "application/json", body: answer.body)
            }
        }
    }

    static func ok(_ contentType: String, _ body: String) -> MetricsResponse {
        MetricsResponse(status: .ok, contentType: contentType, body: body)
    }

    static func error(_ status: HTTPResponseStatus, _ message: String) -> MetricsResponse {
        var escaped = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20:
                escaped +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return MetricsResponse(
            status: status, contentType: "application/json", body: #"{"error":""# + escaped + "\"}")
    }
}
