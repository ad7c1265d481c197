import CMothershipSystem
import Logging
import NIOCore
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// What a worker keeps of each of its sockets (a client's or a ship's): the descriptor, its epoll
/// interest and the bytes written and not yet taken.
///
/// A socket never leaves its worker's thread: every property is touched by that thread only.
class WorkerSocket {
    /// Strong and constant: reaching a `let` of the object costs no reference counting (an
    /// `unowned(unsafe)` one cost a retain and a release per use). The loop outlives its sockets;
    /// its table lets go of each once it closes (`WorkerLoop.release(slot:)`).
    let loop: WorkerLoop
    let fd: CInt
    /// Its index in the loop's table.
    var slot = -1
    private(set) var isOpen = true
    /// The epoll interest registered now.
    private var interest: UInt32 = 0
    /// Whether the connection wants to read (its driver's `setReading`).
    var reading = true
    /// Written and not yet tried: the first buffer since the last flush, and those after it. Most
    /// flushes send one buffer (a tunnelled message, a response head with its body), which then
    /// never reaches the array.
    private var firstQueued: ByteBuffer?
    /// Unchecked for exclusivity: only this socket's own methods touch it, on its worker's thread,
    /// and none of them calls out of the socket while it holds an access to it (they append,
    /// remove and send with the standard library and `ms_sendv`), so no two accesses to it can
    /// overlap. Checked, the array's growth inside `append` kept the check on every access.
    @exclusivity(unchecked) private var queued: [ByteBuffer] = []
    /// Tried and not taken (the socket was full).
    private(set) var unsent: ByteBuffer?
    /// Past the high water mark: not writable until below the low one.
    private(set) var writable = true
    /// A send failed: the socket closes (after the current call) and takes nothing more.
    private var failed = false
    /// Since when the socket has taken nothing of `unsent` (for send timeouts).
    var stalledSince: NIODeadline?
    /// Closing once everything written has gone out (`closeAfterWrites`).
    private(set) var closeWhenSent = false
    /// The other end of a tunnel between two sockets of this loop (`WorkerClient.joinTunnel`): what
    /// this socket reads goes straight to that one's socket. Both ends hold each other until either
    /// detaches.
    private var splicePeer: WorkerSocket? {
        didSet { spliceEnd = splicePeer.map { Unmanaged.passUnretained($0) } }
    }
    /// `splicePeer`, unretained, for the send each read makes through it (`splicePeer` holds it).
    private var spliceEnd: Unmanaged<WorkerSocket>?

    init(fd: CInt, loop: WorkerLoop) {
        self.fd = fd
        self.loop = loop
    }

    var heldBytes: Int { unsent?.readableBytes ?? 0 }

    /// Its epoll token: its address, which stays its own while it is registered (the loop's table
    /// holds it until it closes, and until the end of the batch of events it closed in).
    var token: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) }

    /// The socket an epoll token names (unretained: see `token`).
    static func named(by token: UInt64) -> Unmanaged<WorkerSocket> {
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: UInt(token))!)
    }

    /// Joins the loop's epoll instance (`connecting`: watched for writing first).
    ///
    /// Edge-triggered, as nginx registers its sockets: a level-triggered socket that was reported
    /// is polled once more at the next wait, ready or not (1.4 % of the relay's CPU per WebSocket
    /// message). So a socket is reported again only when its state changes, and what stops short
    /// of taking everything must ask again: a read stops at a short read (all there was; bytes
    /// arriving later report it again) unless the peer's FIN has come (reported as RDHUP: then it
    /// reads on to the end, which no later event would report), when reading is paused (resuming
    /// sets the interest again, which reports what waits), or after four full reads
    /// (`readAvailable` sets the interest again); a send stops when the socket is full (room
    /// freeing up reports it).
    func register(connecting: Bool = false) -> Bool {
        interest = connecting ? UInt32(MS_EPOLL_OUT) : UInt32(MS_EPOLL_IN)
        return arm(adding: true)
    }

    /// Sets `interest` (edge-triggered, with the peer's shutdown reported) in the loop's epoll
    /// instance; setting it again reports what is ready now.
    @discardableResult
    private func arm(adding: Bool = false) -> Bool {
        ms_epoll_set(loop.epoll, fd, token, interest | Self.edge, adding ? 1 : 0) == 0
    }

    /// Edge-triggered, with the peer's shutdown reported.
    private static let edge = UInt32(truncatingIfNeeded: MS_EPOLL_EDGE) | UInt32(MS_EPOLL_RDHUP)

    /// The events after which a read goes on to the end of the stream: the peer shut down.
    private static let peerShutDown = UInt32(MS_EPOLL_RDHUP | MS_EPOLL_HUP)

    /// What epoll reported for the socket (`MS_EPOLL_*` bits); reads land in `readBuffer`.
    func handle(events: UInt32, readBuffer: inout ByteBuffer) {}

    func updateInterest() {
        guard isOpen else { return }
        var wanted: UInt32 = 0
        if reading { wanted |= UInt32(MS_EPOLL_IN) }
        if unsent != nil || needsWritable { wanted |= UInt32(MS_EPOLL_OUT) }
        guard wanted != interest else { return }
        interest = wanted
        arm()
    }

    /// Subclasses that wait for writability of their own (a file to send) say so.
    var needsWritable: Bool { false }

    func setReading(_ on: Bool) {
        guard reading != on else { return }
        reading = on
        updateInterest()
    }

    func write(_ bytes: ByteBuffer) {
        guard !failed else { return }
        if firstQueued == nil {
            firstQueued = bytes
        } else {
            queued.append(bytes)
        }
    }

    /// Sends what was queued after what waits; true when bytes remain held.
    @discardableResult
    func flush() -> Bool {
        guard !failed, var first = firstQueued.take() else { return unsent != nil }
        if var rest = unsent.take() {
            rest.writeBuffer(&first)
            for var buffer in queued { rest.writeBuffer(&buffer) }
            unsent = rest
            clearQueued()
            checkHighWater()
            return true
        }
        var total = first.readableBytes
        let sent: Int
        if queued.isEmpty {
            sent = first.withUnsafeReadableBytes { ms_send(fd, $0.baseAddress, $0.count) }
        } else {
            for buffer in queued { total += buffer.readableBytes }
            sent = sendVectors(first)
        }
        if sent == total {
            if !queued.isEmpty { clearQueued() }
            return false
        }
        if sent < 0 && !Self.wouldBlock {
            queued.removeAll()
            failSoon()
            return false
        }
        var skip = max(sent, 0)
        var rest = loop.allocator.buffer(capacity: total - skip)
        Self.append(&first, skipping: &skip, to: &rest)
        for var buffer in queued { Self.append(&buffer, skipping: &skip, to: &rest) }
        clearQueued()
        hold(rest)
        return true
    }

    /// Keeps `rest`, what the socket did not take, until it is writable again.
    private func hold(_ rest: ByteBuffer) {
        unsent = rest
        stalledSince = .now()
        checkHighWater()
        updateInterest()
    }

    /// The last failed send only found the socket full.
    private static var wouldBlock: Bool { errno == EAGAIN || errno == EWOULDBLOCK }

    /// What the socket did not take of `buffer` (after the `skip` bytes it took) joins `rest`.
    private static func append(
        _ buffer: inout ByteBuffer, skipping skip: inout Int, to rest: inout ByteBuffer
    ) {
        if skip >= buffer.readableBytes {
            skip -= buffer.readableBytes
            return
        }
        buffer.moveReaderIndex(forwardBy: skip)
        skip = 0
        rest.writeBuffer(&buffer)
    }

    /// Sends `first` and `queued` with one `sendmsg`.
    private func sendVectors(_ first: ByteBuffer) -> Int {
        // Taken out of the loop (not copied): the scratch array stays uniquely referenced, so
        // clearing it keeps its storage instead of allocating.
        var vectors: [iovec] = []
        swap(&vectors, &loop.vectors)
        vectors.removeAll(keepingCapacity: true)
        Self.addVector(first, to: &vectors)
        for index in 0..<min(queued.count, 63) { Self.addVector(queued[index], to: &vectors) }
        // The buffers outlive the call: `first` and `queued` hold them.
        // Beyond 64 buffers (rare), the rest waits as unsent for the socket's next turn.
        let sent = vectors.withUnsafeBufferPointer { ms_sendv(fd, $0.baseAddress, CInt($0.count)) }
        loop.vectors = vectors
        return sent
    }

    private static func addVector(_ buffer: ByteBuffer, to vectors: inout [iovec]) {
        buffer.withUnsafeReadableBytes { bytes in
            vectors.append(
                iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
        }
    }

    /// Empties the queue keeping its storage: one or two buffers, usually, and removing them one
    /// by one costs less than the general `removeAll(keepingCapacity:)`.
    private func clearQueued() {
        while !queued.isEmpty { queued.removeLast() }
    }

    private func checkHighWater() {
        if writable && heldBytes > WorkerLoop.highWater {
            writable = false
            writabilityChanged(false)
        }
    }

    /// The socket is writable again: what waits goes out.
    func sendUnsent() {
        guard var bytes = unsent, !failed else { return }
        let sent = bytes.withUnsafeReadableBytes { ms_send(fd, $0.baseAddress, $0.count) }
        if sent < 0 {
            if !Self.wouldBlock { failSoon() }
            return
        }
        bytes.moveReaderIndex(forwardBy: sent)
        if sent > 0 { stalledSince = .now() }
        unsent = bytes.readableBytes > 0 ? bytes : nil
        if unsent == nil { stalledSince = nil }
        updateInterest()
        if !writable && heldBytes < WorkerLoop.lowWater {
            writable = true
            writabilityChanged(true)
        }
        if unsent == nil && closeWhenSent { closeSocket(error: 0) }
    }

    /// Closes once everything written so far has gone out (after the current event when nothing
    /// waits); reads stop now.
    func closeAfterWrites() {
        flush()
        guard unsent != nil else {
            loop.afterEvent { [self] in closeSocket(error: 0) }
            return
        }
        closeWhenSent = true
        setReading(false)
    }

    /// Whether bytes have waited for the socket, untaken, for `limit` or longer.
    func stalled(for limit: TimeAmount, now: NIODeadline) -> Bool {
        guard let since = stalledSince, unsent != nil else { return false }
        return now - since >= limit
    }

    func writabilityChanged(_ writable: Bool) {}

    /// The send failed: the socket closes after the current call, with the error it had now.
    private func failSoon() {
        guard !failed else { return }
        let code = errno
        failed = true
        unsent = nil
        loop.afterEvent { [self] in closeSocket(error: code) }
    }

    /// Reads what the socket holds (up to four reads of `size`), handing each read to `received`
    /// (or, spliced, straight to the other end's socket) and the end of the batch to `readEnded`;
    /// at the end of the stream or an error, closes. `buffer` is the loop's, lent for the call:
    /// handed on from here it reaches the core without a retain, and what the core keeps of it is
    /// its own copy-on-write reference. `events` are the ones epoll reported: once the peer has
    /// shut down, a short read is not the end of what there is to read.
    func readAvailable(_ size: Int, into buffer: inout ByteBuffer, events: UInt32) {
        let toEnd = events & Self.peerShutDown != 0
        var delivered = false
        var ended: CInt?
        var mayHoldMore = false
        // Nothing in the loop lets go of the other end: its failures close it after the event.
        let splice = spliceEnd
        for round in 0..<4 {
            let count: Int
            if let splice {
                // A tunnel's bytes, unchanged: read into the loop's scratch memory and sent from it
                // (no buffer to count, share or check for exclusive access).
                let scratch = loop.spliceScratch
                count = Self.receive(fd, min(size, scratch.count), into: scratch)
                if count > 0 {
                    delivered = true
                    splice._withUnsafeGuaranteedRef {
                        $0.sendSpliced(UnsafeRawBufferPointer(rebasing: scratch[..<count]))
                    }
                }
            } else {
                count = Self.receive(fd, size, into: &buffer)
                if count > 0 {
                    delivered = true
                    received(buffer)
                }
            }
            if count > 0 {
                if (count < size && !toEnd) || !isOpen || !reading { break }
                mayHoldMore = round == 3
                continue
            }
            if count != -Int(EAGAIN) && count != -Int(EWOULDBLOCK) { ended = count == 0 ? 0 : CInt(-count) }
            break
        }
        if delivered && isOpen { readEnded() }
        if let ended {
            closeSocket(error: ended)
        } else if mayHoldMore && isOpen && reading {
            // Four full reads: the rest waits for the next round of events, which (edge-triggered)
            // reports it only when asked again.
            arm()
        }
    }

    /// Bytes read (the loop's buffer: kept only by copy-on-write).
    func received(_ bytes: ByteBuffer) {}

    /// The end of a batch of reads.
    func readEnded() {}

    /// Reads once into `scratch` (at most `size` bytes): the count, 0 at the end of the stream, or
    /// -errno.
    private static func receive(_ fd: CInt, _ size: Int, into scratch: UnsafeMutableRawBufferPointer) -> Int {
        let count = ms_recv(fd, scratch.baseAddress, size)
        return count >= 0 ? count : -Int(errno)
    }

    /// Bytes the other end of this socket's tunnel read (in the loop's scratch memory, valid for
    /// the call): sent at once when nothing waits before them, and what the socket does not take
    /// is kept (copied) as a partial `flush` keeps it; behind bytes that wait, they are queued (a
    /// copy) for the next `flush`. The core's `readComplete` flushes and decides backpressure,
    /// as for bytes written through it.
    func sendSpliced(_ bytes: UnsafeRawBufferPointer) {
        guard !failed else { return }
        guard firstQueued == nil, unsent == nil else {
            var copy = loop.allocator.buffer(capacity: bytes.count)
            copy.writeBytes(bytes)
            write(copy)
            return
        }
        let sent = ms_send(fd, bytes.baseAddress, bytes.count)
        if sent == bytes.count { return }
        if sent < 0 && !Self.wouldBlock {
            failSoon()
            return
        }
        let taken = max(sent, 0)
        var rest = loop.allocator.buffer(capacity: bytes.count - taken)
        rest.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[taken...]))
        hold(rest)
    }

    /// Joins this socket and `peer` (of the same loop) as the two ends of a tunnel.
    func splice(with peer: WorkerSocket) {
        splicePeer = peer
        peer.splicePeer = self
    }

    /// Reads once into `buffer`, emptied first: the count, 0 at the end of the stream, or -errno.
    private static func receive(_ fd: CInt, _ size: Int, into buffer: inout ByteBuffer) -> Int {
        // Empty, the buffer is writable from its start: its whole storage (kept, unless the core
        // still holds bytes of the last read) is the read's.
        buffer.clear()
        if buffer.capacity < size { buffer.reserveCapacity(size) }
        let count = buffer.withVeryUnsafeMutableBytes { ms_recv(fd, $0.baseAddress, size) }
        if count > 0 {
            buffer.moveWriterIndex(to: count)
            return count
        }
        return count == 0 ? 0 : -Int(errno)
    }

    /// Leaves epoll and closes the descriptor (`keepDescriptor`: someone else owns it now).
    func detach(keepDescriptor: Bool = false) {
        guard isOpen else { return }
        isOpen = false
        _ = ms_epoll_remove(loop.epoll, fd)
        if !keepDescriptor { Glibc.close(fd) }
        if let peer = splicePeer {
            splicePeer = nil
            if peer.splicePeer === self { peer.splicePeer = nil }
        }
        loop.release(slot: slot)
        firstQueued = nil
        queued.removeAll()
        unsent = nil
    }

    /// Closes because the socket failed (`error`: errno) or the peer went away (0).
    func closeSocket(error: CInt) {}
}

// MARK: - Clients

/// A client connection on a worker: the `ClientTransport` of its `ClientConnection`.
final class WorkerClient: WorkerSocket, ClientTransport {
    /// A bind with `proxy_protocol = true`: the first bytes are held until `ProxyHeaderParser`
    /// decides (the rules of `ProxyProtocolHandler`).
    struct ProxyHeaderCheck {
        let trusted: [CIDRRange]?
        var buffered: ByteBuffer?
    }

    let connection: ClientConnection
    private let connections: RelayMetrics.Connections
    let peerPort: Int?
    private var peerAddress: String?
    private var proxyCheck: ProxyHeaderCheck?
    private var deadline: NIODeadline?
    private var file: FileSend?

    init(
        fd: CInt, loop: WorkerLoop, source: ListenerSource, connections: RelayMetrics.Connections,
        peerPort: Int?
    ) {
        self.connection = ClientConnection(source: source, loop: loop.context)
        self.connections = connections
        self.peerPort = peerPort
        super.init(fd: fd, loop: loop)
    }

    var allocator: ByteBufferAllocator { loop.allocator }
    var isWritable: Bool { writable }

    func start(address: String?, proxyProtocol: ProxyHeaderCheck?) {
        peerAddress = address
        proxyCheck = proxyProtocol
        connection.start(transport: self, clientAddress: address)
    }

    // MARK: Events

    override func handle(events: UInt32, readBuffer: inout ByteBuffer) {
        if events & UInt32(MS_EPOLL_OUT) != 0 {
            if file != nil { continueFile() } else { sendUnsent() }
        }
        guard isOpen, events & UInt32(MS_EPOLL_IN | MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 else { return }
        if reading {
            readAvailable(WorkerLoop.clientReadSize, into: &readBuffer, events: events)
        } else if events & UInt32(MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 {
            closeSocket(error: 0)
        }
    }

    override func received(_ bytes: ByteBuffer) {
        if proxyCheck == nil {
            connection.received(bytes)
        } else {
            deliver(bytes)
        }
    }

    override func readEnded() { connection.readComplete() }

    private func deliver(_ bytes: ByteBuffer) {
        guard var check = proxyCheck else {
            connection.received(bytes)
            return
        }
        var bytes = bytes
        check.buffered.setOrWriteBuffer(&bytes)
        guard let buffered = check.buffered else { return }
        let logger = connection.settings.logger
        switch ProxyHeaderParser.parse(buffered) {
        case .needMoreData:
            proxyCheck = check
        case .absent:
            proxyCheck = nil
            connection.received(buffered)
        case .header(let header, let length):
            guard isTrusted(check.trusted) else {
                logger.info(
                    "Closing a connection that sent a PROXY header from outside trusted_proxies",
                    metadata: ["peer": "\(peerAddress ?? "unknown")"])
                close()
                return
            }
            proxyCheck = nil
            if let source = header.source {
                connection.proxyHeaderGave(address: source.ipAddress, port: source.port)
            }
            let rest = buffered.getSlice(
                at: buffered.readerIndex + length, length: buffered.readableBytes - length)!
            if rest.readableBytes > 0 { connection.received(rest) }
        case .invalid(let reason):
            logger.debug(
                "Closing a connection with a malformed PROXY header",
                metadata: ["peer": "\(peerAddress ?? "unknown")", "reason": "\(reason)"])
            close()
        }
    }

    private func isTrusted(_ trusted: [CIDRRange]?) -> Bool {
        guard let trusted else { return true }
        guard let text = peerAddress, let address = IPAddress(parsing: text) else { return false }
        return trusted.contains { $0.contains(address) }
    }

    func sweep(now: NIODeadline) {
        if let deadline, now >= deadline {
            self.deadline = nil
            connection.deadlinePassed(now: now)
        }
        let limit = connection.settings.limits.sendTimeout
        if isOpen, file != nil || closeWhenSent, stalled(for: limit, now: now) {
            connection.settings.logger.info(
                "closing a client that took nothing of \(file.map { "'\($0.path)'" } ?? "its response") for \(DurationText.format(.nanoseconds(limit.nanoseconds)))"
            )
            reset()
        }
    }

    override func writabilityChanged(_ writable: Bool) {
        connection.writabilityChanged(writable)
    }

    override func closeSocket(error: CInt) { close() }

    // MARK: ClientTransport

    func close() {
        guard isOpen else { return }
        endFile()
        detach()
        connections.closed()
        loop.clientLeft()
        connection.closed()
        connection.detach()
    }

    func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    func watch(until deadline: NIODeadline) { self.deadline = deadline }

    func clearWatch() { deadline = nil }

    func processLater() { loop.processLater(self) }

    func connect(
        to address: SocketAddressOrPath, timeout: TimeAmount,
        completion: @escaping (Result<ShipLink, ConnectFailure>) -> Void
    ) {
        WorkerShip.connect(to: address, timeout: timeout, on: loop, completion: completion)
    }

    /// A ship connection of this loop: the two sockets are spliced (`readAvailable`).
    func joinTunnel(to ship: ShipLink) {
        guard isOpen, let peer = ship.transport as? WorkerShip, peer.loop === loop, peer.isOpen else {
            return
        }
        splice(with: peer)
    }

    func handOver(to berth: BayBerth, boarding: BayBoarding, rest: ByteBuffer) {
        guard isOpen else { return }
        // What the socket did not take of the 101 goes first, through SwiftNIO.
        flush()
        let held = unsent
        detach(keepDescriptor: true)
        loop.clientLeft()
        connection.detach()
        let connections = self.connections
        let registry = loop.shared.connections
        loop.shared.metrics.bayMoves.increment()
        let fd = self.fd
        let settings = connection.settings
        ClientBootstrap(group: loop.shared.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        [HeldBytesHandler(unsent: held, rest: rest)] + boarding.handlers(for: berth))
                }
            }
            .withConnectedSocket(fd)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    registry.add(channel)
                    channel.closeFuture.whenComplete { _ in connections.closed() }
                case .failure(let error):
                    connections.closed()
                    settings.logger.warning(
                        "a WebSocket for bay '\(berth.bay)' could not join an event loop: \(error)")
                }
            }
    }

    // MARK: Files

    private struct FileSend {
        let fd: CInt
        var offset: Int
        let end: Int
        let path: String
        let compressor: ResponseCompressor?
        let chunked: Bool
    }

    override var needsWritable: Bool { file != nil }

    func sendFile(
        descriptor: CInt, range: ClosedRange<Int>, path: String, coding: ContentCoding?, chunked: Bool
    ) {
        file = FileSend(
            fd: descriptor, offset: range.lowerBound, end: range.upperBound + 1, path: path,
            compressor: coding.map { ResponseCompressor(coding: $0) }, chunked: chunked)
        stalledSince = .now()
        continueFile()
    }

    /// Sends as much of the file as the socket takes now; the rest when it is writable again.
    private func continueFile() {
        if unsent != nil { sendUnsent() }
        guard isOpen, var send = file else { return }
        if flush() {
            updateInterest()
            return
        }
        if let compressor = send.compressor {
            while send.offset < send.end {
                var chunk = loop.allocator.buffer(capacity: min(64 * 1024, send.end - send.offset))
                let count = min(64 * 1024, send.end - send.offset)
                let read = chunk.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                    max(0, pread(send.fd, target.baseAddress, count, off_t(send.offset)))
                }
                guard read > 0 else {
                    truncated(send, at: send.offset)
                    return
                }
                send.offset += read
                var output = loop.allocator.buffer(capacity: read / 2 + 64)
                compressor.compress(chunk, into: &output)
                write(HeadWriter.framed(output, chunked: send.chunked))
                file = send
                if flush() {
                    updateInterest()
                    return
                }
            }
            var last = loop.allocator.buffer(capacity: 64)
            compressor.finish(into: &last)
            var ending = HeadWriter.framed(last, chunked: send.chunked)
            if send.chunked { ending.writeStaticString("0\r\n\r\n") }
            write(ending)
            flush()
            endFile(succeeded: true)
            return
        }
        while send.offset < send.end {
            var offset = off_t(send.offset)
            let sent = Glibc.sendfile(fd, send.fd, &offset, min(send.end - send.offset, 1 << 20))
            if sent > 0 {
                send.offset += sent
                stalledSince = .now()
                continue
            }
            file = send
            if sent == 0 {
                truncated(send, at: send.offset)
                return
            }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                updateInterest()
                return
            }
            endFile(succeeded: false)
            return
        }
        file = send
        endFile(succeeded: true)
    }

    private func truncated(_ send: FileSend, at offset: Int) {
        connection.settings.logger.warning(
            "static file '\(send.path)' was truncated while being sent (\(offset) of \(send.end) bytes); connection closed"
        )
        endFile(succeeded: false)
    }

    private func endFile(succeeded: Bool? = nil) {
        guard let send = file else { return }
        file = nil
        Glibc.close(send.fd)
        stalledSince = unsent == nil ? nil : stalledSince
        updateInterest()
        if let succeeded { connection.staticFinished(succeeded: succeeded) }
    }
}

/// The bytes a worker had for a WebSocket connection it gives to SwiftNIO: what the socket had not
/// taken goes out first, and what was read after the upgrade is the first thing the frame decoder
/// reads; then the handler leaves.
private final class HeldBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let unsent: ByteBuffer?
    private let rest: ByteBuffer

    init(unsent: ByteBuffer?, rest: ByteBuffer) {
        self.unsent = unsent
        self.rest = rest
    }

    func channelActive(context: ChannelHandlerContext) {
        if let unsent { context.writeAndFlush(wrapOutboundOut(unsent), promise: nil) }
        context.fireChannelActive()
        if rest.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

// MARK: - Ships

/// A connection to a ship on a worker: the `ShipTransport` of its `ShipLink`.
final class WorkerShip: WorkerSocket, ShipTransport {
    let link = ShipLink()
    private var connecting: (completion: (Result<ShipLink, ConnectFailure>) -> Void, deadline: NIODeadline)?
    /// How long, closing after its writes, the socket may take none of them.
    private var sendTimeout = TimeAmount.seconds(60)

    var isWritable: Bool { writable }

    /// Opens a connection to `address`; `completion` runs on the loop, never inside this call.
    static func connect(
        to address: SocketAddressOrPath, timeout: TimeAmount, on loop: WorkerLoop,
        completion: @escaping (Result<ShipLink, ConnectFailure>) -> Void
    ) {
        let fd: CInt
        switch address {
        case .unix(let path):
            fd = ms_connect_stream(nil, 0, path, 0)
        case .tcp(let host, let port):
            let addresses = loop.shared.addresses.addresses(for: host)
            guard !addresses.isEmpty else {
                loop.afterEvent { completion(.failure(.failed("cannot resolve '\(host)'"))) }
                return
            }
            loop.connectRotation &+= 1
            fd = ms_connect_numeric(addresses[loop.connectRotation % addresses.count], CInt(port))
        }
        guard fd >= 0 else {
            let code = -fd
            let failure: ConnectFailure =
                RelayResources.isExhaustion(code) ? .exhausted(code) : .failed(RelayResources.describe(code))
            loop.afterEvent { completion(.failure(failure)) }
            return
        }
        let ship = WorkerShip(fd: fd, loop: loop)
        ship.slot = loop.take(.ship(ship))
        guard ship.register(connecting: true) else {
            ship.detach()
            loop.afterEvent { completion(.failure(.failed("cannot watch the connection"))) }
            return
        }
        ship.connecting = (completion, .now() + timeout)
    }

    override func handle(events: UInt32, readBuffer: inout ByteBuffer) {
        if connecting != nil {
            if events & UInt32(MS_EPOLL_OUT | MS_EPOLL_ERR | MS_EPOLL_HUP) != 0 { connected() }
            return
        }
        if events & UInt32(MS_EPOLL_OUT) != 0 { sendUnsent() }
        guard isOpen, events & UInt32(MS_EPOLL_IN | MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 else { return }
        if reading {
            readAvailable(WorkerLoop.shipReadSize, into: &readBuffer, events: events)
        } else if events & UInt32(MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 {
            closeSocket(error: events & UInt32(MS_EPOLL_ERR) != 0 ? ms_socket_error(fd) : 0)
        }
    }

    private func connected() {
        guard let (completion, _) = connecting else { return }
        connecting = nil
        let error = ms_socket_error(fd)
        guard error == 0 else {
            detach()
            completion(
                .failure(
                    RelayResources.isExhaustion(error)
                        ? .exhausted(error) : .failed(RelayResources.describe(error))))
            return
        }
        updateInterest()
        link.start(transport: self, active: true)
        completion(.success(link))
    }

    override func received(_ bytes: ByteBuffer) { link.received(bytes) }

    override func readEnded() { link.readComplete() }

    func sweep(now: NIODeadline) {
        if closeWhenSent && stalled(for: sendTimeout, now: now) {
            close()
            return
        }
        guard let (completion, deadline) = connecting, now >= deadline else { return }
        connecting = nil
        detach()
        completion(.failure(.timedOut))
    }

    func closeAfterWrites(within limit: TimeAmount) {
        guard connecting == nil else {
            close()
            return
        }
        sendTimeout = limit
        closeAfterWrites()
    }

    override func writabilityChanged(_ writable: Bool) {
        link.writabilityChanged(writable)
    }

    override func closeSocket(error: CInt) {
        guard isOpen else { return }
        detach()
        link.closed(error: error == 0 ? nil : RelayResources.describe(error))
        link.detach()
    }

    func close() {
        guard isOpen else { return }
        if let (completion, _) = connecting {
            connecting = nil
            detach()
            completion(.failure(.failed("connection closed")))
            return
        }
        detach()
        link.closed()
        link.detach()
    }
}
