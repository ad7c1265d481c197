import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// One client connection of a relay listener: parses requests from the bytes it reads, answers
/// locally or proxies each to the ship its route names over a pooled keep-alive connection on the
/// same event loop, streaming bodies both ways with backpressure, and turns an accepted `Upgrade`
/// into a byte tunnel. Heads are parsed and rewritten in place (`HeadParser`, `HeadWriter`); bodies
/// pass through as the bytes they arrived in.
///
/// The order of SPEC §4 is visible in `received(head:)`; everything else is plumbing.
final class RelayServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let settings: ListenerSettings
    let loop: LoopContext
    var context: ChannelHandlerContext?
    /// The client's address: the peer, or what a PROXY protocol header said.
    var clientAddress: String? {
        didSet { clientAddressBytes = clientAddress.map { Array($0.utf8) } }
    }
    /// The client's port when a PROXY protocol header gave it (a bay's Boarding reports it).
    var clientPort: Int?
    /// The same, as the bytes forwarded in `X-Forwarded-For`.
    private var clientAddressBytes: [UInt8]?
    private let secure: Bool

    enum State {
        /// Waiting for the next request head.
        case idle
        /// Answered locally; the rest of the request body is discarded until its end.
        case answered(close: Bool)
        /// Answering locally with a body that streams (a static file); later requests wait.
        case streaming(close: Bool)
        /// Proxying to a ship.
        case proxying(Exchange)
        /// Bytes flow through a tunnel to the ship's connection.
        case tunnelled(UpstreamHandler)
        /// A WebSocket to a bay: the handler leaves the pipeline to the WebSocket handlers.
        case handedOver
        case closed
    }
    var state = State.idle
    /// Bytes read and not yet taken: the rest of a head, or pipelined requests waiting their turn.
    private var inbound: ByteBuffer?
    private var scanned = 0
    /// The last head's field list, for the next head to parse into.
    private var spareFields: [HeaderField] = []
    /// Buffers for the heads written to ships and to this client.
    private var requestHeads = ScratchBuffer()
    var responseHeads = ScratchBuffer()
    /// The current request's body still to come.
    private(set) var requestBody = BodyFraming.none
    /// The client's path when response hooks run on the current request's response.
    var responseHookPath: String?
    /// Reading from the client is off (`autoRead`): the ship's socket is full, or a pipelined
    /// request waits its turn. Inbound-only, the handler stays out of every read NIO issues.
    var readsPaused = false
    var watchdog = Watchdog()
    var draining = false
    /// Writes to the client's socket (straight to it on plain connections while it takes them).
    var writer = SocketWriter()
    /// Request heads read on this connection so far (up to 2: the writer attaches on the second).
    private var heads = 0
    /// Came back from the lane (`ProxyLane`) with a request it does not take: stays here.
    private var resumed = false
    /// The ship connection the last exchange returned to its pool (and its ship's index): it goes
    /// to the lane with this connection, so that the client keeps meeting the same one.
    var releasedUpstream: (handler: UpstreamHandler, shipIndex: Int)?
    private let parserLimits: HeadParser.Limits
    /// While the client's socket holds back a response: the bytes SwiftNIO held for it when the
    /// send timeout was last armed (any fewer since means the client took some).
    private var stalledBytes: Int?
    /// While a file goes out by sendfile: the check that it was not truncated meanwhile and that
    /// the client takes it (`RelayServerHandler+Edge`).
    var fileWatch: RepeatedTask?

    /// The channel's allocator, taken once (asking the channel for it costs reference counting
    /// through SwiftNIO's lifecycle state on every request).
    private(set) var allocator = ByteBufferAllocator()
    /// The client channel's writability, kept from its change events (as `UpstreamHandler`'s).
    private var clientWritable = false
    /// The logger's level, read once per connection (the level is set at start-up).
    private let logsRequests: Bool

    init(settings: ListenerSettings, loop: LoopContext) {
        self.settings = settings
        self.loop = loop
        self.secure = settings.scheme == "https"
        self.logsRequests = settings.logger.logLevel <= .debug
        self.parserLimits = HeadParser.Limits(settings.limits)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        clientWritable = context.channel.isWritable
        if !resumed { clientAddress = context.channel.remoteAddress?.ipAddress }
        watch(for: settings.limits.headerReadTimeout)
    }

    /// A connection the lane gives back: its client's address and the bytes it read and did not
    /// take (from the head of a request it leaves to the event loop); call before adding the handler.
    func resume(from arrival: ProxyLane.Arrival, bytes: ByteBuffer) {
        resumed = true
        heads = 1
        clientAddress = arrival.address
        clientPort = arrival.port
        if bytes.readableBytes > 0 { inbound = bytes }
    }

    func channelActive(context: ChannelHandlerContext) {
        if resumed, inbound != nil { processInbound() }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watchdog.cancel()
        fileWatch?.cancel()
        fileWatch = nil
        writer.stop()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var buffered = inbound, buffered.readableBytes > 0 {
            inbound = nil
            buffered.writeBuffer(&bytes)
            process(buffered, context: context)
        } else {
            inbound = nil
            process(bytes, context: context)
        }
    }

    /// Takes from `bytes` as much as the current state can: a head, body bytes for the exchange (or
    /// to drop), and keeps the rest (an incomplete head, or a pipelined request while the current
    /// response is still on its way).
    private func process(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        var buffer = bytes
        loop: while true {
            switch state {
            case .idle:
                if buffer.readableBytes == 0 { break loop }
                // Parsed into a local (the buffer stands in until a head is complete), with the
                // last head's field list: no copy of the head on its way here.
                var head = MessageHead(bytes: buffer)
                swap(&head.fields, &spareFields)
                switch HeadParser.next(
                    from: &buffer, kind: .request, limits: parserLimits, scanned: &scanned, into: &head)
                {
                case .incomplete:
                    swap(&head.fields, &spareFields)
                    break loop
                case .failure(let failure):
                    refuse(failure, context: context)
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                case .complete:
                    received(head: head, context: context)
                    swap(&head.fields, &spareFields)
                }
            case .answered(let close):
                if !requestBody.isNone {
                    do {
                        let (_, ended) = try requestBody.take(from: &buffer)
                        if !ended { break loop }
                    } catch {
                        state = .closed
                        context.close(promise: nil)
                        break loop
                    }
                }
                if close {
                    closeAfterWrites()
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                }
                becomeIdle()
            case .streaming:
                // A pipelined request waits until the file is out.
                if buffer.readableBytes > 0 { pauseClientReads() }
                break loop
            case .proxying(let exchange):
                if exchange.requestEnded {
                    // A pipelined request: it waits until this response is out; reading stops
                    // while it waits (no read holding in the common case).
                    if buffer.readableBytes > 0 { pauseClientReads() }
                    break loop
                }
                if buffer.readableBytes == 0 { break loop }
                do {
                    let (slice, ended) = try requestBody.take(from: &buffer)
                    if let slice { exchange.forward(body: slice) }
                    if ended { exchange.endRequest() }
                } catch {
                    // Chunking a strict parser refuses (SPEC §4): the ship's connection is dropped
                    // mid-body (it can never read the bytes as a request of their own), and the
                    // client gets 400 unless the ship's answer has begun.
                    exchange.abandon()
                    if exchange.responseStarted {
                        state = .closed
                        context.close(promise: nil)
                    } else {
                        refuse(.malformed("invalid chunked body"), context: context)
                    }
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                }
            case .tunnelled(let upstream):
                // Flushed at the end of the read (`channelReadComplete`).
                if buffer.readableBytes > 0 {
                    // Backpressure is checked once per read, when `channelReadComplete` flushes.
                    upstream.send(buffer)
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                }
                break loop
            case .handedOver:
                handOver(buffer, context: context)
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            case .closed:
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            }
        }
        if buffer.readableBytes > 0 { inbound = buffer }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushUpstream()
        // The last handler: nothing after it wants the event.
    }

    /// Sends what the client's bytes gave the ship's connection; while its socket is full, the
    /// client is not read.
    private func flushUpstream() {
        switch state {
        case .proxying(let exchange): if exchange.upstream?.flush() == true { pauseClientReads() }
        case .tunnelled(let upstream): if upstream.flush() { pauseClientReads() }
        default: break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .proxying(let exchange): exchange.abandon()
        case .tunnelled(let upstream): upstream.close()
        default: break
        }
        state = .closed
        clientWritable = false
        watchdog.cancel()
        writer.stop()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritable = context.channel.isWritable
        if clientWritable {
            if stalledBytes != nil {
                stalledBytes = nil
                unwatch()
            }
            switch state {
            case .proxying(let exchange): exchange.upstream?.resumeReads()
            case .tunnelled(let upstream): upstream.resumeReads()
            default: break
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ClientAddressEvent {
            clientAddress = event.address.ipAddress
            clientPort = event.address.port
        } else if event is RelayDrainEvent {
            draining = true
            if case .idle = state { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Requests

    private func refuse(_ failure: HeadParser.Failure, context: ChannelHandlerContext) {
        let response: LocalResponse
        switch failure {
        case .uriTooLong: response = LocalResponse(status: .uriTooLong, message: "request line too long")
        case .headersTooLarge:
            response = LocalResponse(
                status: .requestHeaderFieldsTooLarge, message: "request header block too large")
        case .malformed(let reason):
            response = LocalResponse(status: .badRequest, message: "malformed request: \(reason)")
        }
        settings.logger.debug(
            "malformed request", metadata: ["client": "\(clientAddress ?? "-")", "error": "\(failure)"])
        respond(response, version: .http1_1, context: context)
    }

    private func received(head: MessageHead, context: ChannelHandlerContext) {
        watchdog.clear()
        stalledBytes = nil
        releasedUpstream = nil
        if heads < 2 {
            heads += 1
            // Finding the socket's descriptor costs about as much as ten direct writes save: it is
            // done once a connection shows it is kept alive (a second request), never for the
            // usual one-request connection.
            if heads == 2 && !secure { writer.attach(to: context.channel) }
        }
        requestBody = BodyFraming.request(head)
        // Past an Upgrade (or CONNECT) request, unless the ship switches protocols, the bytes that
        // follow are not HTTP: the connection closes after the answer.
        let isUpgrade = head.isUpgrade
        let close = !head.isKeepAlive || draining || isUpgrade || head.method.isConnect
        // SPEC §4, in order. The PROXY header and the client address come first, per connection
        // (`clientAddress`: the PROXY protocol's address when one was sent). Each step costs a nil
        // check when the manifest leaves its feature off, and returns true when it answered.
        if answeredByRateLimit(head: head, close: close, context: context) { return }
        // One normalised path for static dirs, modules and routes (SPEC §4).
        let target: RequestTarget
        do {
            target = try RequestTarget.parse(head.targetString, method: head.method)
        } catch {
            refuse(.malformed(error.reason), context: context)
            return
        }
        if settings.edge.staticFiles != nil,
            answeredFromStaticFiles(head: head, path: target.path, close: close, context: context)
        {
            return
        }
        if let hooks = settings.hooks {
            // Request modules (SPEC §7): they may answer, or change the path and headers routed on;
            // they go on with `routeRequest`. A module that reads the request gets its JA4H.
            runRequestHooks(
                hooks, head: head, target: target, close: close, isUpgrade: isUpgrade, context: context)
            return
        }
        routeRequest(head: head, target: target, close: close, isUpgrade: isUpgrade, context: context)
    }

    /// The CORS preflight cache, the route table and the proxying of SPEC §4, after the steps that
    /// may answer first. `target` is `head`'s request target, parsed once per request.
    func routeRequest(
        head: MessageHead, target: RequestTarget, close: Bool, isUpgrade: Bool, context: ChannelHandlerContext
    ) {
        let path = target.path
        var corsCapture: CorsCapture?
        if answeredFromCorsCache(head: head, path: path, close: close, context: context, miss: &corsCapture) {
            return
        }
        // Route table, readiness, circuit breaker (SPEC §4).
        let (routing, kind) = ShipRouting.decide(path: path, head: head, settings: settings)
        if logsRequests, let entry = routing.entry {
            let agentKind = kind ?? UserAgentKind(userAgent: head.value(of: .userAgent))
            settings.logger.debug(
                "request",
                metadata: [
                    "method": "\(head.method)", "path": "\(path)", "ua_class": "\(agentKind)",
                    "ja4h": "\(JA4H(head))", "route": "\(entry.route.pattern)", "ship": "\(entry.ship)",
                ])
        }
        let entry: RouteEntry
        let breaker: ShipBreaker
        let isTrial: Bool
        switch routing {
        case .answer(let response, let counted):
            answer(response, head: head, close: close, context: context, entry: counted)
            return
        case .bay(let bayEntry, let berth):
            boardBay(berth, head: head, entry: bayEntry, close: close, context: context)
            return
        case .ship(let shipEntry, let shipBreaker, let trial):
            (entry, breaker, isTrial) = (shipEntry, shipBreaker, trial)
        }
        var upstreamHead = requestHeads.take(
            capacity: head.bytes.readableBytes + 256, allocator: allocator)
        ShipRouting.writeShipHead(
            head, target: target, entry: entry,
            client: HeadWriter.Client(addressBytes: clientAddressBytes, secure: secure),
            requestIDs: &loop.requestIDs, into: &upstreamHead)
        requestHeads.keep(upstreamHead)
        let exchange = Exchange(
            owner: self, entry: entry, pool: loop.pool(for: entry, board: settings.breakers),
            breaker: breaker,
            head: upstreamHead, method: head.method, target: target.forwarded, clientVersion: head.version,
            closeClient: close, isUpgrade: isUpgrade, bodyless: requestBody.isNone, isTrial: isTrial)
        exchange.corsCapture = corsCapture
        // Compression (SPEC §5.2), the last step, is chosen now and applied to the response.
        exchange.compression = compressionRequest(head)
        state = .proxying(exchange)
        if head.expectsContinue {
            // The relay takes the expectation on (the ship never sees it): the client sends its
            // body now instead of after its own timeout.
            sendNow(
                allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"),
                context: context)
        }
        exchange.start()
    }

    /// The target sent upstream: with `strip_prefix` applied, the shorter (normalised) path with the
    /// query; otherwise the target as it came (in origin form); nil when that is the head's own.
    static func forwardedTarget(_ target: RequestTarget, route: Route) -> String? {
        let unchanged = target.authority == nil ? nil : target.forwarded
        guard route.stripPrefix != nil else { return unchanged }
        let forwarded = route.forwardedPath(for: target.path)
        if forwarded.count == target.path.count { return unchanged }
        return String(forwarded) + target.query
    }

    // MARK: Local answers

    /// Answers the request locally (request body, if any, is read and dropped).
    func answer(
        _ response: LocalResponse, head: MessageHead, close: Bool, context: ChannelHandlerContext,
        entry: RouteEntry? = nil
    ) {
        entry?.requests.increment()
        state = .answered(close: close)
        writeLocal(
            response, version: head.version, close: close, isHead: head.method.isHead, context: context)
    }

    /// Answers and closes (malformed request, oversized head).
    func respond(_ response: LocalResponse, version: HTTPVersion, context: ChannelHandlerContext) {
        writeLocal(response, version: version, close: true, isHead: false, context: context)
        closeAfterWrites()
    }

    /// Closes the connection once everything written so far has gone out.
    private func closeAfterWrites() {
        state = .closed
        guard let context else { return }
        let channel = context.channel
        writer.beforeNIOWrite(context: context)
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func writeLocal(
        _ response: LocalResponse, version: HTTPVersion, close: Bool, isHead: Bool,
        context: ChannelHandlerContext
    ) {
        var bytes = allocator.buffer(capacity: 256)
        HeadWriter.local(response, version: version, close: close, isHead: isHead, into: &bytes)
        sendNow(bytes, context: context)
    }

    /// Writes a whole answer and sends it at once.
    func sendNow(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        writer.write(bytes, context: context)
        writer.flush(context: context)
    }

    // MARK: Called by the exchange

    /// Queues bytes for the client until `flushClient`.
    func writeToClient(_ bytes: ByteBuffer) {
        guard let context else { return }
        writer.write(bytes, context: context)
    }

    /// Sends what was queued; while the client's socket is full the ship's reads are held.
    func flushClient() {
        guard let context, writer.flush(context: context), !clientWritable else { return }
        switch state {
        case .proxying(let exchange):
            exchange.upstream?.pauseReads()
            if exchange.responseStarted && stalledBytes == nil {
                // The send timeout (SPEC §4) runs while the client's socket is full.
                stalledBytes = context.channel.heldBytes
                watch(for: settings.limits.sendTimeout)
            }
        case .tunnelled(let upstream): upstream.pauseReads()
        default: break
        }
    }

    func closeClient() {
        state = .closed
        context?.close(promise: nil)
    }

    /// The exchange wrote its last bytes; the connection waits for the next request or closes.
    func exchangeFinished(_ exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange, let context else { return }
        // Settled before the flush, so that nothing the flush sets off finds the connection still
        // busy with the finished exchange.
        settle(close: exchange.closeClient, requestEnded: exchange.requestEnded)
        writer.flush(context: context)
        if let lane = settings.lane, case .idle = state, inbound == nil, !resumed, !draining {
            passToLane(lane, context: context)
        }
    }

    /// A kept-alive plain connection between requests goes to the lane (`ProxyLane`), once
    /// everything written to it is out: the lane owns its socket (a duplicate) from here.
    private func passToLane(_ lane: ProxyLane, context: ChannelHandlerContext) {
        guard writer.isIdle, context.channel.holdsNoWrites,
            let descriptor = writer.isOn ? writer.descriptor : SocketWriter.descriptor(of: context.channel)
        else { return }
        let duplicate = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { return }
        // The ship connection that served the last request, if it is idle in its pool and holds
        // nothing unwritten, goes along.
        var ship: (fd: CInt, index: Int, handler: UpstreamHandler)?
        if let (handler, index) = releasedUpstream, handler.owner == nil, handler.isActive,
            let channel = handler.context?.channel, channel.holdsNoWrites,
            let shipDescriptor = handler.descriptor >= 0
                ? handler.descriptor : SocketWriter.descriptor(of: channel)
        {
            let shipDuplicate = fcntl(shipDescriptor, F_DUPFD_CLOEXEC, 0)
            if shipDuplicate >= 0 { ship = (shipDuplicate, index, handler) }
        }
        releasedUpstream = nil
        guard
            lane.adopt(
                ProxyLane.Arrival(
                    fd: duplicate, settings: settings, address: clientAddress, port: clientPort,
                    ship: ship?.fd ?? -1, shipIndex: ship?.index ?? -1))
        else {
            Glibc.close(duplicate)
            if let ship { Glibc.close(ship.fd) }
            return
        }
        if let ship {
            ship.handler.pool?.remove(ship.handler)
            ship.handler.pool = nil
            ship.handler.close()
        }
        state = .closed
        watchdog.cancel()
        writer.stop()
        context.close(promise: nil)
    }

    /// An exchange that cannot finish its response (the ship went away mid-body): close the client.
    func exchangeBroken(_ exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange, let context else { return }
        state = .closed
        writer.flush(context: context)
        context.close(promise: nil)
    }

    /// An exchange that failed before any response byte: answer it locally.
    func exchangeFailed(_ exchange: Exchange, response: LocalResponse) {
        guard case .proxying(let current) = state, current === exchange, let context else { return }
        // After a failure the connection closes once the request body, if any is still coming, is dropped.
        let close = exchange.closeClient || !exchange.requestEnded
        writeLocal(
            response, version: exchange.clientVersion, close: close, isHead: exchange.isHead, context: context
        )
        settle(close: close, requestEnded: exchange.requestEnded)
    }

    /// After a response has been written: the rest of the request body, if any is still coming, is
    /// read and dropped (an early answer, a 413 before the upload ended); then the connection closes
    /// or takes the next request.
    func settle(close: Bool, requestEnded: Bool) {
        if !requestEnded {
            state = .answered(close: close)
            resumeClientReads()
        } else if close {
            closeAfterWrites()
        } else {
            becomeIdle()
        }
    }

    func pauseClientReads() {
        guard !readsPaused else { return }
        readsPaused = true
        context?.channel.setAutoRead(false)
    }

    func resumeClientReads() {
        guard readsPaused else { return }
        if case .proxying(let exchange) = state, exchange.requestEnded, inbound != nil { return }
        readsPaused = false
        context?.channel.setAutoRead(true)
    }

    private func becomeIdle() {
        state = .idle
        requestBody = .none
        if draining {
            closeAfterWrites()  // landing: the response just written still goes out first
            return
        }
        if inbound != nil, let context {
            // A pipelined request is next; not from inside the write that ends this response.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.processInbound() }
        }
        resumeClientReads()
        watch(for: settings.limits.idleTimeout)
    }

    /// Bytes read earlier (a pipelined request, or what the lane handed back with the connection):
    /// taken as a read would take them, and flushed as the end of a read would (a request body
    /// that came with its head must not wait for the client's next read to reach the ship).
    private func processInbound() {
        guard let context, let bytes = inbound else { return }
        inbound = nil
        process(bytes, context: context)
        flushUpstream()
        resumeClientReads()
    }

    /// Watches the connection for `amount`: while idle (no request head yet) it then closes; while
    /// proxying, the exchange times out waiting for the ship's first byte.
    func watch(for amount: TimeAmount) { watch(until: NIODeadline.now() + amount) }

    func unwatch() { watchdog.clear() }

    func watch(until deadline: NIODeadline) {
        if watchdog.move(to: deadline) { return }
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
        case .proxying(let exchange):
            if stalledBytes != nil {
                sendTimedOut(exchange)
            } else {
                exchange.timedOut()
            }
        default: break
        }
    }

    /// The send timeout passed: a client that took some of what waits for it gets another period;
    /// one that took nothing is closed, and the ship's connection with it.
    private func sendTimedOut(_ exchange: Exchange) {
        guard let context, let stalled = stalledBytes, !clientWritable else {
            stalledBytes = nil
            return
        }
        let held = context.channel.heldBytes
        if held < stalled {
            stalledBytes = held
            watch(for: settings.limits.sendTimeout)
            return
        }
        settings.logger.info(
            "closing a client that took nothing of its response for \(DurationText.format(.nanoseconds(settings.limits.sendTimeout.nanoseconds)))",
            metadata: [
                "client": "\(clientAddress ?? "-")", "request": "\(exchange.method) \(exchange.target)",
            ])
        stalledBytes = nil
        exchange.abandon()
        resetClient()
    }

    /// Closes with a reset (`SO_LINGER` 0): the bytes the client never took are dropped with the
    /// socket instead of keeping it, and its buffers, alive in the kernel for as long as the client
    /// keeps its window shut (nginx's `reset_timedout_connection`).
    func resetClient() {
        state = .closed
        guard let channel = context?.channel else { return }
        guard let options = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
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
    /// The ship accepted an upgrade: from here both connections pass bytes unchanged. What the
    /// client sent after its request already waits in `inbound` and goes first.
    func startTunnel(to upstream: UpstreamHandler) {
        guard let context else {
            upstream.close()
            return
        }
        state = .tunnelled(upstream)
        watchdog.cancel()
        upstream.enterTunnel(peer: self)
        if let bytes = inbound {
            inbound = nil
            upstream.send(bytes)
            upstream.flush()
        }
        flushClient()
        if readsPaused {
            readsPaused = false
            context.channel.setAutoRead(true)
        }
    }
}

extension RelayServerHandler {
    /// Hands an open tunnel's two sockets to the relay's tunnel thread (`TunnelPump`) and closes
    /// their channels here. Only plain connections whose channels hold no unwritten bytes go (the
    /// pump must be the only writer from the first byte on); any other tunnel stays on this loop.
    func passTunnelToPump() {
        guard case .tunnelled(let upstream) = state, let pump = settings.tunnels, !secure, let context,
            let shipChannel = upstream.context?.channel, upstream.descriptor >= 0,
            context.channel.holdsNoWrites, shipChannel.holdsNoWrites,
            let clientDescriptor = writer.isOn
                ? writer.descriptor : SocketWriter.descriptor(of: context.channel)
        else { return }
        // Duplicates: closing the channels closes NIO's descriptors, not the sockets.
        let client = fcntl(clientDescriptor, F_DUPFD_CLOEXEC, 0)
        let ship = fcntl(upstream.descriptor, F_DUPFD_CLOEXEC, 0)
        guard client >= 0, ship >= 0, pump.adopt(client: client, ship: ship) else {
            if client >= 0 { Glibc.close(client) }
            if ship >= 0 { Glibc.close(ship) }
            return
        }
        state = .closed
        writer.stop()
        upstream.leaveTunnel()
        upstream.close()
        context.close(promise: nil)
    }
}

extension Channel {
    /// Turns reading on or off (for backpressure); called on the channel's event loop.
    func setAutoRead(_ on: Bool) {
        try? syncOptions?.setOption(.autoRead, value: on)
    }

    /// Whether SwiftNIO holds none of the bytes written to this channel (all are in the socket);
    /// called on the channel's event loop.
    var holdsNoWrites: Bool { (try? syncOptions?.getOption(.bufferedWritableBytes)) == 0 }

    /// The bytes written to this channel that SwiftNIO still holds; called on its event loop.
    var heldBytes: Int { (try? syncOptions?.getOption(.bufferedWritableBytes)) ?? 0 }
}
