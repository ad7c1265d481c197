import NIOCore
import NIOHTTP1

/// Answers each request on one metrics connection from `MetricsRoutes`, after its `.end`.
///
/// Sits behind `configureHTTPServerPipeline` (pipelining assistance and protocol error handling:
/// a malformed request gets `400` and the connection closes). Request bodies are read and dropped.
/// Keep-alive follows the request (`HTTP/1.1` unless `Connection: close`; `HTTP/1.0` only with
/// `Connection: keep-alive`); a connection idle for `idleTimeout` is closed.
final class MetricsRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: MetricsRoutes
    private let dashboard: WebDashboard?
    private var request: HTTPRequestHead?
    /// An `/events` stream is open: the connection belongs to `EventStreams` until it closes.
    private var streaming = false

    init(routes: MetricsRoutes, dashboard: WebDashboard? = nil) {
        self.routes = routes
        self.dashboard = dashboard
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request, !streaming else { return }
            request = nil
            if let dashboard,
                let route = WebRoute(
                    method: head.method, uri: head.uri, headers: head.headers, settings: dashboard.settings)
            {
                answer(route, of: dashboard, to: head, context: context)
            } else {
                respond(to: head, with: routes.response(method: head.method, uri: head.uri), context: context)
            }
        }
    }

    private func answer(
        _ route: WebRoute, of dashboard: WebDashboard, to head: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        switch dashboard.answer(route) {
        case .now(let response):
            respond(to: head, with: response, context: context)
        case .later(let work):
            let promise = context.eventLoop.makePromise(of: MetricsResponse.self)
            promise.completeWithTask { await work() }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                self.respond(to: head, with: response, context: context)
            }
        case .stream:
            // Counted before its head is written: a client that has one stream's head and asks for
            // another (on another event loop) finds the first one counted. Checked apart from the
            // count, a request could pass the check before the last admission, get a 200 head, and
            // only then be refused.
            guard dashboard.streams.admit(context.channel) else {
                let full = WebDashboard.error(
                    .serviceUnavailable, "too many dashboards open; try again later")
                respond(to: head, with: full, context: context)
                return
            }
            streaming = true
            openStream(context: context)
        }
    }

    /// Writes the head of an admitted `/events` response. The stream's events, sent from the
    /// dashboard's poll (off this event loop), reach the channel after it.
    private func openStream(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        WebDashboard.addSecurityHeaders(to: &headers)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
            promise: nil)
        // Browsers wait this long before reconnecting after a drop.
        let retry = context.channel.allocator.buffer(string: "retry: 2000\n\n")
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(retry))), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if streaming { dashboard?.streams.remove(context.channel) }
        context.fireChannelInactive()
    }

    private func respond(
        to head: HTTPRequestHead, with response: MetricsResponse, context: ChannelHandlerContext
    ) {
        let keepAlive = head.isKeepAlive
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if let allow = response.allow { headers.add(name: "Allow", value: allow) }
        if dashboard != nil { WebDashboard.addSecurityHeaders(to: &headers) }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if head.version.major == 1, head.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let version = head.version.major == 1 ? head.version : .http1_1
        context.write(
            wrapOutboundOut(
                .head(HTTPResponseHead(version: version, status: response.status, headers: headers))),
            promise: nil)
        if head.method != .HEAD, !response.body.isEmpty {
            let body = context.channel.allocator.buffer(string: response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // A stream is quiet on the reading side by design; the heartbeat keeps it alive.
            if !streaming { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parser errors were already answered with 400 by `HTTPServerProtocolErrorHandler`; any
        // error ends the connection, never the server.
        context.close(promise: nil)
    }
}
