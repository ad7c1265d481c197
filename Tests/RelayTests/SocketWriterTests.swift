import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Relay

#if canImport(Glibc)
    import Glibc
#endif

/// The relay's direct socket writes, against real sockets: the descriptor found is the channel's
/// own (TCP and Unix), and bytes written partly straight to the socket and partly through NIO (a
/// full socket, a write of the handler's own through the pipeline) arrive whole and in order.
@Suite("Direct socket writes")
struct SocketWriterTests {
    @Test(.timeLimit(.minutes(1)))
    func findsTheDescriptorOfAnAcceptedTCPConnection() async throws {
        try await Self.withServer(.tcp) { server, client in
            let channel = try await server.accepted.futureResult.get()
            let descriptor = try #require(
                try await channel.eventLoop.submit { SocketWriter.descriptor(of: channel) }.get())
            // The peer of the descriptor found is this test's own socket.
            #expect(Self.port(of: descriptor, peer: true) == Self.port(of: client, peer: false))
            #expect(try await server.probe(channel).descriptor == descriptor)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func findsTheDescriptorOfAnAcceptedUnixConnection() async throws {
        try await Self.withServer(.unix) { server, _ in
            let channel = try await server.accepted.futureResult.get()
            let descriptor = try await channel.eventLoop.submit { SocketWriter.descriptor(of: channel) }.get()
            #expect(descriptor != nil)
            #expect(try await server.probe(channel).descriptor == descriptor)
        }
    }

    @Test func staysOffForAChannelWithoutASocket() {
        #expect(SocketWriter.descriptor(of: EmbeddedChannel()) == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func bytesArriveWholeAndInOrderWhenTheSocketFillsAndNIOTakesOver() async throws {
        try await Self.withServer(.tcp) { server, client in
            let channel = try await server.accepted.futureResult.get()
            let pieces = 1_000
            let pieceSize = 4_096
            // 4 MB while the client does not read (both socket buffers are small): the socket fills,
            // the writer hands the rest to NIO and keeps going through it; halfway the handler
            // writes through NIO itself.
            let outcome = try await channel.eventLoop.submit {
                let probe = try channel.pipeline.syncOperations.handler(type: Probe.self)
                let context = try channel.pipeline.syncOperations.context(handlerType: Probe.self)
                var offset = 0
                var handedOver = false
                for index in 0..<pieces {
                    let piece = Self.pattern(from: offset, count: pieceSize, allocator: channel.allocator)
                    offset += pieceSize
                    if index == pieces / 2 {
                        probe.writer.beforeNIOWrite(context: context)
                        context.write(NIOAny(piece), promise: nil)
                        context.flush()
                        continue
                    }
                    probe.writer.write(piece, context: context)
                    if index % 8 == 7 && probe.writer.flush(context: context) { handedOver = true }
                }
                probe.writer.flush(context: context)
                return (handedOver, probe.writer.isOn)
            }.get()
            #expect(outcome.0, "the socket never filled: NIO never took over")
            #expect(outcome.1)
            let received = try Self.read(client, count: pieces * pieceSize)
            #expect(received.count == pieces * pieceSize)
            let expected = Self.pattern(from: 0, count: pieces * pieceSize, allocator: ByteBufferAllocator())
            #expect(Self.firstDifference(received, Array(expected.readableBytesView)) == nil)

            // NIO has written everything it held: writes go straight to the socket again.
            let wentThroughNIO = try await channel.eventLoop.submit {
                let probe = try channel.pipeline.syncOperations.handler(type: Probe.self)
                let context = try channel.pipeline.syncOperations.context(handlerType: Probe.self)
                let piece = Self.pattern(
                    from: pieces * pieceSize, count: pieceSize, allocator: channel.allocator)
                probe.writer.write(piece, context: context)
                return probe.writer.flush(context: context)
            }.get()
            #expect(!wentThroughNIO)
            let rest = try Self.read(client, count: pieceSize)
            let expectedRest = Self.pattern(
                from: pieces * pieceSize, count: pieceSize, allocator: ByteBufferAllocator())
            #expect(Self.firstDifference(rest, Array(expectedRest.readableBytesView)) == nil)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aWriteWaitsForBytesTheHandlerLeftInNIO() async throws {
        try await Self.withServer(.tcp) { server, client in
            let channel = try await server.accepted.futureResult.get()
            let allocator = channel.allocator
            try await channel.eventLoop.submit {
                let probe = try channel.pipeline.syncOperations.handler(type: Probe.self)
                let context = try channel.pipeline.syncOperations.context(handlerType: Probe.self)
                probe.writer.write(allocator.buffer(string: "first,"), context: context)
                probe.writer.flush(context: context)
                // Written through the pipeline and not flushed yet: still inside NIO.
                probe.writer.beforeNIOWrite(context: context)
                context.write(NIOAny(allocator.buffer(string: "second,")), promise: nil)
                probe.writer.write(allocator.buffer(string: "third"), context: context)
                probe.writer.flush(context: context)
                context.flush()
            }.get()
            let received = try Self.read(client, count: 18)
            #expect(String(decoding: received, as: UTF8.self) == "first,second,third")
        }
    }

    // MARK: Helpers

    enum Kind { case tcp, unix }

    /// Keeps the writer a handler of the accepted channel would have.
    final class Probe: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var writer = SocketWriter()

        func channelActive(context: ChannelHandlerContext) {
            writer.attach(to: context.channel)
            context.fireChannelActive()
        }
    }

    struct Server {
        let accepted: EventLoopPromise<any Channel>

        func probe(_ channel: any Channel) async throws -> (descriptor: CInt, on: Bool) {
            try await channel.eventLoop.submit {
                let probe = try channel.pipeline.syncOperations.handler(type: Probe.self)
                return (probe.writer.descriptor, probe.writer.isOn)
            }.get()
        }
    }

    static func withServer(_ kind: Kind, _ body: (Server, CInt) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = group.next().makePromise(of: (any Channel).self)
        let bootstrap = ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.so_sndbuf), value: 32_768)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Probe())
                    accepted.succeed(channel)
                }
            }
        let path = NSTemporaryDirectory() + "writer-\(UUID().uuidString.prefix(8)).sock"
        let listener: any Channel
        switch kind {
        case .tcp: listener = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        case .unix: listener = try await bootstrap.bind(unixDomainSocketPath: path).get()
        }
        let client = try connect(to: listener.localAddress!)
        do {
            try await body(Server(accepted: accepted), client)
        } catch {
            Glibc.close(client)
            throw error
        }
        Glibc.close(client)
        try await listener.close()
        try? FileManager.default.removeItem(atPath: path)
        try await group.shutdownGracefully()
    }

    /// A blocking socket connected to `address` (made with the C API, not NIO: it is the peer).
    static func connect(to address: SocketAddress) throws -> CInt {
        let family = address.protocol == .unix ? AF_UNIX : (address.protocol == .inet6 ? AF_INET6 : AF_INET)
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SocketWriterTestError.system("socket", errno) }
        var receiveBuffer: CInt = 32_768
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<CInt>.size))
        let result = address.withSockAddr { Glibc.connect(descriptor, $0, socklen_t($1)) }
        guard result == 0 else { throw SocketWriterTestError.system("connect", errno) }
        return descriptor
    }

    static func port(of descriptor: CInt, peer: Bool) -> Int? {
        var storage = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(descriptor, $0, &length) : getsockname(descriptor, $0, &length)
            }
        }
        return result == 0 ? Int(UInt16(bigEndian: storage.sin_port)) : nil
    }

    /// Bytes of a pattern that shows any byte out of place (a 251-byte period).
    static func pattern(from offset: Int, count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: count)
        var index = offset
        while index < offset + count {
            let start = index % 251
            let run = min(251 - start, offset + count - index)
            buffer.writeBytes(period[start..<(start + run)])
            index += run
        }
        return buffer
    }

    static let period = (0..<251).map { UInt8($0) }

    /// The offset of the first byte that differs (or where one ends early), nil when equal.
    static func firstDifference(_ one: [UInt8], _ other: [UInt8]) -> Int? {
        if let index = zip(one.indices, zip(one, other)).first(where: { $0.1.0 != $0.1.1 })?.0 {
            return index
        }
        return one.count == other.count ? nil : min(one.count, other.count)
    }

    /// Reads exactly `count` bytes (or until the peer closes), with a receive timeout.
    static func read(_ descriptor: CInt, count: Int) throws -> [UInt8] {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received = [UInt8](repeating: 0, count: count)
        var total = 0
        while total < count {
            let result = received.withUnsafeMutableBytes {
                Glibc.read(descriptor, $0.baseAddress! + total, count - total)
            }
            if result == 0 { break }
            guard result > 0 else { throw SocketWriterTestError.system("read", errno) }
            total += result
        }
        return Array(received.prefix(total))
    }
}

enum SocketWriterTestError: Error {
    case system(String, CInt)
}
