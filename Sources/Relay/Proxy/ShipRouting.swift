import NIOCore
import ShipManifest

/// SPEC §4 from the route table on, for a request the earlier steps let through: the route, then
/// the ship's readiness and its circuit breaker, as `ClientConnection` takes it.
enum ShipRouting {
    /// The relay answers (404 without a route; 503 for a ship not ready or an open circuit),
    /// counted under the route's entry when there is one.
    case answer(LocalResponse, entry: RouteEntry?)
    /// A bay's route.
    case bay(RouteEntry, BayBerth)
    /// To the ship through its breaker; `isTrial`: the half-open breaker's one request.
    case ship(RouteEntry, ShipBreaker, isTrial: Bool)

    /// Decides for `head` (whose path is `path`) on `settings`' listener; `kind` is the User-Agent
    /// class when the route table had to work it out. Admits the request to the ship's breaker
    /// when it goes to the ship.
    @inline(__always)
    static func decide(path: Substring, head: MessageHead, settings: ListenerSettings)
        -> (routing: ShipRouting, kind: UserAgentKind?)
    {
        let userAgent = settings.routes.filtersUserAgents ? head.value(of: .userAgent) : nil
        guard let (entry, kind) = settings.routes.match(path: path, userAgent: userAgent) else {
            return (.answer(.notFound(), entry: nil), nil)
        }
        guard let gate = entry.shipGate else {
            guard case .bay(let berth) = entry.target else { preconditionFailure("a route without a target") }
            return (.bay(entry, berth), kind)
        }
        guard gate.isOpen else { return (.answer(.notReady(ship: entry.ship), entry: entry), kind) }
        let breaker = gate.breaker
        switch breaker.admit() {
        case .reject(let retryAfter):
            let seconds = CircuitBreaker.retryAfterSeconds(retryAfter)
            return (.answer(.circuitOpen(ship: entry.ship, retryAfter: seconds), entry: entry), kind)
        case .trial:
            return (.ship(entry, breaker, isTrial: true), kind)
        case .allow:
            return (.ship(entry, breaker, isTrial: false), kind)
        }
    }

    /// The route's entry, when a route matched.
    var entry: RouteEntry? {
        switch self {
        case .answer(_, let entry): entry
        case .bay(let entry, _), .ship(let entry, _, _): entry
        }
    }

    /// The head sent to `entry`'s ship: `strip_prefix` applied to `target`, an absolute form's
    /// authority as its `Host`, the forwarding headers for `client`, a request id from `requestIDs`
    /// when the client sent none.
    static func writeShipHead(
        _ head: MessageHead, target: RequestTarget, entry: RouteEntry, client: HeadWriter.Client,
        requestIDs: inout RequestIDGenerator, into buffer: inout ByteBuffer
    ) {
        HeadWriter.upstreamRequest(
            head,
            target: entry.stripsPrefix || target.authority != nil
                ? ClientConnection.forwardedTarget(target, route: entry.route) : nil,
            host: target.authority, client: client, requestID: { requestIDs.write(into: &$0) },
            startMicroseconds: ClientConnection.microsecondsSinceEpoch(), into: &buffer)
    }
}
