import DockingProtocol
import NIOCore
import NIOEmbedded
import Testing

@Suite("Docking codec")
struct DockingCodecTests {
    static let messages: [DockingMessage] = [
        .dock(Dock(version: 1, ship: "orbitcast")),
        .moored(Moored(version: 1, config: ["redis_url": "redis://localhost:6379", "workers": "4"])),
        .moored(Moored(version: 1, config: [:])),
        .boarding(
            Boarding(
                connID: 7, path: "/cable?token=x", remoteAddr: "203.0.113.9:51000",
                headers: ["host": "example.com", "cookie": "a=1; b=2", "user-agent": "Ünïcode/1.0"])),
        .disembark(Disembark(connID: 7, code: 1000, reason: "")),
        .disembark(Disembark(connID: 4_000_000_000, code: 4001, reason: "kicked \"out\"")),
        .cargo(connID: 1, payload: ByteBuffer(string: "hello")),
        .cargo(connID: 0xFFFF_FFFF, payload: ByteBuffer(bytes: [0, 0xFF, 0xC3, 0x28])),
        .cargo(connID: 2, payload: ByteBuffer()),
    ]

    static func encoded(_ message: DockingMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        DockingCodec.encode(message, into: &buffer)
        return buffer
    }

    @Test(arguments: messages)
    func everyMessageRoundTrips(message: DockingMessage) throws {
        var buffer = Self.encoded(message)
        #expect(try DockingCodec.decode(from: &buffer) == message)
        #expect(buffer.readableBytes == 0)
    }

    @Test func framesAreTypeByteBigEndianLengthThenPayload() throws {
        let cargo = Self.encoded(.cargo(connID: 0x0102_0304, payload: ByteBuffer(string: "hi")))
        #expect(
            Array(cargo.readableBytesView) == [
                0x12, 0, 0, 0, 6, 1, 2, 3, 4, UInt8(ascii: "h"), UInt8(ascii: "i"),
            ])
        let kinds = Self.messages.map { Self.encoded($0).getInteger(at: 0, as: UInt8.self) }
        #expect(kinds == [0x01, 0x02, 0x02, 0x10, 0x11, 0x11, 0x12, 0x12, 0x12])
        // The length counts the payload only.
        for message in Self.messages {
            let frame = Self.encoded(message)
            #expect(Int(frame.getInteger(at: 1, as: UInt32.self)!) == frame.readableBytes - 5)
        }
    }

    @Test func jsonPayloadsUseTheOriginalFieldNames() throws {
        func json(_ message: DockingMessage) -> String {
            var frame = Self.encoded(message)
            frame.moveReaderIndex(forwardBy: 5)
            return frame.readString(length: frame.readableBytes)!
        }
        #expect(json(.moored(Moored(config: ["k": "v"]))) == #"{"config":{"k":"v"},"version":1}"#)
        #expect(
            json(
                .boarding(
                    Boarding(
                        connID: 7, path: "/cable?token=x", remoteAddr: "203.0.113.9:51000",
                        headers: ["a": "b"])))
                == #"{"conn_id":7,"headers":{"a":"b"},"path":"/cable?token=x","remote_addr":"203.0.113.9:51000"}"#
        )
        #expect(
            json(.disembark(Disembark(connID: 7, code: 1000, reason: "")))
                == #"{"code":1000,"conn_id":7,"reason":""}"#)
    }

    @Test func decodesWhatExistingBaysSend() throws {
        // As a bay written for the original writes them: other key order, extra spaces, fields left out.
        func frame(_ type: UInt8, _ json: String) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(type)
            buffer.writeInteger(UInt32(json.utf8.count))
            buffer.writeString(json)
            return buffer
        }
        var dock = frame(0x01, #"{ "ship": "orbitcast", "version": 1, "extra": true }"#)
        #expect(try DockingCodec.decode(from: &dock) == .dock(Dock(version: 1, ship: "orbitcast")))
        var bare = frame(0x11, #"{"conn_id": 3}"#)
        #expect(
            try DockingCodec.decode(from: &bare) == .disembark(Disembark(connID: 3, code: 1000, reason: "")))
    }

    @Test func partialFramesWaitForTheRestAndLeaveTheBufferUntouched() throws {
        let whole =
            Self.encoded(.boarding(Boarding(connID: 9, path: "/ws", remoteAddr: "127.0.0.1:1", headers: [:])))
            + Self.encoded(.cargo(connID: 9, payload: ByteBuffer(string: "tail")))
        let bytes = Array(whole.readableBytesView)
        // Fed one byte at a time: nothing until each frame is whole, then exactly that frame.
        var buffer = ByteBuffer()
        var decoded: [DockingMessage] = []
        for byte in bytes {
            buffer.writeInteger(byte)
            let before = buffer.readableBytes
            if let message = try DockingCodec.decode(from: &buffer) {
                decoded.append(message)
            } else {
                #expect(buffer.readableBytes == before)
            }
        }
        #expect(decoded.count == 2)
        #expect(decoded.last == .cargo(connID: 9, payload: ByteBuffer(string: "tail")))
        #expect(buffer.readableBytes == 0)
    }

    @Test func oversizedUnknownAndMalformedFramesAreErrors() throws {
        var oversized = ByteBuffer(bytes: [0x12, 0x01, 0x00, 0x00, 0x01])  // 16 MiB + 1, header only
        #expect(throws: DockingError.oversized(length: 16 * 1024 * 1024 + 1, limit: 16 * 1024 * 1024)) {
            try DockingCodec.decode(from: &oversized)
        }
        var exactlyLimit = ByteBuffer(bytes: [0x12, 0x01, 0x00, 0x00, 0x00])
        #expect(try DockingCodec.decode(from: &exactlyLimit) == nil)  // allowed, just not all here
        var unknown = ByteBuffer(bytes: [0x7F, 0, 0, 0, 0])
        #expect(throws: DockingError.unknownType(0x7F)) { try DockingCodec.decode(from: &unknown) }
        var shortCargo = ByteBuffer(bytes: [0x12, 0, 0, 0, 2, 0, 1])
        #expect(throws: DockingError.shortCargo) { try DockingCodec.decode(from: &shortCargo) }
        for (type, json) in [
            (UInt8(0x01), "{not json"), (0x11, #"{"code":1000}"#), (0x10, #"{"conn_id":"seven"}"#),
            (0x02, "[]"),
        ] {
            var bad = ByteBuffer()
            bad.writeInteger(type)
            bad.writeInteger(UInt32(json.utf8.count))
            bad.writeString(json)
            #expect(throws: DockingError.self) { try DockingCodec.decode(from: &bad) }
            #expect(bad.readerIndex == 0)
        }
        let error = DockingError.unknownType(0x7F)
        #expect(error.description == "unknown message type 0x7F")
    }

    @Test func frameCoderHandlersDecodeAcrossReadsAndEncode() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DockingFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(DockingFrameEncoder()))
        var bytes =
            Self.encoded(.dock(Dock(ship: "chat")))
            + Self.encoded(.cargo(connID: 1, payload: ByteBuffer(string: "x")))
        let first = bytes.readSlice(length: 7)!
        try channel.writeInbound(first)
        #expect(try channel.readInbound(as: DockingMessage.self) == nil)
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: DockingMessage.self) == .dock(Dock(ship: "chat")))
        #expect(
            try channel.readInbound(as: DockingMessage.self)
                == .cargo(connID: 1, payload: ByteBuffer(string: "x")))

        try channel.writeOutbound(DockingMessage.disembark(Disembark(connID: 1, code: 4000, reason: "bye")))
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(
            try DockingCodec.decode(from: &written)
                == .disembark(Disembark(connID: 1, code: 4000, reason: "bye")))

        // A bad frame reaches errorCaught as a DockingError.
        #expect(throws: DockingError.unknownType(0x03)) {
            try channel.writeInbound(ByteBuffer(bytes: [0x03, 0, 0, 0, 0]))
        }
        _ = try? channel.finish()
    }
}

extension ByteBuffer {
    static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var joined = lhs
        var rest = rhs
        joined.writeBuffer(&rest)
        return joined
    }
}
