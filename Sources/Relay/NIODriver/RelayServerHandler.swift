import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// SwiftNIO's driver of a client connection on a TLS bind: the last handler of the listener's
/// pipeline. It reads and writes the channel, keeps its timer, opens ship connections and sends
/// files for its `ClientConnection`, which decides everything else (plain binds are the workers').
final class RelayServerHandler: ChannelInboundHandler, RemovableChannelHandler, ClientTransport {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let connection: ClientConnection
    private var settings: ListenerSettings { connection.settings }
    private(set) var context: ChannelHandlerContext?
    private var watchdog = Watchdog()
    /// Written since the last flush.
    private var unflushed = false
    /// While a file goes out by sendfile: the check that it was not truncated meanwhile and that
    /// the client takes it.
    var fileWatch: RepeatedTask?
    /// The channel's allocator, taken once (asking the channel for it costs reference counting
    /// through SwiftNIO's lifecycle state on every request).
    private(set) var allocator = ByteBufferAllocator()
    /// The client channel's writability, kept from its change events.
    private(set) var isWritable = false

    init(settings: ListenerSettings, loop: LoopContext) {
        self.connection = ClientConnection(settings: settings, loop: loop)
    }

    init(source: ListenerSource, loop: LoopContext) {
        self.connection = ClientConnection(source: source, loop: loop)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        isWritable = context.channel.isWritable
        connection.start(transport: self, clientAddress: context.channel.remoteAddress?.ipAddress)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopIO()
        connection.detach()
        self.context = nil
    }

    private func stopIO() {
        watchdog.cancel()
        fileWatch?.cancel()
        fileWatch = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.readComplete()
        // The last handler: nothing after it wants the event.
    }

    func channelInactive(context: ChannelHandlerContext) {
        isWritable = false
        connection.closed()
        watchdog.cancel()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        connection.writabilityChanged(isWritable)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ClientAddressEvent {
            connection.proxyHeaderGave(address: event.address.ipAddress, port: event.address.port)
        } else if event is RelayDrainEvent {
            connection.drain()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: ClientTransport

    var peerPort: Int? { context?.channel.remoteAddress?.port }

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

    var heldBytes: Int { context?.channel.heldBytes ?? 0 }

    func setReading(_ on: Bool) { context?.channel.setAutoRead(on) }

    func close() { context?.close(promise: nil) }

    func closeAfterWrites() {
        unflushed = false
        context?.closeAfterWrites()
    }

    func reset() {
        guard let channel = context?.channel else { return }
        guard let options = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    func watch(until deadline: NIODeadline) {
        if watchdog.covers(deadline) { return }
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        watchdog.watch(until: deadline, on: context.eventLoop) {
            let handler = bound.value
            handler.watchdog.fired()
            handler.connection.deadlinePassed(now: .now())
        }
    }

    func clearWatch() {
        // The timer stays: when it fires, the core finds no deadline (cheaper than cancelling it
        // on every request).
    }

    func processLater() {
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value.connection.processInbound() }
    }

    func connect(
        to address: SocketAddressOrPath, timeout: TimeAmount,
        completion: @escaping (Result<ShipLink, ConnectFailure>) -> Void
    ) {
        guard let eventLoop = context?.eventLoop else {
            completion(.failure(.failed("the client's connection closed")))
            return
        }
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.recvAllocator, value: RelayLimits.upstreamReceiveBuffers)
            .channelOption(.writeBufferWaterMark, value: RelayLimits.writeWaterMarks)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch address {
        case .tcp(let host, let port):
            bootstrap = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
            connected = bootstrap.connect(host: host, port: port)
        case .unix(let path):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        let bound = NIOLoopBound(completion, eventLoop: eventLoop)
        connected.whenComplete { result in
            let completion = bound.value
            switch result {
            case .success(let channel):
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                else {
                    channel.close(promise: nil)
                    completion(.failure(.failed(SocketErrorText.describe(ChannelError.ioOnClosedChannel))))
                    return
                }
                completion(.success(handler.link))
            case .failure(let error):
                completion(.failure(Self.connectFailure(error)))
            }
        }
    }

    private static func connectFailure(_ error: any Error) -> ConnectFailure {
        if let code = RelayResources.exhaustion(in: error) { return .exhausted(code) }
        if case ChannelError.connectTimeout = error { return .timedOut }
        return .failed(SocketErrorText.describe(error))
    }

    func handOver(to berth: BayBerth, boarding: BayBoarding, rest: ByteBuffer) {
        guard let context else { return }
        flush()
        stopIO()
        do {
            try context.pipeline.syncOperations.addHandlers(
                boarding.handlers(for: berth), position: .after(self))
        } catch {
            connection.closeClient()
            return
        }
        // Leaves the pipeline to the WebSocket handlers, with the bytes that came after the upgrade.
        if rest.readableBytes > 0 { context.fireChannelRead(NIOAny(rest)) }
        context.fireChannelReadComplete()
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        // Reading goes on through the new handlers (they hold it back themselves).
        channel.setAutoRead(true)
    }

    /// SwiftNIO reads and writes both sockets (a TLS client's bytes are not the socket's): a
    /// tunnel's bytes go through `received` and `write`.
    func joinTunnel(to ship: ShipLink) {}
}

extension ChannelHandlerContext {
    /// Closes the channel once what was written before has gone out (the completion of an empty
    /// write behind it, flushed with it).
    func closeAfterWrites() {
        let channel = self.channel
        writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
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
