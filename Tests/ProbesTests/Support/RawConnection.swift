import NIOCore
import NIOPosix
import ShipManifest

/// A response as read off the wire by `RawConnection`.
struct RawResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// A byte-level client for the metrics endpoint: sends exactly the text a test gives and parses the
/// responses itself, so keep-alive, HEAD and malformed input can be observed as a client sees them.
struct RawConnection {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var pending: [UInt8] = []
    /// The client side's port (0 for a Unix socket).
    let localPort: Int

    /// Connects to `address`, runs `body`, then closes.
    static func with<T: Sendable>(
        _ address: BindAddress, _ body: (inout RawConnection) async throws -> T
    ) async throws -> T {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let wrap: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = {
            channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        switch address {
        case .tcp(let host, let port):
            channel = try await bootstrap.connect(host: host, port: port, channelInitializer: wrap)
        case .unix(let path):
            channel = try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: wrap)
        }
        let localPort = channel.channel.localAddress?.port ?? 0
        return try await channel.executeThenClose { inbound, outbound in
            var connection = RawConnection(
                inbound: inbound.makeAsyncIterator(), outbound: outbound, localPort: localPort)
            return try await body(&connection)
        }
    }

    private init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, localPort: Int
    ) {
        self.inbound = inbound
        self.outbound = outbound
        self.localPort = localPort
    }

    mutating func send(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// Reads one response; its body is `Content-Length` bytes unless `toHead` (a HEAD request).
    /// Nil when the connection ends first.
    mutating func readResponse(toHead: Bool = false) async throws -> RawResponse? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd = pending.firstRange(of: separator)
        while headEnd == nil {
            guard try await fill() else { return nil }
            headEnd = pending.firstRange(of: separator)
        }
        guard let headEnd else { return nil }
        let headText = String(decoding: pending[..<headEnd.lowerBound], as: UTF8.self)
        pending.removeFirst(headEnd.upperBound)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        let status = statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            return (String(line[..<colon]), String(value))
        }
        var response = RawResponse(status: status, headers: headers, body: "")
        let length = toHead ? 0 : Int(response.header("Content-Length") ?? "0") ?? 0
        while pending.count < length {
            guard try await fill() else { return nil }
        }
        response.body = String(decoding: pending[..<length], as: UTF8.self)
        pending.removeFirst(length)
        return response
    }

    /// Whether the server closes the connection with no more bytes (a clean end).
    mutating func readsEndOfStream() async throws -> Bool {
        while try await fill() {}
        return pending.isEmpty
    }

    /// Appends the next chunk to `pending`; false at end of stream.
    private mutating func fill() async throws -> Bool {
        guard let chunk = try await inbound.next() else { return false }
        pending.append(contentsOf: chunk.readableBytesView)
        return true
    }
}
