import NIOCore

/// SwiftNIO's driver of a ship connection: reads and writes the channel for its `ShipLink`, which
/// parses the responses and decides everything else.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler, ShipTransport {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let link = ShipLink()
    private(set) var context: ChannelHandlerContext?
    /// The channel's writability, kept from its change events (SwiftNIO fires them as a write
    /// crosses the high water mark and as a flush drains below the low one): asking the channel
    /// costs reference counting on the hot path.
    private(set) var isWritable = false
    /// Writes to the ship's socket (straight to it while it takes them).
    private var writer = SocketWriter()

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
        link.start(transport: self, active: context.channel.isActive)
    }

    func channelActive(context: ChannelHandlerContext) {
        writer.attach(to: context.channel)
        link.becameActive()
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        writer.stop()
        link.detach()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        link.readComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isWritable = false
        writer.stop()
        link.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        link.closed(error: SocketErrorText.describe(error))
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        link.writabilityChanged(isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: ShipTransport

    func write(_ bytes: ByteBuffer) {
        guard let context else { return }
        writer.write(bytes, context: context)
    }

    @discardableResult
    func flush() -> Bool {
        guard let context else { return false }
        return writer.flush(context: context)
    }

    func setReading(_ on: Bool) { context?.channel.setAutoRead(on) }

    func close() { context?.close(promise: nil) }

    /// The socket's descriptor while direct writes are on, else -1.
    var descriptor: CInt { writer.descriptor }
}
