import NIOCore
import NIOHTTP1

/// The relay's end of one keep-alive connection to a ship. It lives on the client's event loop;
/// while leased it reports everything to its `owner` (the client connection's handler), and it
/// holds back reads while the client cannot take more data (backpressure).
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The exchange using this connection now; nil while idle in the pool.
    weak var owner: Exchange?
    weak var pool: UpstreamPool?
    private(set) var context: ChannelHandlerContext?
    /// Set by the owner while the client's socket is full.
    private var readsPaused = false
    private var pendingRead = false

    var channel: (any Channel)? { context?.channel }
    var isWritable: Bool { context?.channel.isWritable ?? false }
    var isActive: Bool { context?.channel.isActive ?? false }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let owner {
            owner.upstreamReceived(part, from: self)
        } else {
            // An idle connection that talks out of turn cannot be trusted with the next request.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete(from: self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pool?.remove(self)
        owner?.upstreamClosed(self, error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        owner?.upstreamClosed(self, error: error)
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { owner?.upstreamBecameWritable(self) }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    // MARK: Used by the owner (same event loop)

    func send(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() { context?.flush() }

    func pauseReads() { readsPaused = true }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func close() { context?.close(promise: nil) }
}

/// Idle keep-alive connections to one ship on one event loop (most recently used first).
final class UpstreamPool {
    let address: SocketAddressOrPath
    private var idle: [UpstreamHandler] = []
    private let capacity: Int

    init(address: SocketAddressOrPath, capacity: Int = 128) {
        self.address = address
        self.capacity = capacity
    }

    /// An idle, still open connection, or nil.
    func lease() -> UpstreamHandler? {
        while let handler = idle.popLast() {
            if handler.isActive { return handler }
        }
        return nil
    }

    /// Returns a connection whose exchange finished cleanly.
    func release(_ handler: UpstreamHandler) {
        handler.owner = nil
        handler.resumeReads()
        guard handler.isActive else { return }
        if idle.count >= capacity {
            handler.close()
        } else {
            idle.append(handler)
        }
    }

    func remove(_ handler: UpstreamHandler) {
        idle.removeAll { $0 === handler }
    }

    func closeAll() {
        let handlers = idle
        idle.removeAll()
        for handler in handlers { handler.close() }
    }
}

/// A ship's address as the client bootstrap wants it.
enum SocketAddressOrPath {
    case tcp(host: String, port: Int)
    case unix(path: String)
}
