import NIOCore
import NIOHTTP1

/// The relay's end of one keep-alive connection to a ship. It lives on the client's event loop;
/// while leased it parses the ship's response (head, then body framing) and hands both to its
/// `owner`, and it holds back reads while the client cannot take more data (backpressure). After an
/// accepted upgrade it is one end of a byte tunnel to the client's handler.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The exchange using this connection now; nil while idle in the pool. Strong (a weak
    /// reference costs an allocation per exchange): every way an exchange lets go of its
    /// connection clears it, and so does the connection closing.
    var owner: Exchange?
    /// Strong, like `tunnelPeer`: a weak reference would move the object's reference counts to a
    /// side table and make every retain of it slower. Pools live as long as their loop; both are
    /// cleared when the connection closes.
    var pool: UpstreamPool?
    /// The client's handler once this connection is a tunnel.
    private var tunnelPeer: RelayServerHandler?
    private(set) var context: ChannelHandlerContext?
    /// Set by the owner while the client's socket is full (reading is off: `autoRead`).
    private var readsPaused = false

    private enum Phase {
        case idle
        case head
        case body(BodyFraming, dechunk: Bool)
        case tunnel
    }
    private var phase = Phase.idle
    private var inbound: ByteBuffer?
    private var scanned = 0
    /// The last head's field list, for the next head to parse into.
    private var spareFields: [HeaderField] = []

    /// The channel's writability, kept from its change events (SwiftNIO fires them as a write
    /// crosses the high water mark and as a flush drains below the low one): asking the channel
    /// costs reference counting on the hot path.
    private(set) var isWritable = false
    /// Open: set when the handler joins an active channel, cleared when it goes inactive (cheaper
    /// than asking the channel on every lease).
    private(set) var isActive = false
    /// Writes to the ship's socket (straight to it while it takes them).
    private var writer = SocketWriter()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
        isWritable = context.channel.isWritable
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        writer.attach(to: context.channel)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        writer.stop()
        self.context = nil
    }

    /// A request head is about to go out: the next bytes from the ship start its response.
    func expectResponse() {
        phase = .head
        inbound = nil
        scanned = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if case .tunnel = phase {
            tunnelPeer?.writeToClient(bytes)
            return
        }
        guard owner != nil else {
            // An idle connection that talks out of turn cannot be trusted with the next request.
            context.close(promise: nil)
            return
        }
        if var buffered = inbound, buffered.readableBytes > 0 {
            inbound = nil
            var more = bytes
            buffered.writeBuffer(&more)
            process(buffered, context: context)
        } else {
            process(bytes, context: context)
        }
    }

    private func process(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        var buffer = bytes
        loop: while let owner {
            switch phase {
            case .idle:
                // Bytes beyond the end of a response: the connection is out of step.
                owner.upstreamMalformed(self, reason: "bytes after the end of a response")
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            case .head:
                // As in the client's handler: parsed into a local with the last head's field list.
                var head = MessageHead(bytes: buffer)
                swap(&head.fields, &spareFields)
                switch HeadParser.next(
                    from: &buffer, kind: .response, limits: .response, scanned: &scanned, into: &head)
                {
                case .incomplete:
                    swap(&head.fields, &spareFields)
                    break loop
                case .failure(let failure):
                    owner.upstreamMalformed(self, reason: Self.describe(failure))
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                case .complete:
                    if head.status >= 100 && head.status < 200 && head.status != 101 {
                        swap(&head.fields, &spareFields)
                        continue loop  // informational: the final head follows
                    }
                    let action = owner.responseHead(head, from: self)
                    swap(&head.fields, &spareFields)
                    switch action {
                    case .read(let framing, let dechunk):
                        if framing.isNone {
                            endResponse(for: owner, leftover: buffer.readableBytes)
                            break loop
                        }
                        phase = .body(framing, dechunk: dechunk)
                    case .tunnel:
                        break loop
                    case .close:
                        buffer.moveReaderIndex(to: buffer.writerIndex)
                        break loop
                    }
                }
            case .body(var framing, let dechunk):
                if buffer.readableBytes == 0 { break loop }
                let ended: Bool
                do {
                    if dechunk {
                        ended = try framing.takeDechunked(from: &buffer) {
                            owner.responseBody($0, from: self)
                        }
                    } else {
                        let (slice, done) = try framing.take(from: &buffer)
                        if let slice { owner.responseBody(slice, from: self) }
                        ended = done
                    }
                } catch {
                    owner.upstreamMalformed(self, reason: "invalid chunked body")
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                }
                if ended {
                    endResponse(for: owner, leftover: buffer.readableBytes)
                    break loop
                }
                phase = .body(framing, dechunk: dechunk)
            case .tunnel:
                break loop
            }
        }
        if case .tunnel = phase {
            if buffer.readableBytes > 0 {
                // What the ship sent right after its 101 belongs to the new protocol.
                tunnelPeer?.writeToClient(buffer)
                tunnelPeer?.flushClient()
                buffer.moveReaderIndex(to: buffer.writerIndex)
            }
            // Only now: the tunnel thread must find both channels with nothing left to write.
            tunnelPeer?.passTunnelToPump()
        }
        if buffer.readableBytes > 0, owner != nil {
            inbound = buffer
        }
    }

    /// The response is complete; bytes after it mean the connection is out of step.
    private func endResponse(for owner: Exchange, leftover: Int) {
        phase = .idle
        owner.responseEnded(from: self, reusable: leftover == 0)
    }

    private static func describe(_ failure: HeadParser.Failure) -> String {
        switch failure {
        case .malformed(let reason): reason
        case .uriTooLong, .headersTooLarge: "response head too large"
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .tunnel = phase {
            tunnelPeer?.flushClient()
        } else {
            owner?.upstreamReadComplete(from: self)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        isWritable = false
        writer.stop()
        pool?.remove(self)
        pool = nil
        switch phase {
        case .tunnel:
            tunnelPeer?.closeClient()
            tunnelPeer = nil
        case .body(.untilClose, _):
            // The ship's close ends a body without a length.
            phase = .idle
            owner?.responseEnded(from: self, reusable: false)
        default:
            owner?.upstreamClosed(self, error: nil)
        }
        owner = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .tunnel = phase {
            tunnelPeer?.closeClient()
        } else {
            owner?.upstreamClosed(self, error: error)
        }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if isWritable {
            if case .tunnel = phase {
                tunnelPeer?.resumeClientReads()
            } else {
                owner?.upstreamBecameWritable(self)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Used by the owner (same event loop)

    func send(_ bytes: ByteBuffer) {
        guard let context else { return }
        writer.write(bytes, context: context)
    }

    /// Sends what `send` queued. Returns true when the socket is full: the caller holds its reads
    /// until `channelWritabilityChanged`.
    @discardableResult
    func flush() -> Bool {
        guard let context else { return false }
        return writer.flush(context: context) && !isWritable
    }

    /// Turns this connection into the ship's end of a tunnel to `peer`.
    func enterTunnel(peer: RelayServerHandler) {
        tunnelPeer = peer
        phase = .tunnel
    }

    /// The tunnel went to the pump: this channel's closing is not the tunnel's end.
    func leaveTunnel() {
        tunnelPeer = nil
        phase = .idle
    }

    /// The socket's descriptor while direct writes are on, else -1.
    var descriptor: CInt { writer.descriptor }

    func pauseReads() {
        guard !readsPaused else { return }
        readsPaused = true
        context?.channel.setAutoRead(false)
    }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        context?.channel.setAutoRead(true)
    }

    func close() { context?.close(promise: nil) }
}

/// Idle keep-alive connections to one ship on one event loop (most recently used first).
final class UpstreamPool {
    let address: SocketAddressOrPath
    private var idle: [UpstreamHandler] = []
    /// The ship's idle connections over all pools (every loop's and the lane's) stay within it.
    private let allowance: IdleAllowance

    init(address: SocketAddressOrPath, allowance: IdleAllowance) {
        self.address = address
        self.allowance = allowance
    }

    /// An idle, still open connection, or nil.
    func lease() -> UpstreamHandler? {
        while let handler = idle.popLast() {
            allowance.give()
            if handler.isActive { return handler }
        }
        return nil
    }

    /// Returns a connection whose exchange finished cleanly.
    func release(_ handler: UpstreamHandler) {
        handler.owner = nil
        handler.resumeReads()
        guard handler.isActive else { return }
        if allowance.take() {
            idle.append(handler)
        } else {
            handler.close()
        }
    }

    func remove(_ handler: UpstreamHandler) {
        let before = idle.count
        idle.removeAll { $0 === handler }
        for _ in idle.count..<before { allowance.give() }
    }

    func closeAll() {
        let handlers = idle
        idle.removeAll()
        for handler in handlers {
            allowance.give()
            handler.close()
        }
    }
}

/// A ship's address as the client bootstrap wants it.
enum SocketAddressOrPath {
    case tcp(host: String, port: Int)
    case unix(path: String)
}
