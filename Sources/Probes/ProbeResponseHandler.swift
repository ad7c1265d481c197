import NIOCore
import NIOHTTP1

/// Sends the probe's GET once connected and completes the promise with the response's status code
/// (from its head; the body is not read), or with the reason the exchange broke off.
final class ProbeResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let request: ProbeRequest
    private let endpoint: ProbeEndpoint
    private let timeout: Duration
    private let promise: EventLoopPromise<ProbeResult>

    init(
        request: ProbeRequest, endpoint: ProbeEndpoint, timeout: Duration,
        promise: EventLoopPromise<ProbeResult>
    ) {
        self.request = request
        self.endpoint = endpoint
        self.timeout = timeout
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        let headers = HTTPHeaders([
            ("Host", request.host), ("User-Agent", "mothership-probe"), ("Accept", "*/*"),
            ("Connection", "close"),
        ])
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: request.path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let code = Int(head.status.code)
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..<200).contains(code), code != 101 { return }
        promise.succeed(.success(code))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(.failure(ProbeFailure(error, endpoint: endpoint, timeout: timeout)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(.failure(.closedWithoutResponse))
        context.fireChannelInactive()
    }
}
