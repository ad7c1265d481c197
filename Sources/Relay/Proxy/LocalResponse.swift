import NIOCore
import NIOHTTP1

/// A response the relay answers itself (no route, ship not ready, upstream failure, bad request).
struct LocalResponse {
    var status: HTTPResponseStatus
    var message: String
    var retryAfterSeconds: Int?
    /// `Location` of a redirect.
    var location: String?

    static func notFound() -> LocalResponse {
        LocalResponse(status: .notFound, message: "no route matches this path")
    }

    static func notReady(ship: String) -> LocalResponse {
        LocalResponse(
            status: .serviceUnavailable, message: "ship '\(ship)' is not ready", retryAfterSeconds: 1)
    }

    static func circuitOpen(ship: String, retryAfter: Int) -> LocalResponse {
        LocalResponse(
            status: .serviceUnavailable, message: "ship '\(ship)' is failing; circuit open",
            retryAfterSeconds: retryAfter)
    }

    static func bayNotDocked(bay: String) -> LocalResponse {
        LocalResponse(
            status: .serviceUnavailable,
            message: "bay '\(bay)' is not docked",
            retryAfterSeconds: 1)
    }

    static func rateLimited(retryAfter: Int) -> LocalResponse {
        LocalResponse(
            status: .tooManyRequests, message: "rate limit exceeded", retryAfterSeconds: retryAfter)
    }

    /// A static directory asked for without its trailing slash (as nginx answers it): relative
    /// links in its `index.html` resolve against the slashed path.
    static func slashRedirect(to location: String) -> LocalResponse {
        LocalResponse(status: .movedPermanently, message: "moved to \(location)", location: location)
    }

    static func outsideStaticDirectory() -> LocalResponse {
        LocalResponse(status: .forbidden, message: "path leaves the static directory")
    }

    static func badGateway(ship: String, reason: String) -> LocalResponse {
        LocalResponse(status: .badGateway, message: "ship '\(ship)': \(reason)")
    }

    static func gatewayTimeout(ship: String, reason: String) -> LocalResponse {
        LocalResponse(status: .gatewayTimeout, message: "ship '\(ship)': \(reason)")
    }

    /// The head, with `Content-Length`, a plain-text type and, when set, `Retry-After`.
    func head(version: HTTPVersion, close: Bool, bodyLength: Int) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(bodyLength))
        headers.add(name: "Server", value: "mothership")
        if let retryAfterSeconds { headers.add(name: "Retry-After", value: String(retryAfterSeconds)) }
        if let location { headers.add(name: "Location", value: location) }
        if close { headers.add(name: "Connection", value: "close") }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }

    /// `"503 Service Unavailable: ship 'web' is not ready\n"`.
    var body: String { "\(status.code) \(status.reasonPhrase): \(message)\n" }
}
