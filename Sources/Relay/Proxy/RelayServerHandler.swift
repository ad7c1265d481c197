import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// One client connection of a relay listener: reads requests, answers locally or proxies each to the
/// ship its route names over a pooled keep-alive connection on the same event loop, streaming
/// bodies both ways with backpressure, and turns an accepted `Upgrade` into a byte tunnel.
///
/// The order of SPEC §4 is visible in `received(head:)`; everything else is plumbing.
final class RelayServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let settings: ListenerSettings
    let loop: LoopContext
    var context: ChannelHandlerContext?
    /// The client's address: the peer, or what a PROXY protocol header said.
    var clientAddress: String?

    enum State {
        /// Waiting for the next request head.
        case idle
        /// Answered locally; the rest of the request body is discarded until its end.
        case answered(close: Bool)
        /// Proxying to a ship.
        case proxying(Exchange)
        /// Bytes flow through a tunnel; this handler is on its way out of the pipeline.
        case tunnelled
        case closed
    }
    var state = State.idle
    var readsPaused = false
    var pendingRead = false
    var watchdog = Watchdog()
    /// Parts of pipelined requests that arrived before the current response was finished.
    var queued: [HTTPServerRequestPart] = []
    var draining = false

    /// Re-armed whenever the connection waits for a new request line.
    let lineGuard: RequestLineGuard?

    init(settings: ListenerSettings, loop: LoopContext, lineGuard: RequestLineGuard? = nil) {
        self.settings = settings
        self.loop = loop
        self.lineGuard = lineGuard
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress
        watch(for: settings.limits.headerReadTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watchdog.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A pipelined request arriving while the previous one is still being answered waits its
        // turn, and reading stops until it is taken (no read holding in the common case).
        if !queued.isEmpty || !accepts(part) {
            queued.append(part)
            readsPaused = true
            return
        }
        dispatch(part, context: context)
    }

    private func dispatch(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head): received(head: head, context: context)
        case .body(let body): received(body: body)
        case .end(let trailers): receivedEnd(trailers: trailers, context: context)
        }
    }

    /// Whether `part` belongs to the request being handled now (or can be dropped at once).
    private func accepts(_ part: HTTPServerRequestPart) -> Bool {
        switch state {
        case .proxying(let exchange): !exchange.requestEnded
        case .answered, .idle, .tunnelled, .closed: true
        }
    }

    /// Hands queued pipelined parts on, in order, as far as the current state takes them.
    private func drainQueue() {
        while let context, !queued.isEmpty, accepts(queued[0]) {
            dispatch(queued.removeFirst(), context: context)
        }
        if queued.isEmpty { resumeClientReads() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { exchange.upstream?.flush() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { exchange.abandon() }
        state = .closed
        watchdog.cancel()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .proxying(let exchange) = state {
            exchange.upstream?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ClientAddressEvent {
            clientAddress = event.address.ipAddress
        } else if event is RelayDrainEvent {
            draining = true
            if case .idle = state { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // A malformed request: answer once if nothing is in flight, then close this connection only.
        guard case .idle = state else {
            context.close(promise: nil)
            return
        }
        let response =
            parserError == .headerOverflow
            ? LocalResponse(status: .requestHeaderFieldsTooLarge, message: "request header block too large")
            : LocalResponse(status: .badRequest, message: "malformed request")
        settings.logger.debug(
            "malformed request", metadata: ["client": "\(clientAddress ?? "-")", "error": "\(parserError)"])
        respond(response, version: .http1_1, context: context)
    }

    /// Holds reads from the client while the ship's socket is full.
    func read(context: ChannelHandlerContext) {
        if readsPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    // MARK: Requests

    private func received(head: HTTPRequestHead, context: ChannelHandlerContext) {
        watchdog.clear()
        let limits = settings.limits
        if head.uri.utf8.count > limits.maxRequestLineBytes {
            respond(
                .init(status: .uriTooLong, message: "request line too long"), version: head.version,
                context: context)
            return
        }
        // The decoder's list limit also counts the URI; the header block alone is checked here.
        if Self.headerBlockBytes(head.headers) > limits.maxHeaderBytes {
            respond(
                .init(status: .requestHeaderFieldsTooLarge, message: "request header block too large"),
                version: head.version, context: context)
            return
        }
        // The request decoder stops parsing after an Upgrade (or CONNECT) request: unless the ship
        // switches protocols, nothing more can be read, so the connection closes after the answer.
        let isUpgrade = ForwardedHeaders.isUpgrade(head)
        let close = !head.isKeepAlive || draining || isUpgrade || head.method == .CONNECT
        let path = head.uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { head.uri[..<$0] } ?? head.uri[...]
        let userAgent = settings.routes.filtersUserAgents ? head.headers.first(name: "user-agent") : nil
        guard let (entry, kind) = settings.routes.match(path: path, userAgent: userAgent) else {
            answer(.notFound(), head: head, close: close, context: context)
            return
        }
        if settings.logger.logLevel <= .debug {
            let agentKind = kind ?? UserAgentKind(userAgent: head.headers.first(name: "user-agent"))
            settings.logger.debug(
                "request",
                metadata: [
                    "method": "\(head.method)", "path": "\(path)", "ua_class": "\(agentKind)",
                    "route": "\(entry.route.pattern)", "ship": "\(entry.ship)",
                ])
        }
        guard case .ship(let index, let address, let gate) = entry.target else {
            answer(.bayNotDocked(bay: entry.ship), head: head, close: close, context: context, entry: entry)
            return
        }
        guard gate.isOpen else {
            answer(.notReady(ship: entry.ship), head: head, close: close, context: context, entry: entry)
            return
        }
        let breaker = settings.breakers.breaker(index)
        let admission = breaker.admit()
        if case .reject(let retryAfter) = admission {
            answer(
                .circuitOpen(ship: entry.ship, retryAfter: CircuitBreaker.retryAfterSeconds(retryAfter)),
                head: head, close: close, context: context, entry: entry)
            return
        }
        let uri = forwardedURI(head.uri, path: path, route: entry.route)
        let expectsContinue = ForwardedHeaders.expectsContinue(head)
        let upstreamHead = ForwardedHeaders.upstreamRequest(
            head, uri: uri,
            client: ForwardedHeaders.Client(address: clientAddress, scheme: settings.scheme),
            isUpgrade: isUpgrade, expectsContinue: expectsContinue,
            requestID: { self.loop.requestIDs.next() }, startMicroseconds: Self.microsecondsSinceEpoch())
        let exchange = Exchange(
            owner: self, entry: entry, pool: loop.pool(ship: index, address: address), breaker: breaker,
            head: upstreamHead, clientVersion: head.version, closeClient: close,
            isUpgrade: isUpgrade, isHead: head.method == .HEAD,
            isTrial: admission == .trial)
        state = .proxying(exchange)
        if expectsContinue {
            // The relay takes the expectation on (the ship's own 100 would be dropped by the
            // upstream decoder): the client sends its body now instead of after its own timeout.
            let proceed = HTTPResponseHead(version: head.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(proceed)), promise: nil)
        }
        exchange.start()
    }

    private func received(body: ByteBuffer) {
        switch state {
        case .proxying(let exchange): exchange.forward(.body(.byteBuffer(body)))
        default: break
        }
    }

    private func receivedEnd(trailers: HTTPHeaders?, context: ChannelHandlerContext) {
        switch state {
        case .proxying(let exchange):
            exchange.forward(.end(trailers))
        case .answered(let close):
            if close {
                state = .closed
                context.close(promise: nil)
            } else {
                becomeIdle()
            }
        default:
            break
        }
    }

    /// The URI sent upstream: the path after `strip_prefix`, with the original query.
    private func forwardedURI(_ uri: String, path: Substring, route: Route) -> String {
        guard route.stripPrefix != nil else { return uri }
        let forwarded = route.forwardedPath(for: path)
        if forwarded.count == path.count { return uri }
        return String(forwarded) + uri[path.endIndex...]
    }

    // MARK: Local answers

    /// Answers the request locally (request body, if any, is read and dropped).
    func answer(
        _ response: LocalResponse, head: HTTPRequestHead, close: Bool, context: ChannelHandlerContext,
        entry: RouteEntry? = nil
    ) {
        entry?.requests.increment()
        state = .answered(close: close)
        writeLocal(
            response, version: head.version, close: close, isHead: head.method == .HEAD, context: context)
    }

    /// Answers and closes (malformed request, oversized head).
    func respond(_ response: LocalResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        state = .closed
        writeLocal(response, version: version, close: true, isHead: false, context: context)
        context.close(promise: nil)
    }

    private func writeLocal(
        _ response: LocalResponse, version: HTTPVersion, close: Bool, isHead: Bool,
        context: ChannelHandlerContext
    ) {
        let body = response.body
        context.write(
            wrapOutboundOut(
                .head(response.head(version: version, close: close, bodyLength: body.utf8.count))),
            promise: nil)
        if !isHead {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    // MARK: Called by the exchange

    func writeToClient(_ part: HTTPServerResponsePart) {
        guard let context else { return }
        context.write(wrapOutboundOut(part), promise: nil)
        if case .proxying(let exchange) = state, !context.channel.isWritable {
            exchange.upstream?.pauseReads()
        }
    }

    func flushClient() { context?.flush() }

    /// The exchange wrote its last part; the connection waits for the next request or closes.
    func exchangeFinished(_ exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange, let context else { return }
        if exchange.closeClient || draining {
            state = .closed
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil)
            }
        } else {
            // Idle before the end goes out, so that nothing this write sets off finds the
            // connection still busy with the finished exchange.
            becomeIdle()
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// An exchange that cannot finish its response (the ship went away mid-body): close the client.
    func exchangeBroken(_ exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange else { return }
        state = .closed
        context?.close(promise: nil)
    }

    /// An exchange that failed before any response byte: answer it locally.
    func exchangeFailed(_ exchange: Exchange, response: LocalResponse) {
        guard case .proxying(let current) = state, current === exchange, let context else { return }
        let close = exchange.closeClient || !exchange.requestEnded
        // The state is final before the response's end is written (see `exchangeFinished`).
        if !exchange.requestEnded {
            state = .answered(close: close)
        } else if close {
            state = .closed
        } else {
            becomeIdle()
        }
        writeLocal(
            response, version: exchange.clientVersion, close: close, isHead: exchange.isHead,
            context: context)
        if exchange.requestEnded && close { context.close(promise: nil) }
        resumeClientReads()
    }

    func pauseClientReads() { readsPaused = true }

    func resumeClientReads() {
        guard readsPaused, queued.isEmpty else { return }
        readsPaused = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    private func becomeIdle() {
        state = .idle
        lineGuard?.rearm()
        if draining {
            state = .closed
            context?.close(promise: nil)
            return
        }
        if !queued.isEmpty, let context {
            // A pipelined request is next; not from inside the write that ends this response.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.drainQueue() }
        }
        resumeClientReads()
        watch(for: settings.limits.idleTimeout)
    }

    /// Watches the connection for `amount`: while idle (no request head yet) it then closes; while
    /// proxying, the exchange times out waiting for the ship's first byte.
    func watch(for amount: TimeAmount) { watch(until: NIODeadline.now() + amount) }

    func unwatch() { watchdog.clear() }

    private func watch(until deadline: NIODeadline) {
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        watchdog.watch(until: deadline, on: context.eventLoop) { bound.value.watchdogFired() }
    }

    private func watchdogFired() {
        guard watchdog.expired(now: NIODeadline.now()) else {
            // The deadline moved while the timer slept: sleep again until the new one.
            if let deadline = watchdog.deadline { watch(until: deadline) }
            return
        }
        switch state {
        case .idle: context?.close(promise: nil)
        case .proxying(let exchange): exchange.timedOut()
        default: break
        }
    }

    /// The size of the header block as sent: `name: value\r\n` per field.
    static func headerBlockBytes(_ headers: HTTPHeaders) -> Int {
        var total = 0
        for (name, value) in headers { total += name.utf8.count + value.utf8.count + 4 }
        return total
    }

    static func microsecondsSinceEpoch() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec / 1000)
    }
}

/// Asks every connection of a listener to finish its current response and close.
struct RelayDrainEvent: Sendable {}

extension RelayServerHandler {
    /// Turns both connections into a byte tunnel once the 101 response has been written: tunnel ends
    /// go in first, then the typed HTTP handlers, encoders and finally the decoders come out (the
    /// decoders hand their unparsed bytes on, which the tunnel forwards).
    func startTunnel(to upstream: UpstreamHandler) {
        guard let context, let upstreamContext = upstream.context else {
            context?.close(promise: nil)
            upstream.close()
            return
        }
        state = .tunnelled
        watchdog.cancel()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let client = context.pipeline.syncOperations
        let ship = upstreamContext.pipeline.syncOperations
        let (clientEnd, shipEnd) = TunnelHandler.pair()
        do {
            try client.addHandler(clientEnd)
            try ship.addHandler(shipEnd)
            ship.removeHandler(upstream, promise: nil)
            try ship.removeHandler(ship.handler(type: HTTPRequestEncoder.self), promise: nil)
            try client.removeHandler(client.handler(type: HTTPResponseEncoder.self), promise: nil)
            try ship.removeHandler(
                ship.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self), promise: nil)
            client.removeHandler(context: context, promise: nil)
            try client.removeHandler(
                client.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
        } catch {
            settings.logger.warning("cannot open the upgrade tunnel: \(error)")
            context.close(promise: nil)
            upstream.close()
            return
        }
        readsPaused = false
        let clientChannel = context.channel
        let shipChannel = upstreamContext.channel
        // The decoders leave the pipeline on a later tick and then hand their unparsed bytes (what
        // the ship sent right after its 101, what the client sent after its request) to the tunnel,
        // outside any read cycle: nothing would flush them until the next read. This task runs after.
        context.eventLoop.assumeIsolated().execute {
            clientChannel.flush()
            shipChannel.flush()
        }
        shipChannel.read()
        clientChannel.read()
    }
}
