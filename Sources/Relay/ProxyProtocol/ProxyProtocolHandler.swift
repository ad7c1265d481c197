import Logging
import NIOCore
import ShipManifest

/// The first handler of a connection on a bind with `proxy_protocol = true`: it reads the PROXY
/// header (v1 or v2) if the connection starts with one, tells the rest of the pipeline who the client
/// is, and then steps out of the way.
///
/// Detection is automatic, as in the original: a connection may come with or without a header.
/// Bytes are held until `ProxyHeaderParser` can decide (at most one header's worth, bounded by the
/// parser), then the handler fires `ClientAddressEvent` (the header's source, or the peer address
/// when there is no header or it carries no address), forwards the bytes after the header in one
/// read, and removes itself, so later reads cost nothing.
///
/// With `trustedProxies` set, a header is honoured only from a peer inside one of the ranges; any
/// other peer that sends one is disconnected (never believed), while a connection without a header
/// is served as usual. A peer without an IP address (a Unix socket) is trusted only when there is no
/// list. A malformed header always closes the connection.
package final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    private enum Phase {
        /// Accumulating bytes until the parser decides.
        case waiting
        /// Decided; removal is under way, so anything still arriving passes through.
        case forwarding
        /// Rejected or closed before a decision; nothing more is forwarded.
        case discarding
    }

    private let trustedProxies: [CIDRRange]?
    private let logger: Logger?
    private var phase = Phase.waiting
    private var buffered: ByteBuffer?

    /// - Parameters:
    ///   - trustedProxies: the bind's `trusted_proxies`; nil honours a header from any peer.
    ///   - logger: where refused connections are reported (at `info` for an untrusted peer, `debug`
    ///     for a malformed header, since either can be triggered by anyone at will).
    package init(trustedProxies: [CIDRRange]?, logger: Logger? = nil) {
        self.trustedProxies = trustedProxies
        self.logger = logger
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .forwarding:
            context.fireChannelRead(data)
        case .discarding:
            return
        case .waiting:
            var incoming = unwrapInboundIn(data)
            buffered.setOrWriteBuffer(&incoming)
            decide(context: context)
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        // Still undecided: ask for more even if the channel does not read on its own, since the
        // handlers after this one have seen nothing yet and so will not ask.
        if case .waiting = phase { context.read() }
        context.fireChannelReadComplete()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        if case .waiting = phase {
            // A prefix or truncated header is never passed on as if it were a request.
            phase = .discarding
            buffered = nil
        }
        context.fireChannelInactive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        buffered = nil
    }

    private func decide(context: ChannelHandlerContext) {
        guard let bytes = buffered else { return }
        let peer = context.channel.remoteAddress
        switch ProxyHeaderParser.parse(bytes) {
        case .needMoreData:
            return
        case .absent:
            forward(context: context, client: peer, skipping: 0)
        case .header(let header, let length):
            guard isTrusted(peer) else {
                logger?.info(
                    "Closing a connection that sent a PROXY header from outside trusted_proxies",
                    metadata: ["peer": "\(peer.map { "\($0)" } ?? "unknown")"])
                reject(context: context)
                return
            }
            forward(context: context, client: header.source ?? peer, skipping: length)
        case .invalid(let reason):
            logger?.debug(
                "Closing a connection with a malformed PROXY header",
                metadata: ["peer": "\(peer.map { "\($0)" } ?? "unknown")", "reason": "\(reason)"])
            reject(context: context)
        }
    }

    /// Announces the client, passes on whatever followed the header, and leaves the pipeline.
    private func forward(context: ChannelHandlerContext, client: SocketAddress?, skipping length: Int) {
        phase = .forwarding
        guard var bytes = buffered else { return }
        buffered = nil
        bytes.moveReaderIndex(forwardBy: length)
        if let client {
            context.fireUserInboundEventTriggered(ClientAddressEvent(address: client))
        }
        if bytes.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(bytes))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func reject(context: ChannelHandlerContext) {
        phase = .discarding
        buffered = nil
        context.close(promise: nil)
    }

    private func isTrusted(_ peer: SocketAddress?) -> Bool {
        guard let trustedProxies else { return true }
        guard let address = peer.flatMap(IPAddress.init(socketAddress:)) else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }
}

extension IPAddress {
    /// The IP of a NIO socket address, or nil for a Unix socket. Goes through the text form because
    /// `IPAddress`'s byte initialiser is internal to ShipManifest; this runs once per connection.
    fileprivate init?(socketAddress: SocketAddress) {
        guard let text = socketAddress.ipAddress else { return nil }
        self.init(parsing: text)
    }
}
