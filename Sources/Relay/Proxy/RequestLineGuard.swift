import NIOCore

/// Answers 414 to a request line longer than the limit before the HTTP decoder sees it. The decoder
/// refuses any line beyond its 64 KiB field limit with an error that does not say which part
/// overflowed; lines between the limit and 64 KiB are caught on the decoded head instead.
///
/// Armed when the connection opens and re-armed by `RelayServerHandler` whenever it waits for a
/// new request; disarmed at the first line feed. Disarmed, it only forwards.
final class RequestLineGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: Int
    private var armed = true
    private var seen = 0
    private var refused = false

    init(limit: Int) { self.limit = limit }

    /// The next bytes start a request line.
    func rearm() {
        armed = true
        seen = 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refused { return }
        guard armed else {
            context.fireChannelRead(data)
            return
        }
        let buffer = unwrapInboundIn(data)
        if let lineFeed = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            if seen + (lineFeed - buffer.readerIndex) <= limit + 1 {
                armed = false
                context.fireChannelRead(data)
                return
            }
        } else if seen + buffer.readableBytes <= limit + 1 {
            seen += buffer.readableBytes
            context.fireChannelRead(data)
            return
        }
        refuse(context: context)
    }

    private func refuse(context: ChannelHandlerContext) {
        refused = true
        let body = "414 URI Too Long: request line too long\n"
        let head =
            "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nServer: mothership\r\nConnection: close\r\n\r\n"
        let channel = context.channel
        // Written from here, below the HTTP encoder: raw bytes straight to the socket (or TLS).
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: head + body)))
            .whenComplete { _ in channel.close(promise: nil) }
    }
}
