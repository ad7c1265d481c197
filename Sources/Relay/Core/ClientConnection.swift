import Logging
import NIOCore
import NIOHTTP1
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// One client connection of a relay listener, as a model without I/O: it parses requests from the
/// bytes its driver reads, answers locally or proxies each to the ship its route names over a
/// pooled keep-alive connection of the same thread, streaming bodies both ways with backpressure,
/// and turns an accepted `Upgrade` into a byte tunnel. Heads are parsed and rewritten in place
/// (`HeadParser`, `HeadWriter`); bodies pass through as the bytes they arrived in. Everything it
/// does to the world goes through its `ClientTransport`.
///
/// The order of SPEC §4 is visible in `received(head:)`; everything else is plumbing.
final class ClientConnection {
    /// The bind's settings as they were when the current request began (`source` has the newest).
    private(set) var settings: ListenerSettings
    let source: ListenerSource
    private var seenChanges: Int
    let loop: LoopContext
    /// The driver; nil once it let go of the connection (nothing is done from then on). Not
    /// counted: the driver owns the connection and clears this (`detach`) before it goes, so the
    /// dozen calls a request makes through it cost no reference counting.
    private(set) unowned(unsafe) var transport: (any ClientTransport)?
    /// The client's address: the peer, or what a PROXY protocol header said.
    var clientAddress: String? {
        didSet { clientAddressBytes = clientAddress.map { Array($0.utf8) } }
    }
    /// The client's port when a PROXY protocol header gave it (a bay's Boarding reports it).
    var clientPort: Int?
    /// The same, as the bytes forwarded in `X-Forwarded-For`.
    private var clientAddressBytes: [UInt8]?
    let secure: Bool

    /// Plain values only: the exchange, the tunnel and the boarding a state goes with are kept
    /// beside it (copying an enum that holds references costs reference counting at every `switch`).
    enum State: Equatable {
        /// Waiting for the next request head.
        case idle
        /// Answered locally; the rest of the request body is discarded until its end.
        case answered(close: Bool)
        /// Answering locally with a body that streams (a static file); later requests wait.
        case streaming(close: Bool)
        /// Proxying to a ship (`exchange`).
        case proxying
        /// Bytes flow through a tunnel to the ship's connection (`tunnel`).
        case tunnelled
        /// A WebSocket to a bay: the bytes after the upgrade go to the bay's handling with the
        /// connection (`boarding`, once; then nothing more comes here).
        case handedOver
        case closed
    }
    var state = State.idle {
        didSet {
            if state != .proxying { exchange = nil }
            if state != .tunnelled { tunnel = nil }
        }
    }
    /// The current exchange while `proxying`.
    private(set) var exchange: Exchange?
    /// The ship's end while `tunnelled`.
    private var tunnel: ShipLink? {
        didSet { tunnelEnd = tunnel.map { Unmanaged.passUnretained($0) } }
    }
    /// `tunnel`, unretained, for the two calls each tunnelled read makes through it (`send`,
    /// `flush`): `tunnel` holds it meanwhile, and neither lets go of it (a send that fails closes
    /// the socket after the current event). A retain and a release fewer per message.
    private var tunnelEnd: Unmanaged<ShipLink>?
    /// The bay that takes the connection, until the bytes after the upgrade went with it.
    private var boarding: (berth: BayBerth, boarding: BayBoarding)?
    /// Bytes read and not yet taken: the rest of a head, or pipelined requests waiting their turn.
    private var inbound: ByteBuffer?
    private var scanned = 0
    /// The last head's field list, for the next head to parse into.
    private var spareFields: [HeaderField] = []
    /// Buffers for the heads written to ships and to this client.
    private let requestHeads = ScratchBuffer()
    let responseHeads = ScratchBuffer()
    /// The current request's body still to come.
    private(set) var requestBody = BodyFraming.none
    /// The client's path when response hooks run on the current request's response.
    var responseHookPath: String?
    /// Reading from the client is off: the ship's socket is full, or a pipelined request waits
    /// its turn.
    private(set) var readsPaused = false
    private(set) var draining = false
    private let parserLimits: HeadParser.Limits
    /// While the client's socket holds back a response: the bytes the driver held for it when the
    /// send timeout was last armed (any fewer since means the client took some).
    private var stalledBytes: Int?
    /// Whether a deadline is set, and which.
    private var deadline: NIODeadline?

    /// The last `Accept-Encoding` value this connection sent, and the coding it gave.
    var acceptEncodingSeen: [UInt8]?
    var acceptEncodingCoding: ContentCoding?
    /// The driver's allocator, taken once.
    private(set) var allocator = ByteBufferAllocator()
    /// The client socket's writability, kept from the driver's change events.
    private var clientWritable = false
    /// The logger's level, read once per connection (the level is set at start-up).
    private let logsRequests: Bool

    convenience init(settings: ListenerSettings, loop: LoopContext) {
        self.init(source: ListenerSource(settings), loop: loop)
    }

    init(source: ListenerSource, loop: LoopContext) {
        let (changes, settings, retired) = source.snapshot()
        self.source = source
        self.seenChanges = changes
        self.settings = settings
        self.draining = retired
        self.loop = loop
        self.secure = settings.scheme == "https"
        self.logsRequests = settings.logger.logLevel <= .debug
        self.parserLimits = HeadParser.Limits(settings.limits)
    }

    // MARK: Events from the driver

    /// The driver is ready: the connection starts waiting for its first head.
    func start(transport: any ClientTransport, clientAddress: String?) {
        self.transport = transport
        allocator = transport.allocator
        clientWritable = transport.isWritable
        if self.clientAddress == nil { self.clientAddress = clientAddress }
        watch(for: settings.limits.headerReadTimeout)
    }

    /// The driver lets go (its connection is gone or no longer the relay's): nothing is done
    /// through it any more.
    func detach() {
        transport = nil
        deadline = nil
    }

    /// Bytes read from the client.
    func received(_ bytes: ByteBuffer) {
        if case .tunnelled = state {
            // As they came, flushed at the end of the read (`readComplete`); a tunnel holds
            // nothing back (`startTunnel` sent what waited in `inbound`).
            if bytes.readableBytes > 0 { tunnelEnd?._withUnsafeGuaranteedRef { $0.send(bytes) } }
            return
        }
        var bytes = bytes
        if var buffered = inbound, buffered.readableBytes > 0 {
            inbound = nil
            buffered.writeBuffer(&bytes)
            process(buffered)
        } else {
            inbound = nil
            process(bytes)
        }
    }

    /// Takes from `bytes` as much as the current state can: a head, body bytes for the exchange (or
    /// to drop), and keeps the rest (an incomplete head, or a pipelined request while the current
    /// response is still on its way).
    private func process(_ bytes: ByteBuffer) {
        var buffer = bytes
        loop: while true {
            switch state {
            case .idle:
                if buffer.readableBytes == 0 { break loop }
                // Parsed into a local (the buffer stands in until a head is complete), with the
                // last head's field list: no copy of the head on its way here.
                var head = MessageHead(bytes: buffer)
                swap(&head.fields, &spareFields)
                // `scanned` goes through a local: no access to the property spans the parse.
                var scanned = self.scanned
                let parsed = HeadParser.next(
                    from: &buffer, kind: .request, limits: parserLimits, scanned: &scanned, into: &head)
                self.scanned = scanned
                switch parsed {
                case .incomplete:
                    swap(&head.fields, &spareFields)
                    break loop
                case .failure(let failure):
                    refuse(failure)
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                case .complete:
                    received(head: head)
                    swap(&head.fields, &spareFields)
                }
            case .answered(let close):
                if !requestBody.isNone {
                    do {
                        let (_, ended) = try takeRequestBody(from: &buffer)
                        if !ended { break loop }
                    } catch {
                        closeClient()
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
            case .proxying:
                guard let exchange else { break loop }
                if exchange.requestEnded {
                    // A pipelined request: it waits until this response is out; reading stops
                    // while it waits.
                    if buffer.readableBytes > 0 { pauseClientReads() }
                    break loop
                }
                if buffer.readableBytes == 0 { break loop }
                do {
                    let (slice, ended) = try takeRequestBody(from: &buffer)
                    if let slice { exchange.forward(body: slice) }
                    if ended { exchange.endRequest() }
                } catch {
                    // Chunking a strict parser refuses (SPEC §4): the ship's connection is dropped
                    // mid-body (it can never read the bytes as a request of their own), and the
                    // client gets 400 unless the ship's answer has begun.
                    exchange.abandon()
                    if exchange.responseStarted {
                        closeClient()
                    } else {
                        refuse(.malformed("invalid chunked body"))
                    }
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                }
            case .tunnelled:
                // Bytes held from before the tunnel (`received` sends a tunnel's own reads).
                if buffer.readableBytes > 0, let upstream = tunnel {
                    upstream.send(buffer)
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                }
                break loop
            case .handedOver:
                if let (berth, boarding) = self.boarding {
                    self.boarding = nil
                    deadline = nil
                    readsPaused = false
                    transport?.handOver(to: berth, boarding: boarding, rest: buffer)
                }
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            case .closed:
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            }
        }
        if buffer.readableBytes > 0 { inbound = buffer }
    }

    /// The request body's next bytes in `buffer`, and whether it ended. The framing goes through a
    /// local and is stored back at once: no access to `requestBody` spans the scan (each stays
    /// instantaneous, so the compiler leaves out the dynamic exclusivity check on all of them).
    private func takeRequestBody(from buffer: inout ByteBuffer) throws -> (ByteBuffer?, Bool) {
        var body = requestBody
        defer { requestBody = body }
        return try body.take(from: &buffer)
    }

    /// The end of a read: what the client's bytes gave the ship's connection is sent; while its
    /// socket is full, the client is not read.
    func readComplete() {
        switch state {
        case .proxying: if exchange?.upstream?.flush() == true { pauseClientReads() }
        case .tunnelled:
            if tunnelEnd?._withUnsafeGuaranteedRef({ $0.flush() }) == true { pauseClientReads() }
        default: break
        }
    }

    /// The client's connection closed.
    func closed() {
        switch state {
        case .proxying: exchange?.abandon()
        // What the client sent before it went is still the ship's (the send timeout bounds it).
        case .tunnelled: tunnel?.closeAfterWrites(within: settings.limits.sendTimeout)
        default: break
        }
        state = .closed
        clientWritable = false
        deadline = nil
    }

    func writabilityChanged(_ writable: Bool) {
        clientWritable = writable
        guard writable else { return }
        if stalledBytes != nil {
            stalledBytes = nil
            unwatch()
        }
        switch state {
        case .proxying: exchange?.upstream?.resumeReads()
        case .tunnelled: tunnel?.resumeReads()
        default: break
        }
    }

    /// The client's address as a PROXY protocol header gave it.
    func proxyHeaderGave(address: String?, port: Int?) {
        clientAddress = address
        clientPort = port
    }

    /// The listener lands: the current response, if any, is the last.
    func drain() {
        draining = true
        if case .idle = state { closeClient() }
    }

    // MARK: Requests

    /// A reload changed the bind: this request and the next go by its new settings; a removed
    /// bind's connection closes after this response.
    private func takeNewSettings() {
        let (changes, settings, retired) = source.snapshot()
        seenChanges = changes
        self.settings = settings
        if retired { draining = true }
    }

    private func refuse(_ failure: HeadParser.Failure) {
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
        respond(response, version: .http1_1)
    }

    private func received(head: MessageHead) {
        loop.requests?.increment()
        if source.changes != seenChanges { takeNewSettings() }
        unwatch()
        stalledBytes = nil
        requestBody = BodyFraming.request(head)
        // Past an Upgrade (or CONNECT) request, unless the ship switches protocols, the bytes that
        // follow are not HTTP: the connection closes after the answer.
        let isUpgrade = head.isUpgrade
        let close = !head.isKeepAlive || draining || isUpgrade || head.method.isConnect
        // SPEC §4, in order. The PROXY header and the client address come first, per connection
        // (`clientAddress`: the PROXY protocol's address when one was sent). Each step costs a nil
        // check when the manifest leaves its feature off, and returns true when it answered.
        if answeredByRateLimit(head: head, close: close) { return }
        // One normalised path for static dirs, modules and routes (SPEC §4).
        let target: RequestTarget
        do {
            target = try RequestTarget.parse(head.targetString, method: head.method)
        } catch {
            refuse(.malformed(error.reason))
            return
        }
        if settings.edge.staticFiles != nil,
            answeredFromStaticFiles(head: head, path: target.path, query: target.query, close: close)
        {
            return
        }
        if let hooks = settings.hooks {
            // Request modules (SPEC §7): they may answer, or change the path and headers routed on;
            // they go on with `routeRequest`. A module that reads the request gets its JA4H.
            runRequestHooks(hooks, head: head, target: target, close: close, isUpgrade: isUpgrade)
            return
        }
        routeRequest(head: head, target: target, close: close, isUpgrade: isUpgrade)
    }

    /// The CORS preflight cache, the route table and the proxying of SPEC §4, after the steps that
    /// may answer first. `target` is `head`'s request target, parsed once per request.
    func routeRequest(head: MessageHead, target: RequestTarget, close: Bool, isUpgrade: Bool) {
        let path = target.path
        var corsCapture: CorsCapture?
        if answeredFromCorsCache(head: head, path: path, close: close, miss: &corsCapture) {
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
            answer(response, head: head, close: close, entry: counted)
            return
        case .bay(let bayEntry, let berth):
            boardBay(berth, head: head, entry: bayEntry, close: close)
            return
        case .ship(let shipEntry, let shipBreaker, let trial):
            (entry, breaker, isTrial) = (shipEntry, shipBreaker, trial)
        }
        guard let pool = loop.pool(for: entry) else {
            // The ship's gate is open but none of its instances takes requests (one retired, the
            // next not ready yet): as a ship that is not ready.
            if isTrial { breaker.abandonTrial() }
            answer(.notReady(ship: entry.ship), head: head, close: close, entry: entry)
            return
        }
        var upstreamHead = requestHeads.take(
            capacity: head.bytes.readableBytes + 256, allocator: allocator)
        // The generator (a plain value) goes through a local: no access to the loop's spans the write.
        var requestIDs = loop.requestIDs
        ShipRouting.writeShipHead(
            head, target: target, entry: entry,
            client: HeadWriter.Client(addressBytes: clientAddressBytes, secure: secure),
            requestIDs: &requestIDs, into: &upstreamHead)
        loop.requestIDs = requestIDs
        requestHeads.keep(upstreamHead)
        let exchange = Exchange(
            owner: self, entry: entry, pool: pool,
            breaker: breaker,
            head: upstreamHead, method: head.method, target: target.forwarded, clientVersion: head.version,
            closeClient: close, isUpgrade: isUpgrade, bodyless: requestBody.isNone, isTrial: isTrial)
        exchange.corsCapture = corsCapture
        // Compression (SPEC §5.2), the last step, is chosen now and applied to the response.
        exchange.compression = compressionRequest(head)
        state = .proxying
        self.exchange = exchange
        if head.expectsContinue {
            // The relay takes the expectation on (the ship never sees it): the client sends its
            // body now instead of after its own timeout.
            sendNow(allocator.buffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"))
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
    func answer(_ response: LocalResponse, head: MessageHead, close: Bool, entry: RouteEntry? = nil) {
        entry?.requests.increment()
        state = .answered(close: close)
        writeLocal(response, version: head.version, close: close, isHead: head.method.isHead)
    }

    /// Answers and closes (malformed request, oversized head).
    func respond(_ response: LocalResponse, version: HTTPVersion) {
        writeLocal(response, version: version, close: true, isHead: false)
        closeAfterWrites()
    }

    /// Closes the connection once everything written so far has gone out.
    func closeAfterWrites() {
        state = .closed
        deadline = nil
        transport?.closeAfterWrites()
    }

    private func writeLocal(_ response: LocalResponse, version: HTTPVersion, close: Bool, isHead: Bool) {
        var bytes = allocator.buffer(capacity: 256)
        HeadWriter.local(response, version: version, close: close, isHead: isHead, into: &bytes)
        sendNow(bytes)
    }

    /// Writes a whole answer and sends it at once.
    func sendNow(_ bytes: ByteBuffer) {
        guard let transport else { return }
        transport.write(bytes)
        transport.flush()
    }

    // MARK: Called by the exchange

    /// Queues bytes for the client until `flushClient`.
    func writeToClient(_ bytes: ByteBuffer) {
        transport?.write(bytes)
    }

    /// Sends what was queued; while the client's socket is full the ship's reads are held.
    func flushClient() {
        guard let transport, transport.flush(), !clientWritable else { return }
        switch state {
        case .proxying:
            guard let exchange else { return }
            exchange.upstream?.pauseReads()
            if exchange.responseStarted && stalledBytes == nil {
                // The send timeout (SPEC §4) runs while the client's socket is full.
                stalledBytes = transport.heldBytes
                watch(for: settings.limits.sendTimeout)
            }
        case .tunnelled: tunnel?.pauseReads()
        default: break
        }
    }

    func closeClient() {
        state = .closed
        deadline = nil
        transport?.close()
    }

    /// The exchange wrote its last bytes; the connection waits for the next request or closes.
    func exchangeFinished(_ exchange: Exchange) {
        guard self.exchange === exchange, let transport else { return }
        // Settled before the flush, so that nothing the flush sets off finds the connection still
        // busy with the finished exchange.
        settle(close: exchange.closeClient, requestEnded: exchange.requestEnded)
        transport.flush()
    }

    /// An exchange that cannot finish its response (the ship went away mid-body): close the client.
    func exchangeBroken(_ exchange: Exchange) {
        guard self.exchange === exchange, let transport else { return }
        transport.flush()
        closeClient()
    }

    /// An exchange that failed before any response byte: answer it locally.
    func exchangeFailed(_ exchange: Exchange, response: LocalResponse) {
        guard self.exchange === exchange else { return }
        // After a failure the connection closes once the request body, if any is still coming, is dropped.
        let close = exchange.closeClient || !exchange.requestEnded
        writeLocal(response, version: exchange.clientVersion, close: close, isHead: exchange.isHead)
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
        transport?.setReading(false)
    }

    func resumeClientReads() {
        guard readsPaused else { return }
        if let exchange, exchange.requestEnded, inbound != nil { return }
        readsPaused = false
        transport?.setReading(true)
    }

    private func becomeIdle() {
        state = .idle
        requestBody = .none
        if draining {
            closeAfterWrites()  // landing: the response just written still goes out first
            return
        }
        // A pipelined request is next; not from inside the write that ends this response.
        if inbound != nil { transport?.processLater() }
        resumeClientReads()
        watch(for: settings.limits.idleTimeout)
    }

    /// Bytes read earlier (a pipelined request, or what came with a connection handed over):
    /// taken as a read would take them, and flushed as the end of a read would (a request body
    /// that came with its head must not wait for the client's next read to reach the ship).
    func processInbound() {
        guard transport != nil, let bytes = inbound else { return }
        inbound = nil
        process(bytes)
        readComplete()
        resumeClientReads()
    }

    // MARK: The deadline

    /// Watches the connection for `amount`: while idle (no request head yet) it then closes; while
    /// proxying, the exchange times out waiting for the ship's first byte.
    func watch(for amount: TimeAmount) { watch(until: NIODeadline.now() + amount) }

    func unwatch() {
        guard deadline != nil else { return }
        deadline = nil
        transport?.clearWatch()
    }

    func watch(until deadline: NIODeadline) {
        self.deadline = deadline
        transport?.watch(until: deadline)
    }

    /// The driver's timer fired: acts when the deadline set last has passed.
    func deadlinePassed(now: NIODeadline) {
        guard let deadline else { return }
        guard now >= deadline else {
            // The deadline moved while the timer slept: sleep again until the new one.
            transport?.watch(until: deadline)
            return
        }
        self.deadline = nil
        switch state {
        case .idle: closeClient()
        case .proxying:
            guard let exchange else { return }
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
        guard let transport, let stalled = stalledBytes, !clientWritable else {
            stalledBytes = nil
            return
        }
        let held = transport.heldBytes
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

    /// Closes with a reset: the bytes the client never took are dropped with the socket instead of
    /// keeping it, and its buffers, alive in the kernel for as long as the client keeps its window
    /// shut (nginx's `reset_timedout_connection`).
    func resetClient() {
        state = .closed
        deadline = nil
        transport?.reset()
    }

    static func microsecondsSinceEpoch() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec / 1000)
    }

    // MARK: Tunnels

    /// The ship accepted an upgrade: from here both connections pass bytes unchanged. What the
    /// client sent after its request already waits in `inbound` and goes first.
    func startTunnel(to upstream: ShipLink, load: InstanceLoad) {
        guard transport != nil else {
            load.end()
            upstream.close()
            return
        }
        state = .tunnelled
        tunnel = upstream
        deadline = nil
        transport?.clearWatch()
        upstream.enterTunnel(peer: self, load: load)
        if let bytes = inbound {
            inbound = nil
            upstream.send(bytes)
            upstream.flush()
        }
        flushClient()
        transport?.joinTunnel(to: upstream)
        if readsPaused {
            readsPaused = false
            transport?.setReading(true)
        }
    }

    /// A bay takes the connection: the bytes that follow the upgrade in this read go with it.
    func handOverToBay(_ berth: BayBerth, _ boarding: BayBoarding) {
        state = .handedOver
        self.boarding = (berth, boarding)
    }
}

/// Asks every connection of a listener to finish its current response and close.
struct RelayDrainEvent: Sendable {}
