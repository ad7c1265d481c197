import MothershipTestSupport
import NIOCore
import Testing

@testable import Relay

/// permessage-deflate (RFC 7692) for bay clients without sockets: which offer is accepted and what
/// the 101 answers (§5, §7.1), then the compression itself against an independent zlib client.
@Suite("permessage-deflate")
struct PerMessageDeflateTests {
    static func answer(_ headers: String...) -> String? {
        PerMessageDeflate.negotiate(headers)?.responseValue
    }

    @Test func aPlainOfferIsAcceptedAsItIs() {
        #expect(Self.answer("permessage-deflate") == "permessage-deflate")
        #expect(Self.answer("Permessage-Deflate") == "permessage-deflate", "names are case-insensitive")
        #expect(Self.answer("  permessage-deflate  ") == "permessage-deflate")
    }

    @Test func noOfferOrOnlyOtherExtensionsMeansNoCompression() {
        #expect(PerMessageDeflate.negotiate([]) == nil)
        #expect(Self.answer("x-webkit-deflate-frame") == nil)
        #expect(Self.answer("") == nil)
        #expect(Self.answer("permessage-deflate-x") == nil)
    }

    @Test func contextTakeoverParametersAreEchoed() {
        #expect(
            Self.answer("permessage-deflate; server_no_context_takeover")
                == "permessage-deflate; server_no_context_takeover")
        #expect(
            Self.answer("permessage-deflate; client_no_context_takeover")
                == "permessage-deflate; client_no_context_takeover")
        let both = PerMessageDeflate.negotiate([
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
        ])
        #expect(both?.serverNoContextTakeover == true)
        #expect(both?.clientNoContextTakeover == true)
        #expect(
            both?.responseValue
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    }

    @Test func serverMaxWindowBitsFrom9To15IsAcceptedAndAnswered() {
        for bits in 9...15 {
            let agreed = PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=\(bits)"])
            #expect(agreed?.serverMaxWindowBits == bits)
            #expect(agreed?.responseValue == "permessage-deflate; server_max_window_bits=\(bits)")
        }
        // Quoted values are the same token (§7.1).
        #expect(
            Self.answer(#"permessage-deflate; server_max_window_bits="10""#)
                == "permessage-deflate; server_max_window_bits=10")
    }

    @Test func serverMaxWindowBits8OrAnInvalidValueDeclinesTheOffer() {
        // zlib's raw deflate cannot produce an 8-bit window.
        #expect(Self.answer("permessage-deflate; server_max_window_bits=8") == nil)
        for value in ["7", "16", "0", "010", "+9", "nine", "", #""""#, "9.0", "-15"] {
            #expect(Self.answer("permessage-deflate; server_max_window_bits=\(value)") == nil, "\(value)")
        }
        #expect(Self.answer("permessage-deflate; server_max_window_bits") == nil, "a value is required")
    }

    @Test func clientMaxWindowBitsIsAcceptedWithOrWithoutAValueAndNeverDeclared() {
        #expect(Self.answer("permessage-deflate; client_max_window_bits") == "permessage-deflate")
        for bits in 8...15 {
            #expect(
                Self.answer("permessage-deflate; client_max_window_bits=\(bits)") == "permessage-deflate")
        }
        #expect(Self.answer(#"permessage-deflate; client_max_window_bits="15""#) == "permessage-deflate")
        for value in ["7", "16", "0", "x"] {
            #expect(Self.answer("permessage-deflate; client_max_window_bits=\(value)") == nil, "\(value)")
        }
    }

    @Test func aValueOnAFlagParameterARepeatedOrAnUnknownParameterDeclinesTheOffer() {
        #expect(Self.answer("permessage-deflate; server_no_context_takeover=1") == nil)
        #expect(Self.answer("permessage-deflate; client_no_context_takeover=true") == nil)
        #expect(
            Self.answer("permessage-deflate; server_no_context_takeover; server_no_context_takeover") == nil)
        #expect(
            Self.answer("permessage-deflate; client_max_window_bits; client_max_window_bits=10") == nil)
        #expect(
            Self.answer("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10") == nil)
        #expect(Self.answer("permessage-deflate; mystery") == nil)
        #expect(Self.answer("permessage-deflate; ;") == nil, "an empty parameter")
        #expect(Self.answer(#"permessage-deflate; server_max_window_bits="10"#) == nil, "an open quote")
    }

    @Test func theFirstAcceptableOfferWinsAcrossCommasAndHeaders() {
        // The first is declined (8 bits), the second is taken, the third never looked at.
        #expect(
            Self.answer(
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12, permessage-deflate"
            ) == "permessage-deflate; server_max_window_bits=12")
        #expect(
            Self.answer(
                "x-foo; a=\"1,2\", permessage-deflate; mystery",
                "permessage-deflate; client_no_context_takeover",
                "permessage-deflate")
                == "permessage-deflate; client_no_context_takeover")
        #expect(Self.answer("x-foo", "permessage-deflate; client_max_window_bits") == "permessage-deflate")
        #expect(Self.answer("permessage-deflate; mystery", "permessage-deflate; x=1") == nil)
    }

    @Test func offersParseWithQuotesAndWhitespace() {
        let offers = ExtensionOffer.parse(#"foo; a="x;y, z" , Bar ;B = 2; c"#)
        #expect(offers.map(\.name) == ["bar"], "a quoted value must still be a token (foo is dropped)")
        #expect(offers.first?.parameters.map(\.name) == ["b", "c"])
        #expect(offers.first?.parameters.map(\.value) == ["2", nil])
    }

    // MARK: Compression

    static let allocator = ByteBufferAllocator()

    static func inflate(
        _ deflate: MessageDeflate, _ frames: [[UInt8]], limit: Int = 1 << 20
    ) -> Result<[UInt8], WebSocketRules.Violation> {
        var output = allocator.buffer(capacity: 16)
        for (index, frame) in frames.enumerated() {
            let violation = frame.withUnsafeBytes {
                deflate.inflate($0, end: index == frames.count - 1, into: &output, limit: limit) { _ in nil }
            }
            if let violation { return .failure(violation) }
        }
        return .success(Array(output.readableBytesView))
    }

    @Test func clientMessagesInflateWithContextAcrossMessagesAndFrames() throws {
        let deflate = MessageDeflate(parameters: PerMessageDeflate())
        #expect(deflate.holdsStreams == (false, false), "nothing is allocated before it is needed")
        let client = RawDeflater()
        let text = Array(String(repeating: "Hello, bay! ", count: 50).utf8)
        for _ in 0..<3 {
            // The second and third refer back to the first (context takeover).
            let compressed = client.compress(text)
            #expect(try Self.inflate(deflate, [compressed]).get() == text)
        }
        // One message split across frames at odd places.
        let compressed = client.compress(text)
        let frames = [
            Array(compressed.prefix(1)), Array(compressed.dropFirst(1).prefix(3)),
            Array(compressed.dropFirst(4)),
        ]
        #expect(try Self.inflate(deflate, frames).get() == text)
        #expect(deflate.holdsStreams == (true, false))
        deflate.release()
        #expect(deflate.holdsStreams == (false, false))
    }

    @Test func withClientNoContextTakeoverTheInflaterStartsFreshEachMessage() throws {
        var parameters = PerMessageDeflate()
        parameters.clientNoContextTakeover = true
        let deflate = MessageDeflate(parameters: parameters)
        let client = RawDeflater(noContextTakeover: true)
        for word in ["one", "two two two two", "one"] {
            #expect(try Self.inflate(deflate, [client.compress(Array(word.utf8))]).get() == Array(word.utf8))
        }
    }

    @Test func aMessageInflatingPastTheLimitFailsWith1009WithoutGrowingPastIt() {
        let deflate = MessageDeflate(parameters: PerMessageDeflate())
        let bomb = RawDeflater().compress([UInt8](repeating: 0, count: 4 << 20))
        #expect(bomb.count < 10_000)
        var output = Self.allocator.buffer(capacity: 16)
        let violation = bomb.withUnsafeBytes {
            deflate.inflate($0, end: true, into: &output, limit: 100_000) { _ in nil }
        }
        #expect(violation?.code == 1009)
        #expect(output.readableBytes <= 100_001)
        #expect(output.capacity < 300_000)
        // Exactly at the limit is fine.
        let fits = MessageDeflate(parameters: PerMessageDeflate())
        let exact = RawDeflater().compress([UInt8](repeating: 7, count: 100_000))
        #expect((try? Self.inflate(fits, [exact], limit: 100_000).get().count) == 100_000)
    }

    @Test func aBrokenStreamFailsWith1007() {
        let deflate = MessageDeflate(parameters: PerMessageDeflate())
        // BTYPE 11 is reserved.
        guard case .failure(let violation) = Self.inflate(deflate, [[0xFF, 0xFF, 0xFF]]) else {
            Issue.record("a reserved block type inflated")
            return
        }
        #expect(violation == WebSocketRules.Violation(code: 1007, reason: "invalid compressed data"))
    }

    @Test func aMessageEndedWithBFINALIsReadAndTheNextStartsAnew() throws {
        // A stored block with BFINAL set ("hi"), then the trailer the receiver appends.
        let deflate = MessageDeflate(parameters: PerMessageDeflate())
        #expect(
            try Self.inflate(deflate, [[0x01, 0x02, 0x00, 0xFD, 0xFF, 0x68, 0x69]]).get() == Array("hi".utf8))
        let next = RawDeflater().compress(Array("again".utf8))
        #expect(try Self.inflate(deflate, [next]).get() == Array("again".utf8))
    }

    @Test func bayMessagesDeflateWithTheTrailerCutAndRoomForTheHeader() throws {
        for serverNoContextTakeover in [false, true] {
            var parameters = PerMessageDeflate()
            parameters.serverNoContextTakeover = serverNoContextTakeover
            parameters.serverMaxWindowBits = 9
            let deflate = MessageDeflate(parameters: parameters)
            // A fresh client inflater per message when the server resets its context.
            var client = RawInflater()
            let text = Array(String(repeating: "{\"type\":\"message\",\"body\":\"hi\"} ", count: 40).utf8)
            for _ in 0..<3 {
                var message = Self.allocator.buffer(capacity: text.count)
                message.writeBytes(text)
                let frame = try #require(deflate.deflate(message, headerRoom: 10, allocator: Self.allocator))
                #expect(frame.readerIndex == 10)
                let payload = Array(frame.readableBytesView)
                #expect(payload.suffix(4) != [0x00, 0x00, 0xFF, 0xFF])
                #expect(payload.count < text.count / 4)
                #expect(try client.decompress(payload) == text)
                if serverNoContextTakeover { client = RawInflater() }
            }
            #expect(deflate.holdsStreams == (false, true))
        }
    }
}
