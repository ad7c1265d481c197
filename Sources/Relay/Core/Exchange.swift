import Logging
import NIOCore
import NIOHTTP1
import ShipManifest

/// One proxied request: from the rewritten head to the last byte of the ship's response. Lives on
/// the client connection's thread with the ship connection it leases from that thread's pool.
///
/// Failure rules (SPEC §4): refused or reset before any byte reached the ship → retried on a fresh
/// connection up to `limits.retries` times, then 502; connect timeout or no first byte in time → 504;
/// the ship going away mid-response closes the client connection. Each request counts once in the
/// ship's circuit breaker.
final class Exchange {
    /// The client connection's handler. Strong: the handler drops the exchange when it finishes,
    /// fails or the client goes away, which ends the cycle; after `abandon()` nothing calls back.
    private let owner: ClientConnection
    let entry: RouteEntry
    let pool: UpstreamPool
    let breaker: ShipBreaker
    /// The request head as sent to the ship.
    let head: ByteBuffer
    let method: HTTPMethod
    /// For logs: the request target as the client sent it.
    let target: String
    let clientVersion: HTTPVersion
    /// Whether the client connection closes after this response.
    private(set) var closeClient: Bool
    let isUpgrade: Bool
    /// Stored: reading it from `method` copies the enum (a retain for a non-standard method).
    let isHead: Bool
    /// Whether this request is the half-open breaker's trial.
    let isTrial: Bool
    private let limits: RelayLimits
    private let started = NIODeadline.now()

    private(set) var upstream: ShipLink?
    /// Body bytes that arrived before the upstream connection was ready. Unchecked for
    /// exclusivity: an exchange lives on one thread, and no access to this spans a call out of
    /// the exchange (appending and emptying call only the standard library), so none can overlap
    /// another; checked, `append`'s growth kept a runtime check on every request's `attach`.
    @exclusivity(unchecked) private var pending: [ByteBuffer] = []
    private(set) var requestEnded = false
    private var bodySent = false
    private(set) var responseStarted = false
    private var reframing = HeadWriter.Reframing.none
    /// The response head (and small body pieces after it) not yet written: one write per response
    /// in the usual case.
    private var unwritten: ByteBuffer?
    private var finished = false
    private var abandoned = false
    /// Counted in the instance's requests in flight (from `start` until it ends, one way or another).
    private var loaded = false
    /// The ship's `request_timeout`, or the relay's `first_byte_timeout`.
    private let firstByteTimeout: TimeAmount
    private var attempts = 0
    private var upstreamKeepAlive = true
    /// Whether the current upstream connection came from the pool (it may have been closed by the
    /// ship while idle: the one case where a request whose head was sent is retried).
    private var upstreamReused = false
    /// Edge features (SPEC §5.2, §5.3), set by the handler before `start()`; nil when off.
    var compression: CompressionRequest?
    var corsCapture: CorsCapture?
    /// Compresses this response's body on its way to the client.
    private var compressor: ResponseCompressor?

    init(
        owner: ClientConnection, entry: RouteEntry, pool: UpstreamPool, breaker: ShipBreaker,
        head: ByteBuffer, method: HTTPMethod, target: String, clientVersion: HTTPVersion, closeClient: Bool,
        isUpgrade: Bool, bodyless: Bool, isTrial: Bool
    ) {
        self.owner = owner
        self.entry = entry
        self.pool = pool
        self.breaker = breaker
        self.head = head
        self.method = method
        self.isHead = method.isHead
        self.target = target
        self.clientVersion = clientVersion
        self.closeClient = closeClient
        self.isUpgrade = isUpgrade
        self.requestEnded = bodyless
        self.isTrial = isTrial
        self.limits = owner.settings.limits
        self.firstByteTimeout = entry.requestTimeout ?? owner.settings.limits.firstByteTimeout
    }

    func start() {
        attempts = 1
        loaded = true
        pool.load.begin()
        if let handler = pool.lease() {
            attach(handler, reused: true)
        } else {
            connect()
        }
    }

    /// A piece of the client's request body: sent on, or queued until the connection is ready.
    func forward(body: ByteBuffer) {
        guard !finished else { return }
        guard let upstream else {
            pending.append(body)
            owner.pauseClientReads()
            return
        }
        bodySent = true
        upstream.send(body)
        if !upstream.isWritable { owner.pauseClientReads() }
    }

    /// The client's request is complete (its body's last byte was forwarded).
    func endRequest() {
        requestEnded = true
    }

    /// The client went away: drop the upstream connection (it is mid-exchange, not reusable).
    func abandon() {
        if isTrial && !finished { breaker.abandonTrial() }
        abandoned = true
        unload()
        if let upstream {
            upstream.owner = nil
            upstream.close()
            self.upstream = nil
        }
    }

    // MARK: Connecting

    private func connect() {
        // Gone means the client is.
        guard let transport = owner.transport else {
            abandon()
            return
        }
        transport.connect(to: pool.address, timeout: limits.connectTimeout) { [self] result in
            switch result {
            case .success(let link):
                link.pool = pool
                attach(link, reused: false)
            case .failure(let failure):
                connectFailed(failure)
            }
        }
    }

    private func attach(_ handler: ShipLink, reused: Bool) {
        guard !abandoned, !finished else {
            pool.release(handler)
            return
        }
        upstream = handler
        upstreamReused = reused
        handler.owner = self
        handler.expectResponse()
        handler.send(head)
        if !pending.isEmpty { bodySent = true }
        for body in pending { handler.send(body) }
        pending.removeAll()
        handler.flush()
        if handler.isWritable { owner.resumeClientReads() } else { owner.pauseClientReads() }
        // A pooled connection is attached as the exchange starts: its clock reading serves.
        owner.watch(until: (reused ? started : .now()) + firstByteTimeout)
    }

    private func connectFailed(_ failure: ConnectFailure) {
        guard !abandoned, !finished else { return }
        switch failure {
        case .exhausted(let code):
            // The relay's own failure (no descriptors, no memory): not the ship's (SPEC §4).
            fail(.relayExhausted(ship: entry.ship, code: code), shipAtFault: false)
        case .timedOut:
            fail(
                .gatewayTimeout(
                    ship: entry.ship,
                    reason:
                        "no connection within \(DurationText.format(.nanoseconds(limits.connectTimeout.nanoseconds)))"
                ))
        case .failed(let reason):
            if attempts <= limits.retries {
                attempts += 1
                connect()
            } else {
                fail(.badGateway(ship: entry.ship, reason: reason))
            }
        }
    }

    /// The connection's deadline passed while waiting for the ship's first byte.
    func timedOut() {
        guard !responseStarted, !finished, let upstream else { return }
        upstream.owner = nil
        upstream.close()
        self.upstream = nil
        fail(
            .gatewayTimeout(
                ship: entry.ship,
                reason:
                    "no response within \(DurationText.format(.nanoseconds(firstByteTimeout.nanoseconds)))"
            ))
        if entry.recycleStuck { entry.shipGate?.reportStuck(instance: pool.instance) }
    }

    // MARK: Upstream events

    /// The ship's response head: written to the client (rewritten); says how the upstream handler
    /// goes on reading.
    func responseHead(_ response: MessageHead, from handler: ShipLink) -> ResponseAction {
        guard handler === upstream else { return .close }
        if response.status == 101 {
            guard isUpgrade else {
                upstreamMalformed(handler, reason: "101 Switching Protocols to a request that did not ask")
                return .close
            }
            responseStarted = true
            owner.unwatch()
            var bytes = owner.allocator.buffer(capacity: response.bytes.readableBytes + 16)
            HeadWriter.clientResponse(
                response, clientVersion: clientVersion, closeAfter: false, reframing: .none, into: &bytes)
            owner.writeToClient(bytes)
            finishUpgrade(handler)
            return .tunnel
        }
        responseStarted = true
        owner.unwatch()
        upstreamKeepAlive = response.isKeepAlive
        if owner.draining { closeClient = true }  // landing: say so in this response
        let framing = BodyFraming.response(response, answeringHEAD: isHead)
        if clientVersion == .http1_0 && response.contentLength == nil && !framing.isNone {
            closeClient = true  // an HTTP/1.0 client learns where the body ends only by the close
        }
        if case .untilClose = framing, clientVersion == .http1_1 {
            reframing = .chunk
        } else if case .chunked = framing, clientVersion == .http1_0 {
            reframing = .dechunk
        }
        // Response modules (SPEC §7) first: they may change headers (never the framing); the cached
        // preflight, compression and the client see the edited head. The body streams untouched.
        if let path = owner.responseHookPath, let edited = owner.runResponseHooks(response, path: path) {
            return writeResponseHead(edited, framing: framing)
        }
        return writeResponseHead(response, framing: framing)
    }

    /// Writes the (possibly edited) response head for the client; says how the body is read.
    private func writeResponseHead(_ response: MessageHead, framing: BodyFraming) -> ResponseAction {
        corsCapture?.begin(response, now: EdgeFeatures.now())
        var bytes = owner.responseHeads.take(
            capacity: response.bytes.readableBytes + 32, allocator: owner.allocator)
        if let compression, let decision = compressionDecision(response, compression, framing: framing) {
            // Compression (SPEC §5.2): the body is read as plain data and leaves compressed.
            HeadWriter.compressedResponse(
                response, clientVersion: clientVersion, closeAfter: closeClient, reframing: reframing,
                coding: decision, into: &bytes)
            unwritten = bytes
            if compressor != nil, case .chunked = framing { return .read(framing, dechunk: true) }
            return .read(framing, dechunk: reframing == .dechunk)
        }
        HeadWriter.clientResponse(
            response, clientVersion: clientVersion, closeAfter: closeClient, reframing: reframing,
            into: &bytes)
        unwritten = bytes
        return .read(framing, dechunk: reframing == .dechunk)
    }

    /// Nil when the response passes untouched; else the coding it gets (`.some(nil)`: none, only
    /// `Vary`). Sets up the compressor and the client-side framing of a compressed body.
    private func compressionDecision(
        _ response: MessageHead, _ request: CompressionRequest, framing: BodyFraming
    ) -> ContentCoding?? {
        switch ResponseCompression.decide(response, coding: request.coding, isHead: isHead) {
        case .untouched:
            return nil
        case .varyOnly:
            return .some(nil)
        case .compress(let coding):
            guard !framing.isNone else { return .some(nil) }
            let compressor = ResponseCompressor(coding: coding)
            guard compressor.isUsable else { return .some(nil) }
            self.compressor = compressor
            if clientVersion == .http1_1 {
                reframing = .chunk
            } else {
                reframing = .none
                closeClient = true  // an HTTP/1.0 client learns where the body ends only by the close
            }
            return .some(coding)
        }
    }

    /// A piece of the response body (already without chunk framing when dechunking).
    func responseBody(_ body: ByteBuffer, from handler: ShipLink) {
        guard handler === upstream else { return }
        corsCapture?.append(body)
        if let compressor {
            var compressed = owner.allocator.buffer(capacity: body.readableBytes / 2 + 64)
            compressor.compress(body, into: &compressed)
            if compressed.readableBytes > 0 { emitFramed(compressed) }
            return
        }
        emitFramed(body)
    }

    /// A piece of the body as it goes to the client (in a chunk when re-framing).
    private func emitFramed(_ body: ByteBuffer) {
        if reframing == .chunk {
            var size = owner.allocator.buffer(capacity: 12)
            HeadWriter.writeChunkSize(body.readableBytes, into: &size)
            emit(size)
            emit(body)
            emit(owner.allocator.buffer(staticString: "\r\n"))
        } else {
            emit(body)
        }
    }

    /// Small pieces join the unwritten head; anything larger goes out on its own.
    private func emit(_ bytes: ByteBuffer) {
        if var pendingBytes = unwritten {
            unwritten = nil
            if bytes.readableBytes <= 4096 {
                pendingBytes.writeImmutableBuffer(bytes)
                unwritten = pendingBytes
                return
            }
            writeHead(pendingBytes)
        }
        owner.writeToClient(bytes)
    }

    private func writeUnwritten() {
        if let bytes = unwritten {
            unwritten = nil
            writeHead(bytes)
        }
    }

    /// Writes the response head (with what joined it); its buffer serves the next response.
    private func writeHead(_ bytes: ByteBuffer) {
        owner.writeToClient(bytes)
        owner.responseHeads.keep(bytes)
    }

    /// The response is complete; `reusable` tells whether the connection is clean for another.
    func responseEnded(from handler: ShipLink, reusable: Bool) {
        guard handler === upstream else { return }
        if let compressor {
            var last = owner.allocator.buffer(capacity: 64)
            compressor.finish(into: &last)
            if last.readableBytes > 0 { emitFramed(last) }
            self.compressor = nil
        }
        if reframing == .chunk { emit(owner.allocator.buffer(staticString: "0\r\n\r\n")) }
        writeUnwritten()
        corsCapture?.finish()
        corsCapture = nil
        finished = true
        unload()
        record(success: true)
        upstream = nil
        if upstreamKeepAlive && requestEnded && reusable {
            pool.release(handler)
        } else {
            handler.owner = nil
            handler.close()
        }
        owner.exchangeFinished(self)
    }

    func upstreamReadComplete(from handler: ShipLink) {
        guard handler === upstream else { return }
        writeUnwritten()
        owner.flushClient()
    }

    func upstreamBecameWritable(_ handler: ShipLink) {
        guard handler === upstream else { return }
        owner.resumeClientReads()
    }

    /// The ship sent something that is not HTTP.
    func upstreamMalformed(_ handler: ShipLink, reason: String) {
        guard handler === upstream, !finished, !abandoned else { return }
        upstream = nil
        handler.owner = nil
        handler.close()
        if responseStarted {
            broke()
        } else {
            fail(.badGateway(ship: entry.ship, reason: "invalid response: \(reason)"))
        }
    }

    /// The ship's connection closed (`error`: what the driver saw, for the 502's text).
    func upstreamClosed(_ handler: ShipLink, error: String?) {
        guard handler === upstream, !finished, !abandoned else { return }
        upstream = nil
        handler.owner = nil
        if responseStarted {
            broke()
        } else if upstreamReused && !bodySent && method.isIdempotent && attempts <= limits.retries {
            // A pooled connection the ship had closed while idle: only the head went out, into a
            // closing socket. Retried on a fresh connection, for idempotent methods only (a ship
            // that read a POST and then dropped the connection must not receive it twice).
            attempts += 1
            connect()
        } else {
            fail(
                .badGateway(
                    ship: entry.ship,
                    reason: error ?? "connection closed before a response"))
        }
    }

    // MARK: Endings

    /// The response started but cannot be finished: what was read goes out, then the client closes.
    private func broke() {
        finished = true
        unload()
        record(success: false)
        writeUnwritten()
        owner.exchangeBroken(self)
    }

    private func fail(_ response: LocalResponse, shipAtFault: Bool = true) {
        finished = true
        unload()
        record(success: shipAtFault ? false : nil)
        owner.settings.logger.warning("\(response.status.code) for \(method) \(target): \(response.message)")
        owner.exchangeFailed(self, response: response)
    }

    /// Counts the request; `success` goes to the ship's breaker (nil: a failure of the relay's own,
    /// which says nothing about the ship).
    private func record(success: Bool?) {
        entry.requests.increment()
        entry.duration.record(
            nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds))
        switch success {
        case true?: breaker.recordSuccess()
        case false?: breaker.recordFailure()
        case nil: if isTrial { breaker.abandonTrial() }
        }
    }

    /// The ship accepted the upgrade: from here on bytes flow unchanged both ways.
    private func finishUpgrade(_ handler: ShipLink) {
        finished = true
        record(success: true)
        upstream = nil
        handler.owner = nil
        handler.pool = nil
        // The tunnel holds the instance's count from here until it closes.
        loaded = false
        owner.startTunnel(to: handler, load: pool.load)
    }

    /// The request no longer counts as in flight on its instance.
    private func unload() {
        guard loaded else { return }
        loaded = false
        pool.load.end()
    }
}

/// The client's side of compression for one proxied request: the coding its `Accept-Encoding`
/// allows (nil: none, the response may still get `Vary`).
struct CompressionRequest {
    var coding: ContentCoding?
}

/// What the upstream handler does after a response head.
enum ResponseAction {
    /// Read the body with this framing (chunk data only, when dechunking).
    case read(BodyFraming, dechunk: Bool)
    /// The connection is a tunnel now.
    case tunnel
    /// The connection is no longer wanted.
    case close
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
