import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

/// One proxied request: from the rewritten head to the last byte of the ship's response. Lives on
/// the client's event loop with the upstream connection it leases from the loop's pool.
///
/// Failure rules (SPEC §4): refused or reset before any byte reached the ship → retried on a fresh
/// connection up to `limits.retries` times, then 502; connect timeout or no first byte in time → 504;
/// the ship going away mid-response closes the client connection. Each request counts once in the
/// ship's circuit breaker.
final class Exchange {
    private weak var owner: RelayServerHandler?
    let entry: RouteEntry
    let pool: UpstreamPool
    let breaker: ShipBreaker
    let head: HTTPRequestHead
    let clientVersion: HTTPVersion
    /// Whether the client connection closes after this response.
    private(set) var closeClient: Bool
    let isUpgrade: Bool
    let isHead: Bool
    /// Whether this request is the half-open breaker's trial.
    let isTrial: Bool
    private let limits: RelayLimits
    private let eventLoop: any EventLoop
    private let started = NIODeadline.now()

    private(set) var upstream: UpstreamHandler?
    /// Parts that arrived before the upstream connection was ready.
    private var pending: [HTTPClientRequestPart] = []
    private(set) var requestEnded = false
    private var bodySent = false
    private var responseStarted = false
    private var upgrading = false
    private var finished = false
    private var abandoned = false
    private var attempts = 0
    private var upstreamKeepAlive = true
    /// Whether the current upstream connection came from the pool (it may have been closed by the
    /// ship while idle: the one case where a request whose head was sent is retried).
    private var upstreamReused = false

    init(
        owner: RelayServerHandler, entry: RouteEntry, pool: UpstreamPool, breaker: ShipBreaker,
        head: HTTPRequestHead, clientVersion: HTTPVersion, closeClient: Bool, isUpgrade: Bool, isHead: Bool,
        isTrial: Bool
    ) {
        self.owner = owner
        self.entry = entry
        self.pool = pool
        self.breaker = breaker
        self.head = head
        self.clientVersion = clientVersion
        self.closeClient = closeClient
        self.isUpgrade = isUpgrade
        self.isHead = isHead
        self.isTrial = isTrial
        self.limits = owner.settings.limits
        self.eventLoop = owner.context!.eventLoop
    }

    func start() {
        attempts = 1
        if let handler = pool.lease() {
            attach(handler, reused: true)
        } else {
            connect()
        }
    }

    /// A part of the client's request: sent on, or queued until the connection is ready.
    func forward(_ part: HTTPClientRequestPart) {
        if case .end = part { requestEnded = true }
        guard !finished else { return }
        guard let upstream else {
            pending.append(part)
            if case .body = part { owner?.pauseClientReads() }
            return
        }
        if case .body = part { bodySent = true }
        upstream.send(part)
        if !upstream.isWritable { owner?.pauseClientReads() }
    }

    /// The client went away: drop the upstream connection (it is mid-exchange, not reusable).
    func abandon() {
        if isTrial && !finished { breaker.abandonTrial() }
        abandoned = true
        if let upstream {
            upstream.owner = nil
            upstream.close()
            self.upstream = nil
        }
    }

    // MARK: Connecting

    private func connect() {
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.recvAllocator, value: RelayLimits.receiveBuffers)
            .channelOption(.writeBufferWaterMark, value: RelayLimits.writeWaterMarks)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes, enableOutboundHeaderValidation: false)
                    try pipeline.addHandler(UpstreamHandler())
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch self.pool.address {
        case .tcp(let host, let port):
            bootstrap = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
            connected = bootstrap.connect(host: host, port: port)
        case .unix(let path):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        connected.whenComplete { result in
            let exchange = bound.value
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                else {
                    channel.close(promise: nil)
                    exchange.connectFailed(ChannelError.ioOnClosedChannel)
                    return
                }
                handler.pool = exchange.pool
                exchange.attach(handler, reused: false)
            case .failure(let error):
                exchange.connectFailed(error)
            }
        }
    }

    private func attach(_ handler: UpstreamHandler, reused: Bool) {
        guard !abandoned, !finished else {
            pool.release(handler)
            return
        }
        upstream = handler
        upstreamReused = reused
        handler.owner = self
        handler.send(.head(head))
        for part in pending {
            if case .body = part { bodySent = true }
            handler.send(part)
        }
        pending.removeAll()
        handler.flush()
        if handler.isWritable { owner?.resumeClientReads() } else { owner?.pauseClientReads() }
        owner?.watch(for: limits.firstByteTimeout)
    }

    private func connectFailed(_ error: any Error) {
        guard !abandoned, !finished else { return }
        if case ChannelError.connectTimeout = error {
            fail(
                .gatewayTimeout(
                    ship: entry.ship,
                    reason:
                        "no connection within \(DurationText.format(.nanoseconds(limits.connectTimeout.nanoseconds)))"
                ))
        } else if attempts <= limits.retries {
            attempts += 1
            connect()
        } else {
            fail(.badGateway(ship: entry.ship, reason: SocketErrorText.describe(error)))
        }
    }

    /// The connection's watchdog fired while waiting for the ship's first byte.
    func timedOut() {
        guard !responseStarted, !finished, let upstream else { return }
        upstream.owner = nil
        upstream.close()
        self.upstream = nil
        fail(
            .gatewayTimeout(
                ship: entry.ship,
                reason:
                    "no response within \(DurationText.format(.nanoseconds(limits.firstByteTimeout.nanoseconds)))"
            ))
    }

    // MARK: Upstream events

    func upstreamReceived(_ part: HTTPClientResponsePart, from handler: UpstreamHandler) {
        guard handler === upstream, let owner else { return }
        switch part {
        case .head(let response):
            responseStarted = true
            owner.unwatch()
            if response.status == .switchingProtocols && isUpgrade {
                upgrading = true
                owner.writeToClient(.head(response))
                return
            }
            upstreamKeepAlive = response.isKeepAlive
            if owner.draining { closeClient = true }  // landing: say so in this response
            if clientVersion == .http1_0 && !response.headers.contains(name: "content-length") {
                closeClient = true  // an HTTP/1.0 client learns where the body ends only by the close
            }
            owner.writeToClient(
                .head(
                    ForwardedHeaders.clientResponse(
                        response, clientVersion: clientVersion, closeAfter: closeClient)))
        case .body(let body):
            owner.writeToClient(.body(.byteBuffer(body)))
        case .end:
            if upgrading {
                finishUpgrade(handler, owner: owner)
            } else {
                complete(handler, owner: owner)
            }
        }
    }

    func upstreamReadComplete(from handler: UpstreamHandler) {
        guard handler === upstream else { return }
        owner?.flushClient()
    }

    func upstreamBecameWritable(_ handler: UpstreamHandler) {
        guard handler === upstream else { return }
        owner?.resumeClientReads()
    }

    func upstreamClosed(_ handler: UpstreamHandler, error: (any Error)?) {
        guard handler === upstream, !finished, !abandoned else { return }
        upstream = nil
        handler.owner = nil
        if responseStarted {
            finished = true
            record(success: false)
            owner?.exchangeBroken(self)
        } else if upstreamReused && !bodySent && head.method.isIdempotent && attempts <= limits.retries {
            // A pooled connection the ship had closed while idle: only the head went out, into a
            // closing socket. Retried on a fresh connection, for idempotent methods only (a ship
            // that read a POST and then dropped the connection must not receive it twice).
            attempts += 1
            pending = requestEnded ? [.end(nil)] : []
            connect()
        } else {
            fail(
                .badGateway(
                    ship: entry.ship,
                    reason: error.map(SocketErrorText.describe) ?? "connection closed before a response"))
        }
    }

    // MARK: Endings

    private func complete(_ handler: UpstreamHandler, owner: RelayServerHandler) {
        finished = true
        record(success: true)
        upstream = nil
        if upstreamKeepAlive && requestEnded {
            pool.release(handler)
        } else {
            handler.owner = nil
            handler.close()
        }
        owner.exchangeFinished(self)
    }

    private func fail(_ response: LocalResponse) {
        finished = true
        record(success: false)
        owner?.settings.logger.warning(
            "\(response.status.code) for \(head.method) \(head.uri): \(response.message)")
        owner?.exchangeFailed(self, response: response)
    }

    private func record(success: Bool) {
        entry.requests.increment()
        entry.duration.recordNanoseconds(
            Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds))
        if success {
            breaker.recordSuccess()
        } else {
            breaker.recordFailure()
        }
    }

    /// The ship accepted the upgrade: from here on bytes flow unchanged both ways.
    private func finishUpgrade(_ handler: UpstreamHandler, owner: RelayServerHandler) {
        finished = true
        record(success: true)
        upstream = nil
        handler.owner = nil
        handler.pool = nil
        owner.startTunnel(to: handler)
    }
}

extension HTTPMethod {
    /// RFC 9110 §9.2.2: repeating the request has the same effect as sending it once.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }
}
