import NIOHTTP1

/// What the metrics endpoint answers to one request: a plain value, decided without I/O.
struct MetricsResponse: Sendable, Equatable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String
    /// Set on 405 answers.
    var allow: String?
}

/// The metrics endpoint's two routes: `/metrics` (Prometheus text) and `/health` (JSON).
struct MetricsRoutes: Sendable {
    static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    var metrics: @Sendable () -> String
    var health: @Sendable () -> (status: Int, body: String)

    /// GET and HEAD are served (HEAD gets GET's headers; the caller drops the body); an unknown path
    /// is 404 whatever the method; another method on a known path is 405 with `Allow`.
    func response(method: HTTPMethod, uri: String) -> MetricsResponse {
        let path = uri.prefix { $0 != "?" && $0 != "#" }
        guard path == "/metrics" || path == "/health" else {
            return MetricsResponse(
                status: .notFound, contentType: "text/plain; charset=utf-8", body: "not found\n")
        }
        guard method == .GET || method == .HEAD else {
            return MetricsResponse(
                status: .methodNotAllowed, contentType: "text/plain; charset=utf-8",
                body: "method not allowed\n", allow: "GET, HEAD")
        }
        if path == "/metrics" {
            return MetricsResponse(status: .ok, contentType: Self.prometheusContentType, body: metrics())
        }
        let answer = health()
        let status =
            (100...599).contains(answer.status)
            ? HTTPResponseStatus(statusCode: answer.status) : .internalServerError
        return MetricsResponse(status: status, contentType: "application/json", body: answer.body)
    }
}
