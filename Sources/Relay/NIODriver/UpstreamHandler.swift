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
    /// Written since the last flush.
    private var unflushed = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
        link.start(transport: self, active: context.channel.isActive)
    }

    func channelActive(context: ChannelHandlerContext) {
        link.becameActive()
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
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
        context.write(wrapOutboundOut(bytes), promise: nil)
        unflushed = true
    }

    @discardableResult
    func flush() -> Bool {
        guard let context, unflushed else { return false }
        unflushed = false
        context.flush()
        return true
    }

    func setReading(_ on: Bool) { context?.channel.setAutoRead(on) }

    func close() { context?.close(promise: nil) }

    func closeAfterWrites(within limit: TimeAmount) {
        guard let context else { return }
        let channel = context.channel
        channel.setAutoRead(false)
        unflushed = false
        context.closeAfterWrites()
        // SwiftNIO's pending writes do not time out: a ship that takes nothing is closed at `limit`
        // (the timer goes with the channel: it would hold a closed one until then).
        let timeout = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in timeout.cancel() }
    }
}
