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
    private var request: HTTPRequestHead?

    init(routes: MetricsRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let response = routes.response(method: head.method, uri: head.uri)
        let keepAlive = head.isKeepAlive
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if let allow = response.allow { headers.add(name: "Allow", value: allow) }
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
            context.close(promise: nil)
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
