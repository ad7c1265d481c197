import NIOCore
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

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

/// A loopback TCP port where nothing listens, and nothing will: the port is held by a socket that
/// is bound but never listens (connecting to it is refused) and stays open until the test process
/// exits. A port merely closed again could be handed to a parallel test's listener at once.
func closedPort() async throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A fresh Unix socket path under /tmp.
func temporarySocketPath() -> String {
    "/tmp/mothership-probes-\(UInt64.random(in: 0...UInt64.max)).sock"
}
