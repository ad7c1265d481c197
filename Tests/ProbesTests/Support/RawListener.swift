import NIOCore
import NIOPosix
import ShipManifest

/// A loopback TCP listener that never speaks HTTP: it stays silent (a hung server) or answers the
/// first bytes it reads with `reply` and closes. It reports the remote port of every connection it
/// accepts, in order.
final class RawListener: Sendable {
    let port: Int
    /// Remote ports of accepted connections, as they are accepted.
    let accepted: AsyncStream<Int>
    private let channel: any Channel

    private init(channel: any Channel, accepted: AsyncStream<Int>) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.accepted = accepted
    }

    static func start(reply: String? = nil) async throws -> RawListener {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    continuation.yield(channel.remoteAddress?.port ?? 0)
                    if let reply {
                        try channel.pipeline.syncOperations.addHandler(ReplyOnceHandler(reply: reply))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawListener(channel: channel, accepted: stream)
    }

    var address: BindAddress { .tcp(host: "127.0.0.1", port: port) }

    /// Waits until the connection from `remotePort` has been accepted and returns how many
    /// connections were accepted before it. The kernel's accept queue is first in, first out, so
    /// every connection made earlier has been accepted by then.
    func acceptedBefore(remotePort: Int) async -> Int {
        var count = 0
        for await port in accepted {
            if port == remotePort { return count }
            count += 1
        }
        return count
    }

    func close() async {
        try? await channel.close()
    }
}

/// Answers the first bytes read with a fixed text, then closes.
private final class ReplyOnceHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let reply: String
    private var replied = false

    init(reply: String) { self.reply = reply }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !replied else { return }
        replied = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: reply)))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}

/// A loopback port nothing listens on (bound, then closed).
func closedPort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}

/// A fresh Unix socket path under /tmp.
func temporarySocketPath() -> String {
    "/tmp/mothership-probes-\(UInt64.random(in: 0...UInt64.max)).sock"
}
