import DockingProtocol
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import Relay

/// The bay side of the relay without sockets: the WebSocket handshake, the link's docking
/// handshake and its protocol violations, and the small encoders on the per-message path.
@Suite("Bays in the relay")
struct BayTests {
    static func head(_ lines: [String]) throws -> MessageHead {
        try HeadParserTests.head(
            (["GET /cable?token=x HTTP/1.1", "Host: example.com"] + lines).joined(separator: "\r\n")
                + "\r\n\r\n")
    }

    static let upgrade = [
        "Upgrade: websocket", "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]

    @Test func acceptsAValidUpgradeWithTheRFCsAcceptValue() throws {
        let check = WebSocketHandshake.check(try Self.head(Self.upgrade))
        #expect(check == .valid("dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(WebSocketHandshake.accept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(
            Base64.encode([]) == "" && Base64.encode([0x66]) == "Zg=="
                && Base64.encode([0x66, 0x6F]) == "Zm8=")
    }

    @Test func refusesWhatIsNotAWebSocketUpgrade() throws {
        #expect(WebSocketHandshake.check(try Self.head([])) == .notAnUpgrade)
        #expect(
            WebSocketHandshake.check(try Self.head(["Upgrade: h2c", "Connection: Upgrade"])) == .notAnUpgrade)
        let oldVersion = Self.upgrade.map {
            $0.hasPrefix("Sec-WebSocket-Version") ? "Sec-WebSocket-Version: 8" : $0
        }
        #expect(
            WebSocketHandshake.check(try Self.head(oldVersion))
                == .invalid("Sec-WebSocket-Version must be 13"))
        let noKey = Self.upgrade.filter { !$0.hasPrefix("Sec-WebSocket-Key") }
        #expect(
            WebSocketHandshake.check(try Self.head(noKey))
                == .invalid("Sec-WebSocket-Key is missing or malformed"))
    }

    @Test func boardingHeadersAreLowerCaseWithRepeatsJoined() throws {
        let headers = WebSocketHandshake.headers(
            of: try Self.head(Self.upgrade + ["Cookie: a=1", "X-Thing: one", "cookie: b=2", "X-THING: two"]))
        #expect(headers["cookie"] == "a=1; b=2")
        #expect(headers["x-thing"] == "one, two")
        #expect(headers["host"] == "example.com")
        #expect(headers.keys.allSatisfy { $0 == $0.lowercased() })
    }

    @Test func cargoFromAMaskedFrameIsUnmaskedInPlace() throws {
        let message = Array("a message longer than eight bytes, to cover the wide path".utf8)
        let key = try #require(WebSocketMaskingKey([0x12, 0x34, 0x56, 0x78]))
        var masked = ByteBuffer(bytes: message)
        masked.webSocketMask(key)
        var buffer = ByteBuffer(string: "prefix")
        buffer.moveReaderIndex(forwardBy: 2)
        let range = BayClientHandler.appendUnmasked(
            WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: masked), to: &buffer)
        #expect(range == 6..<(6 + message.count))
        #expect(buffer.getBytes(at: 6, length: message.count) == message)
        #expect(buffer.getString(at: 2, length: 4) == "efix")
    }

    @Test func textOnlyWhenValidUTF8AndCloseFramesThatFit() {
        #expect(UTF8Check.isValid(ByteBuffer(string: "plain ascii, long enough for the fast path")))
        #expect(UTF8Check.isValid(ByteBuffer(string: "ünïcödé ✓")))
        #expect(!UTF8Check.isValid(ByteBuffer(bytes: [0x61, 0xFF, 0x00])))
        #expect(!UTF8Check.isValid(ByteBuffer(bytes: Array("12345678".utf8) + [0xC3, 0x28])))
        let long = String(repeating: "é", count: 100)
        let data = BayClientHandler.closeData(code: 4001, reason: long, allocator: ByteBufferAllocator())
        #expect(data.readableBytes <= 125 && data.getInteger(at: 0, as: UInt16.self) == 4001)
        #expect(data.getString(at: 2, length: data.readableBytes - 2) == String(repeating: "é", count: 61))
        #expect(WebSocketCloseCode.sendable(1006) == 1000 && WebSocketCloseCode.sendable(4001) == 4001)
        #expect(WebSocketCloseCode.sendable(999) == 1000)
    }

    // MARK: The link

    static func link(to existing: BayBerth? = nil) throws -> (
        BayBerth, EmbeddedChannel, EventLoopPromise<UInt32>, EventLoopPromise<String>
    ) {
        let loop = (existing?.loop as? EmbeddedEventLoop) ?? EmbeddedEventLoop()
        let berth =
            existing ?? BayBerth(bay: "chat", loop: loop, limits: BayLimits(), logger: Logger(label: "test"))
        let channel = EmbeddedChannel(loop: loop)
        let moored = loop.makePromise(of: UInt32.self)
        let lost = loop.makePromise(of: String.self)
        // The decoder's limit as the berth's link sets it (typed Cargo's; the berth holds an old
        // bay to the original's).
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(DockingFrameDecoder(maxPayload: DockingCodec.maxTypedPayload)))
        try channel.pipeline.syncOperations.addHandler(
            BayLinkHandler(berth: berth, config: ["redis_url": "redis://x"], moored: moored, lost: lost))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (berth, channel, moored, lost)
    }

    static func frame(_ message: DockingMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        DockingCodec.encode(message, into: &buffer)
        return buffer
    }

    @Test func dockIsAnsweredWithMooredAndItsConfigThenABadFrameClosesTheLink() throws {
        let (berth, channel, moored, lost) = try Self.link()
        #expect(!berth.isDocked)
        try channel.writeInbound(Self.frame(.dock(Dock(ship: "chat"))))
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(
            try DockingCodec.decode(from: &written) == .moored(Moored(config: ["redis_url": "redis://x"])))
        #expect(try moored.futureResult.wait() == 1)
        #expect(berth.isDocked)
        #expect(berth.nextPassenger() == (1, 1, false) && berth.nextPassenger() == (1, 2, false))

        // The link handler takes the decoder's error: no error escapes the pipeline, the link closes.
        try channel.writeInbound(ByteBuffer(bytes: [0x7F, 0, 0, 0, 0]))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(try lost.futureResult.wait() == "protocol violation: unknown message type 0x7F")
        #expect(!berth.isDocked)
    }

    @Test func anythingButDockFirstIsAViolation() throws {
        let (berth, channel, moored, lost) = try Self.link()
        try channel.writeInbound(Self.frame(.cargo(connID: 1, payload: ByteBuffer(string: "early"))))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(throws: (any Error).self) { try moored.futureResult.wait() }
        #expect(
            try lost.futureResult.wait()
                == "protocol violation: expected Dock as the first message, got cargo")
        #expect(!berth.isDocked)
    }

    @Test func aBayThatClosesItsSocketLosesTheLink() throws {
        let (berth, channel, _, lost) = try Self.link()
        try channel.writeInbound(Self.frame(.dock(Dock(ship: "chat"))))
        #expect(berth.isDocked)
        channel.pipeline.fireChannelInactive()
        #expect(try lost.futureResult.wait() == "the bay closed its docking socket")
        #expect(!berth.isDocked)
    }

    // MARK: What a bay sends on a typed link, and beyond the original's limit

    /// Typed Cargo is on only when Dock asks for it, and Moored says so; a Cargo whose type byte is
    /// missing or unknown breaks the protocol.
    @Test(arguments: [
        ([UInt8](), "typed Cargo without its type byte"), ([7, 0x61], "typed Cargo with unknown type 7"),
    ])
    func typedCargoWithoutAKnownTypeByteClosesTheLink(payload: [UInt8], reason: String) throws {
        let (berth, channel, _, lost) = try Self.link()
        try channel.writeInbound(Self.frame(.dock(Dock(ship: "chat", features: ["typed_cargo", "later"]))))
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(
            try DockingCodec.decode(from: &written)
                == .moored(Moored(config: ["redis_url": "redis://x"], features: ["typed_cargo"])))
        #expect(berth.nextPassenger() == (1, 1, true))
        // A well-typed Cargo for a client that left is dropped quietly; a bad one is not.
        try channel.writeInbound(Self.frame(.cargo(connID: 9, payload: ByteBuffer(bytes: [1, 0x61]))))
        #expect(channel.isActive)
        try channel.writeInbound(Self.frame(.cargo(connID: 1, payload: ByteBuffer(bytes: payload))))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(try lost.futureResult.wait() == "protocol violation: \(reason)")
    }

    /// A bay that did not ask for typed Cargo is held to the original's 16 MiB frame, though the
    /// decoder takes typed Cargo's larger frames on every link.
    @Test func anOldBaysCargoOverTheOriginalFrameLimitClosesTheLink() throws {
        let (_, channel, _, lost) = try Self.link()
        try channel.writeInbound(Self.frame(.dock(Dock(ship: "chat"))))
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(
            try DockingCodec.decode(from: &written) == .moored(Moored(config: ["redis_url": "redis://x"])))
        let message = ByteBuffer(repeating: 0x2A, count: DockingCodec.maxPayload - 3)
        try channel.writeInbound(Self.frame(.cargo(connID: 1, payload: message)))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(try lost.futureResult.wait() == "protocol violation: a Cargo frame over 16777216 bytes")
    }

    // MARK: A phased replacement (SPEC §12.2)

    /// A second process of the bay docks while the first still serves: new clients board the new
    /// link (conn_ids from 1 again), the old link stays open for the clients it has, and its end
    /// does not undock the berth; retiring it closes it.
    @Test func aSecondDockTakesNewClientsWhileTheFirstLinkStaysUntilRetired() throws {
        let (berth, old, oldMoored, oldLost) = try Self.link()
        try old.writeInbound(Self.frame(.dock(Dock(ship: "chat"))))
        #expect(try oldMoored.futureResult.wait() == 1)
        #expect(berth.nextPassenger() == (1, 1, false))

        let (_, fresh, freshMoored, freshLost) = try Self.link(to: berth)
        try fresh.writeInbound(Self.frame(.dock(Dock(ship: "chat", features: ["typed_cargo"]))))
        #expect(try freshMoored.futureResult.wait() == 2)
        #expect(berth.isDocked && old.isActive)
        #expect(berth.nextPassenger() == (2, 1, true))
        // Clients of the old link ask the berth before reading; those of the current one need not.
        #expect(!berth.isLinkWritable(generation: 1) && berth.isLinkWritable(generation: 2))

        // The old link's Cargo for a client it does not carry is dropped; the link stays.
        try old.writeInbound(Self.frame(.cargo(connID: 7, payload: ByteBuffer(string: "late"))))
        #expect(old.isActive)

        let retired = BerthLink(berth: berth, generation: 1, lost: oldLost.futureResult).retire()
        old.embeddedEventLoop.run()
        try retired.wait()
        #expect(!old.isActive)
        #expect(try oldLost.futureResult.wait() == "replaced by a new process of the bay")
        #expect(berth.isDocked && fresh.isActive)
        #expect(berth.nextPassenger() == (2, 2, true))

        fresh.pipeline.fireChannelInactive()
        #expect(try freshLost.futureResult.wait() == "the bay closed its docking socket")
        #expect(!berth.isDocked)
    }
}
