import NIOCore
import NIOHTTP1
import Testing

@testable import Relay

/// The relay's own HTTP/1 layer, without sockets: head parsing (limits, smuggling guards), chunked
/// body framing, and the rewriting of heads on their way to the ship and back.
@Suite("HTTP/1 heads")
struct HeadParserTests {
    static let limits = HeadParser.Limits(
        maxTargetBytes: 8 * 1024, maxHeaderBytes: 64 * 1024, maxFieldCount: 100)

    static func parse(_ text: String, kind: HeadParser.Kind = .request) -> HeadParser.Outcome {
        var buffer = ByteBuffer(string: text)
        var scanned = 0
        return HeadParser.next(from: &buffer, kind: kind, limits: limits, scanned: &scanned)
    }

    static func head(_ text: String, kind: HeadParser.Kind = .request) throws -> MessageHead {
        guard case .complete(let head) = parse(text, kind: kind) else {
            Issue.record("no complete head in \(text.debugDescription)")
            throw CancellationError()
        }
        return head
    }

    static func failure(_ text: String) -> HeadParser.Failure? {
        if case .failure(let failure) = parse(text) { return failure }
        return nil
    }

    @Test func parsesARequestIntoOffsetsAndFlags() throws {
        let head = try Self.head(
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n"
        )
        #expect(head.method == .GET)
        #expect(head.targetString == "/a?b=1")
        #expect(head.version == .http1_1)
        #expect(head.value(of: .userAgent) == "curl/8")
        #expect(head.contentLength == 0)
        #expect(head.isKeepAlive)
        #expect(
            head.headerPairs.map(\.0) == ["Host", "User-Agent", "Connection", "X-Secret", "Content-Length"])
        // Connection and the header it names describe this hop only.
        #expect(head.fields.filter(\.isHopByHop).map { head.string($0.name) } == ["Connection", "X-Secret"])
    }

    @Test func findsTheEndOfAHeadArrivingAByteAtATime() throws {
        let text = Array(
            "\r\nPOST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello".utf8)
        var buffer = ByteBuffer()
        var scanned = 0
        var result: MessageHead?
        for byte in text {
            buffer.writeInteger(byte)
            if result == nil,
                case .complete(let head) = HeadParser.next(
                    from: &buffer, kind: .request, limits: Self.limits, scanned: &scanned)
            {
                result = head
            }
        }
        let head = try #require(result)
        #expect(head.method == .POST && head.chunked)
        #expect(String(buffer: buffer) == "5\r\nhello")  // the body stays for the framing
    }

    @Test func parsingIntoOneHeadReusesItsFieldListAndResetsEverythingElse() throws {
        // A connection parses each of its heads into one variable: the second head must carry
        // nothing of the first, and the field list's storage must be the one handed in.
        var buffer = ByteBuffer(
            string:
                "POST /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
                + "GET /b HTTP/1.0\r\nHost: y\r\n\r\nGET /c HTTP/1.1\r\nHo")
        var scanned = 0
        var head = MessageHead(bytes: buffer)
        head.fields.reserveCapacity(32)
        let storage = head.fields.withUnsafeBufferPointer { $0.baseAddress }
        func parse() -> String {
            switch HeadParser.next(
                from: &buffer, kind: .request, limits: Self.limits, scanned: &scanned, into: &head)
            {
            case .complete: "complete"
            case .incomplete: "incomplete"
            case .failure(let failure): "\(failure)"
            }
        }

        try #require(parse() == "complete")
        #expect(head.method == .POST && head.targetString == "/a" && head.contentLength == 3)
        #expect(head.connection.contains(.close) && head.expectsContinue && head.fields.count == 5)
        #expect(head.fields.withUnsafeBufferPointer { $0.baseAddress } == storage)
        buffer.moveReaderIndex(forwardBy: 3)  // the body

        try #require(parse() == "complete")
        #expect(head.method == .GET && head.targetString == "/b" && head.version == .http1_0)
        #expect(head.contentLength == nil && !head.expectsContinue && head.connection.isEmpty)
        #expect(head.headerPairs.map(\.0) == ["Host"] && head.value(of: .host) == "y")
        #expect(head.fields.allSatisfy { !$0.isHopByHop })
        #expect(head.fields.withUnsafeBufferPointer { $0.baseAddress } == storage)

        // An incomplete head leaves the last one as it was.
        try #require(parse() == "incomplete")
        #expect(head.targetString == "/b")
        #expect(String(buffer: buffer) == "GET /c HTTP/1.1\r\nHo")
    }

    @Test func acceptsBareLineFeedsAndHTTP10KeepAliveRules() throws {
        let bare = try Self.head("GET / HTTP/1.0\nConnection: keep-alive\n\n")
        #expect(bare.bareLineFeeds && bare.version == .http1_0 && bare.isKeepAlive)
        #expect(try !Self.head("GET / HTTP/1.0\r\n\r\n").isKeepAlive)
        #expect(try !Self.head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").isKeepAlive)
        #expect(
            try Self.head("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .isUpgrade)
        #expect(try !Self.head("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").isUpgrade)
        #expect(try Self.head("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n").expectsContinue)
        #expect(try Self.head("PURGE /x HTTP/1.1\r\nHost: x\r\n\r\n").method == .RAW(value: "PURGE"))
    }

    @Test(arguments: [
        ("GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
        ("GET  / HTTP/1.1\r\n\r\n", "invalid request target"),
        ("G(T / HTTP/1.1\r\n\r\n", "invalid request line"),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "space before a header's colon"),
        ("GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", "folded header line"),
        ("GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n", "control character in a header value"),
        ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "bare CR in a header line"),
        ("GET / HTTP/1.1\r\n: v\r\n\r\n", "invalid header name"),
        ("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "conflicting Content-Length headers"
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding"
        ),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "unsupported Transfer-Encoding"),
    ])
    func refusesMalformedAndSmugglingProneRequests(text: String, reason: String) {
        #expect(Self.failure(text) == .malformed(reason))
    }

    @Test func findsTheFirstByteOfAWordThatIsNotALetterOrHyphen() {
        func reference(_ bytes: [UInt8]) -> UInt64 {
            var mask: UInt64 = 0
            for (index, byte) in bytes.enumerated() {
                let letter = (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
                if !(letter || byte == 45) { mask |= 0x80 << (8 * UInt64(index)) }
            }
            return mask
        }
        var generator = SystemRandomNumberGenerator()
        // Every byte value in every position, then random words mixing letters with the rest.
        var words: [[UInt8]] = (0..<256).flatMap { byte in
            (0..<8).map { position in
                var word = Array("Content-".utf8)
                word[position] = UInt8(byte)
                return word
            }
        }
        let alphabet = Array("aZ-:09_\r\n\t @[`{".utf8) + [0x7F, 0x80, 0xC1, 0xFF, 0x2D | 0x80, 0x0D]
        for _ in 0..<20_000 { words.append((0..<8).map { _ in alphabet.randomElement(using: &generator)! }) }
        for word in words {
            let value = word.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(HeadParser.notLetterOrHyphen(UInt64(littleEndian: value)) == reference(word), "\(word)")
        }
    }

    @Test(arguments: [0, 7, 42, 100, 999, 12_345, 1_700_000_000_000_001, Int64.max])
    func writesDecimalsTwoDigitsAtATime(value: Int64) {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        ByteWriter.write(into: &buffer, estimate: 32, source: ByteBuffer()) { writer, _ in
            writer.appendDecimal(value)
        }
        #expect(String(buffer: buffer) == String(value))
    }

    @Test func equalContentLengthsAreOneLengthInAResponseOnly() throws {
        let head = try Self.head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", kind: .response)
        #expect(head.contentLength == 3)
        // A request says it once (SPEC §4; llhttp refuses a repeat).
        #expect(
            Self.failure("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n")
                == .malformed("duplicate Content-Length"))
    }

    @Test func limitsTheTargetTheHeaderBlockAndTheFieldCount() {
        let long = String(repeating: "a", count: 8 * 1024)
        #expect(Self.failure("GET /\(long) HTTP/1.1\r\n\r\n") == .uriTooLong)
        #expect(Self.failure("GET /\(long)\(long)") == .uriTooLong)  // refused before the line ends
        #expect(Self.parse("GET /\(long.dropFirst()) HTTP/1.1\r\nHost: x\r\n\r\n").isComplete)
        let many = (0...100).map { "X-\($0): v\r\n" }.joined()
        #expect(Self.failure("GET / HTTP/1.1\r\n\(many)\r\n") == .headersTooLarge)
        let big = "X: " + String(repeating: "b", count: 64 * 1024) + "\r\n"
        #expect(Self.failure("GET / HTTP/1.1\r\n\(big)\r\n") == .headersTooLarge)
        #expect(Self.failure("GET / HTTP/1.1\r\n\(big)\(big)") == .headersTooLarge)  // before it ends
    }

    @Test func parsesResponsesAndLetsChunkingWinOverALength() throws {
        let head = try Self.head(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n", kind: .response)
        #expect(head.status == 200 && head.string(head.statusText) == "200 OK")
        #expect(head.chunked && head.contentLength == nil)
        #expect(head.fields.first { $0.kind == .contentLength }?.isHopByHop == true)
        let noReason = try Self.head("HTTP/1.0 204\r\n\r\n", kind: .response)
        #expect(noReason.status == 204 && noReason.version == .http1_0)
        if case .failure = Self.parse("HTTP/1.1 2x0 OK\r\n\r\n", kind: .response) {
        } else {
            Issue.record("a bad status code must fail")
        }
    }
}

extension HeadParser.Outcome {
    var isComplete: Bool {
        if case .complete = self { return true }
        return false
    }
}

@Suite("Body framing")
struct BodyFramingTests {
    static let chunked = "5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n"

    @Test func findsTheEndOfAChunkedBodyWhereverItIsSplit() throws {
        let bytes = Array((Self.chunked + "NEXT").utf8)
        let bodyLength = Self.chunked.utf8.count
        for split in 0...bytes.count {
            var framing = BodyFraming.chunked(ChunkedScanner())
            var first = ByteBuffer(bytes: bytes[..<split])
            var second = ByteBuffer(bytes: bytes[split...])
            var taken = 0
            var (slice, ended) = try framing.take(from: &first)
            taken += slice?.readableBytes ?? 0
            if !ended {
                (slice, ended) = try framing.take(from: &second)
                taken += slice?.readableBytes ?? 0
            }
            #expect(ended && taken == bodyLength, "split at \(split)")
        }
    }

    @Test func dechunksForHTTP10Clients() throws {
        var framing = BodyFraming.chunked(ChunkedScanner())
        var buffer = ByteBuffer(string: Self.chunked)
        var data = ""
        let ended = try framing.takeDechunked(from: &buffer) { data += String(buffer: $0) }
        #expect(ended && data == "hello0123456789abcdef" && buffer.readableBytes == 0)
    }

    @Test(arguments: ["x\r\n", "5\r\nhelloXX", "1234567890abcdef1\r\n", "0\r\n\rX"])
    func refusesMalformedChunking(_ text: String) {
        var framing = BodyFraming.chunked(ChunkedScanner())
        var buffer = ByteBuffer(string: text)
        #expect(throws: BodyFraming.Malformed.self) { _ = try framing.take(from: &buffer) }
    }

    @Test func countsDownALength() throws {
        var framing = BodyFraming.length(5)
        var buffer = ByteBuffer(string: "hel")
        var (slice, ended) = try framing.take(from: &buffer)
        #expect(slice.map { String(buffer: $0) } == "hel" && !ended)
        buffer = ByteBuffer(string: "loGET")
        (slice, ended) = try framing.take(from: &buffer)
        #expect(slice.map { String(buffer: $0) } == "lo" && ended && String(buffer: buffer) == "GET")
    }
}

@Suite("Forwarded heads")
struct HeadWriterTests {
    static func upstream(_ text: String, target: String? = nil, address: String? = "192.0.2.9") throws
        -> String
    {
        let head = try HeadParserTests.head(text)
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: target, client: .init(address: address, scheme: "https"),
            requestID: { $0.append("abc") },
            startMicroseconds: 1_700_000_000_000_000, into: &buffer)
        return String(buffer: buffer)
    }

    @Test func addsForwardingHeadersAndDropsHopByHopOnes() throws {
        let sent = try Self.upstream(
            "GET /x HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                + "Keep-Alive: timeout=5\r\nTE: trailers\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n"
                + "X-Forwarded-Proto: spoofed\r\nX-Request-Start: spoofed\r\n\r\n",
            target: "/y")
        #expect(
            sent
                == "GET /y HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n"
                + "X-Forwarded-For: 10.0.0.1, 192.0.2.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n"
                + "X-Request-Id: abc\r\nX-Request-Start: t=1700000000000000\r\n\r\n")
    }

    @Test func keepsAClientRequestIdTheUpgradeHandshakeAndNormalisesLineEnds() throws {
        let sent = try Self.upstream(
            "GET /ws HTTP/1.1\nHost: h\nX-Request-Id: mine\nConnection: Upgrade\nUpgrade: websocket\n\n",
            address: nil)
        #expect(
            sent
                == "GET /ws HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                + "X-Forwarded-Proto: https\r\nX-Forwarded-Host: h\r\nX-Request-Start: t=1700000000000000\r\n\r\n"
        )
    }

    @Test func dropsAnExpectationTheRelayAnswers() throws {
        let sent = try Self.upstream(
            "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        #expect(!sent.lowercased().contains("expect"))
        #expect(sent.contains("Content-Length: 2\r\n"))
    }

    static func response(
        _ text: String, version: HTTPVersion, close: Bool, reframing: HeadWriter.Reframing = .none
    ) throws -> String {
        let head = try HeadParserTests.head(text, kind: .response)
        var buffer = ByteBuffer()
        HeadWriter.clientResponse(
            head, clientVersion: version, closeAfter: close, reframing: reframing, into: &buffer)
        return String(buffer: buffer)
    }

    @Test func responsesSpeakTheClientsVersionAndSayWhenTheConnectionCloses() throws {
        let text =
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX: 1\r\nContent-Length: 2\r\n\r\n"
        #expect(
            try Self.response(text, version: .http1_1, close: false)
                == "HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 2\r\n\r\n")
        #expect(
            try Self.response(text, version: .http1_1, close: true)
                == "HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        #expect(
            try Self.response(text, version: .http1_0, close: false)
                == "HTTP/1.0 200 OK\r\nX: 1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n")
        let switching =
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        #expect(try Self.response(switching, version: .http1_1, close: false) == switching)
    }

    @Test func reframesBodiesTheClientCouldNotRead() throws {
        #expect(
            try Self.response(
                "HTTP/1.0 200 OK\r\nX: 1\r\n\r\n", version: .http1_1, close: false, reframing: .chunk)
                == "HTTP/1.1 200 OK\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(
            try Self.response(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", version: .http1_0, close: true,
                reframing: .dechunk)
                == "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n")
        var size = ByteBuffer()
        HeadWriter.writeChunkSize(0x1a2, into: &size)
        #expect(String(buffer: size) == "1a2\r\n")
    }

    @Test func localAnswersArePlainText() {
        var buffer = ByteBuffer()
        HeadWriter.local(.notReady(ship: "web"), version: .http1_1, close: true, isHead: false, into: &buffer)
        let body = "503 Service Unavailable: ship 'web' is not ready\n"
        #expect(
            String(buffer: buffer)
                == "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nServer: mothership\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                + body)
    }
}

/// Whatever bytes arrive, split however, the parser and the chunked scanner answer with a head, a
/// failure or "more please": never a crash (a crash would take every connection down with it).
/// Debug builds check every buffer access, so an out-of-bounds read fails this test.
@Suite("HTTP/1 robustness")
struct HTTP1RobustnessTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Fragments that make near-valid messages more likely than uniform noise would.
    static let pieces: [[UInt8]] = [
        "GET ", "POST ", "/", "/a?b", " HTTP/1.1", " HTTP/1.0", "HTTP/1.1 200 OK", "\r\n", "\n", "\r", ":",
        ": ",
        "Host", "Content-Length", "Transfer-Encoding", "chunked", "Connection", "close, x", "keep-alive",
        "Upgrade",
        "0", "5", "ff", ";x", " ", "\t", "\u{00}", "\u{7F}", "\u{FF}", "x",
    ].map { Array($0.utf8) }

    @Test func randomInputNeverCrashesTheParserOrTheScanner() {
        var random = Generator(state: 0x6D6F_7468_6572)
        let limits = HeadParser.Limits(maxTargetBytes: 64, maxHeaderBytes: 256, maxFieldCount: 8)
        for round in 0..<10_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 1...40, using: &random) {
                bytes += Self.pieces.randomElement(using: &random)!
            }
            let kind: HeadParser.Kind = round % 3 == 0 ? .response : .request
            var buffer = ByteBuffer()
            var scanned = 0
            var offset = 0
            while offset < bytes.count {
                let step = Int.random(in: 1...max(1, bytes.count - offset), using: &random)
                buffer.writeBytes(bytes[offset..<offset + step])
                offset += step
                switch HeadParser.next(from: &buffer, kind: kind, limits: limits, scanned: &scanned) {
                case .incomplete:
                    continue
                case .failure:
                    offset = bytes.count
                case .complete(let head):
                    var framing = kind == .request ? BodyFraming.request(head) : .chunked(ChunkedScanner())
                    _ = try? framing.take(from: &buffer)
                    var dechunking = BodyFraming.chunked(ChunkedScanner())
                    _ = try? dechunking.takeDechunked(from: &buffer) { _ in }
                    offset = bytes.count
                }
            }
        }
    }
}
