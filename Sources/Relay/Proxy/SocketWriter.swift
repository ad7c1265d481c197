import CMothershipSystem
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a plain connection's outbound bytes straight to its socket, one `send` or `sendmsg` per
/// flush, instead of through the channel's write and flush operations: those cost about 3,400
/// instructions per response in SwiftNIO's bookkeeping, a fifth of a whole proxied request.
///
/// NIO stays the owner of the socket. It reads, it closes, and it takes over writing whenever a
/// direct write does not finish (the socket is full, or an error that it then reports and acts
/// on), until everything it holds is out; bytes never overtake one another. Three rules keep this
/// safe:
/// - the descriptor is the channel's own (SwiftNIO's public transport access,
///   `withUnsafeTransportIfAvailable`; a channel without one leaves the writer off);
/// - a write goes straight to the descriptor only while the channel is active: NIO marks a channel
///   inactive before any user code runs after it closed the descriptor, so a number reused by
///   another connection is never written to;
/// - every write a handler makes through NIO while the writer is on is preceded by `beforeNIOWrite`.
///
/// TLS connections never use it (their bytes are encrypted in the pipeline). Ship connections
/// attach at once, client connections at their second request (a one-request connection gains
/// nothing from it).
struct SocketWriter {
    /// The socket's descriptor, or -1 while every write goes through NIO.
    private(set) var descriptor: CInt = -1
    /// The channel whose socket it is (asked whether it is still active before every send; kept
    /// here because reaching it through the handler's context retains and releases it each time).
    private var channel: (any Channel)?
    private var queued: [ByteBuffer] = []
    private var queuedBytes = 0
    /// NIO may still hold bytes written earlier: writes go through it until it has none.
    private var nioMayHold = false
    /// Writes made through NIO since its last flush.
    private var nioUnflushed = false
    private var vectors: [iovec] = []

    /// At most this many buffers go into one `sendmsg`; more are handed to NIO.
    private static let maxVectors = 64

    var isOn: Bool { descriptor >= 0 }
    /// Holds no bytes of its own (all it was given has been sent or handed to SwiftNIO).
    var isIdle: Bool { queued.isEmpty }

    /// Starts writing directly to `channel`'s socket when its descriptor can be found and checked.
    mutating func attach(to channel: any Channel) {
        guard let descriptor = Self.descriptor(of: channel) else { return }
        self.descriptor = descriptor
        self.channel = channel
        queued.reserveCapacity(4)
    }

    /// Every write goes through NIO from now on (queued bytes are dropped: the channel is gone or
    /// another handler owns it; call `beforeNIOWrite` first to keep them).
    mutating func stop() {
        descriptor = -1
        channel = nil
        queued.removeAll()
        queuedBytes = 0
    }

    /// Queues `buffer` for the next `flush`, or writes it through NIO when the writer is off or
    /// NIO still holds earlier bytes.
    mutating func write(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        if descriptor >= 0 && (!nioMayHold || nioIsEmpty(context)) {
            queuedBytes += buffer.readableBytes
            queued.append(buffer)
        } else {
            // Through NIO: also before `attach` (a fresh ship connection is written to when its
            // connect completes, before `channelActive`), so later direct writes wait for it.
            context.write(NIOAny(buffer), promise: nil)
            nioUnflushed = true
            nioMayHold = true
        }
    }

    /// Sends what is queued; what the socket does not take, NIO writes. Returns true when NIO holds
    /// bytes after it (the caller checks the channel's writability for backpressure).
    @discardableResult
    mutating func flush(context: ChannelHandlerContext) -> Bool {
        if !queued.isEmpty { sendQueued(context: context) }
        if nioUnflushed {
            nioUnflushed = false
            context.flush()
            return true
        }
        return false
    }

    /// Sends what is queued before a handler writes through NIO itself (local answers, files,
    /// handing the connection over); direct writes wait until NIO has written everything.
    mutating func beforeNIOWrite(context: ChannelHandlerContext) {
        guard descriptor >= 0 else { return }
        if !queued.isEmpty { sendQueued(context: context) }
        nioMayHold = true
    }

    /// Whether NIO holds no bytes of this channel any more (then direct writes may go on).
    private mutating func nioIsEmpty(_ context: ChannelHandlerContext) -> Bool {
        guard !nioUnflushed, context.channel.holdsNoWrites else { return false }
        nioMayHold = false
        return true
    }

    private mutating func sendQueued(context: ChannelHandlerContext) {
        var written = 0
        if let channel, channel.isActive {
            if queued.count == 1 {
                written = queued[0].withUnsafeReadableBytes { bytes in
                    ms_send(descriptor, bytes.baseAddress, bytes.count)
                }
            } else if queued.count <= Self.maxVectors {
                written = sendVectors()
            }
        }
        if written == queuedBytes {
            queued.removeAll(keepingCapacity: true)
            queuedBytes = 0
            return
        }
        // A full socket, or an error NIO will meet again and report: it writes the rest.
        var skip = max(written, 0)
        for var buffer in queued {
            if skip >= buffer.readableBytes {
                skip -= buffer.readableBytes
                continue
            }
            buffer.moveReaderIndex(forwardBy: skip)
            skip = 0
            context.write(NIOAny(buffer), promise: nil)
        }
        queued.removeAll(keepingCapacity: true)
        queuedBytes = 0
        nioUnflushed = true
        nioMayHold = true
    }

    /// One `sendmsg` over every queued buffer; the bytes written, or -1.
    private mutating func sendVectors() -> Int { Self.send(queued, to: descriptor, vectors: &vectors) }

    /// One `sendmsg` of `buffers` to `fd` (`vectors` is scratch space); the bytes written, or -1.
    /// The caller holds the buffers until the call returns: their storage outlives the pointers.
    static func send(_ buffers: [ByteBuffer], to fd: CInt, vectors: inout [iovec]) -> Int {
        vectors.removeAll(keepingCapacity: true)
        for buffer in buffers {
            buffer.withUnsafeReadableBytes { bytes in
                vectors.append(
                    iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
            }
        }
        return vectors.withUnsafeBufferPointer { ms_sendv(fd, $0.baseAddress, CInt($0.count)) }
    }

    // MARK: Finding the descriptor

    /// The socket descriptor of a channel SwiftNIO made for a plain TCP or Unix stream socket, by
    /// its public transport access (nil for any other channel); call on the channel's event loop.
    static func descriptor(of channel: any Channel) -> CInt? {
        let found = try? channel.pipeline.syncOperations.withUnsafeTransportIfAvailable(
            of: NIOBSDSocket.Handle.self
        ) { $0 }
        return found ?? nil
    }
}
