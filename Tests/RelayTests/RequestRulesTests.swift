import NIOCore
import NIOHTTP1
import Testing

@testable import Relay

/// The rules that keep the relay and a ship agreeing on where a request starts and ends and on
/// what path it names (SPEC §4): framing that no `Connection` header can change, strict chunking,
/// `Host`, the absolute form, and the one normalised path that every matching step uses.
@Suite("Request rules")
struct RequestRulesTests {
    static func parse(_ text: String, kind: HeadParser.Kind = .request) -> HeadParser.Outcome {
        HeadParserTests.parse(text, kind: kind)
    }

    static func failure(_ text: String) -> HeadParser.Failure? { HeadParserTests.failure(text) }

    // MARK: Framing

    @Test(arguments: ["content-length", "Content-Length, close", "transfer-encoding", "host", "HOST, foo"])
    func aConnectionHeaderNeverRemovesTheFramingOrTheHost(token: String) throws {
        let head = try HeadParserTests.head(
            "POST /a HTTP/1.1\r\nHost: x\r\nConnection: \(token)\r\nContent-Length: 5\r\nFoo: 1\r\n\r\n")
        for field in head.fields where field.kind == .contentLength || field.kind == .host {
            #expect(!field.isHopByHop, "\(head.string(field.name)) dropped by 'Connection: \(token)'")
        }
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: nil, client: .init(address: "10.0.0.1", scheme: "http"),
            requestID: { $0.append("id") }, startMicroseconds: 1, into: &buffer)
        let sent = String(buffer: buffer)
        #expect(sent.contains("\r\nContent-Length: 5\r\n"), "\(sent)")
        #expect(sent.contains("\r\nHost: x\r\n"), "\(sent)")
    }

    @Test func aConnectionHeaderNeverRemovesAChunkedEncoding() throws {
        let head = try HeadParserTests.head(
            "POST /a HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        #expect(head.chunked)
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: nil, client: .init(address: nil, scheme: "http"), requestID: { $0.append("id") },
            startMicroseconds: 1, into: &buffer)
        #expect(String(buffer: buffer).contains("\r\nTransfer-Encoding: chunked\r\n"))
    }

    @Test func aResponsesLengthSurvivesItsConnectionHeaderToo() throws {
        let head = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n", kind: .response)
        #expect(head.fields.first { $0.kind == .contentLength }?.isHopByHop == false)
    }

    @Test(arguments: [
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "duplicate Content-Length"
        ),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length"),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", "invalid Content-Length"),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo chunked\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            "unsupported Transfer-Encoding"
        ),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
        ("GET / HTTP/1.1\r\n\r\n", "missing Host header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "more than one Host header"),
        ("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", "more than one Host header"),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host header"),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host header"),
        ("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "invalid Host header"),
    ])
    func refusesAmbiguousFramingAndHosts(text: String, reason: String) {
        #expect(Self.failure(text) == .malformed(reason))
    }

    @Test func acceptsWhatStrictParsersAccept() throws {
        #expect(
            try HeadParserTests.head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\n\r\n")
                .chunked)
        #expect(try HeadParserTests.head("GET / HTTP/1.0\r\n\r\n").version == .http1_0)
        #expect(try HeadParserTests.head("GET / HTTP/1.1\r\nHost:\r\n\r\n").method == .GET)
        #expect(try HeadParserTests.head("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").method == .GET)
        // A response may repeat its length, and ends at the close when not chunked last.
        let response = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", kind: .response)
        #expect(response.contentLength == 3)
        let gzip = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo chunked\r\n\r\n", kind: .response)
        #expect(!gzip.chunked)
    }

    @Test func anH2CUpgradeIsNotAnUpgradeAndItsSettingsStayBehind() throws {
        let head = try HeadParserTests.head(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        #expect(!head.isUpgrade)
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: nil, client: .init(address: nil, scheme: "http"), requestID: { $0.append("id") },
            startMicroseconds: 1, into: &buffer)
        let sent = String(buffer: buffer).lowercased()
        #expect(!sent.contains("upgrade") && !sent.contains("http2-settings"), "\(sent)")
        #expect(
            try HeadParserTests.head(
                "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            ).isUpgrade)
    }

    @Test func aClientsOwnForwardedHostNeverReachesTheShip() throws {
        let head = try HeadParserTests.head(
            "GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil.example\r\n\r\n")
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: nil, client: .init(address: "10.0.0.1", scheme: "http"),
            requestID: { $0.append("id") }, startMicroseconds: 1, into: &buffer)
        let sent = String(buffer: buffer)
        #expect(!sent.contains("evil.example"), "\(sent)")
        #expect(sent.contains("\r\nX-Forwarded-Host: shop.example\r\n"), "\(sent)")
    }

    @Test func anAbsoluteFormTargetReachesTheShipInOriginFormWithItsAuthorityAsHost() throws {
        let head = try HeadParserTests.head(
            "GET http://shop.example:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
        let target = try RequestTarget.parse(head.targetString, method: head.method)
        #expect(target.forwarded == "/x?y=1" && target.path == "/x" && target.query == "?y=1")
        #expect(target.authority == "shop.example:8080")
        var buffer = ByteBuffer()
        HeadWriter.upstreamRequest(
            head, target: target.forwarded, host: target.authority,
            client: .init(address: nil, scheme: "http"),
            requestID: { $0.append("id") }, startMicroseconds: 1, into: &buffer)
        let sent = String(buffer: buffer)
        #expect(sent.hasPrefix("GET /x?y=1 HTTP/1.1\r\n"), "\(sent)")
        #expect(
            sent.contains("\r\nHost: shop.example:8080\r\n") && !sent.contains("other.example"), "\(sent)")
    }

    // MARK: Chunked bodies

    @Test(arguments: [
        "5\nhello\r\n0\r\n\r\n",  // bare LF after a size
        "5;a\nb\r\nhello\r\n0\r\n\r\n",  // LF inside an extension
        "5;a\rb\r\nhello\r\n0\r\n\r\n",  // CR inside an extension
        "5;a\u{01}\r\nhello\r\n0\r\n\r\n",  // a control byte in an extension
        "5\r\nhello\n0\r\n\r\n",  // bare LF after data
        "5\r\nhello\r\n0\r\nX: y\n\r\n",  // bare LF in a trailer
        "5\r\nhello\r\n0\r\n\n",  // bare LF ending the trailers
        "5\r\nhello\r\n0\r\n folded\r\n\r\n",  // a folded trailer
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
    ])
    func refusesLenientChunkingInRequests(_ text: String) {
        var framing = BodyFraming.chunked(ChunkedScanner(strict: true))
        var buffer = ByteBuffer(string: text)
        #expect(throws: BodyFraming.Malformed.self) { _ = try framing.take(from: &buffer) }
    }

    @Test func boundsAChunkExtensionAndTheTrailers() throws {
        func scan(_ text: String) throws -> Bool {
            var framing = BodyFraming.chunked(ChunkedScanner(strict: true))
            var buffer = ByteBuffer(string: text)
            return try framing.take(from: &buffer).ended
        }
        let longest = String(repeating: "a", count: ChunkedScanner.maxExtensionBytes - 1)
        #expect(try scan("5;\(longest)\r\nhello\r\n0\r\n\r\n"))
        #expect(throws: BodyFraming.Malformed.self) { try scan("5;\(longest)aa\r\nhello\r\n0\r\n\r\n") }
        let trailer = "X: " + String(repeating: "t", count: ChunkedScanner.maxTrailerBytes)
        #expect(throws: BodyFraming.Malformed.self) { try scan("0\r\n\(trailer)\r\n\r\n") }
        #expect(try scan("0\r\nX: \(String(repeating: "t", count: 100))\r\n\r\n"))
    }

    @Test func aStrictScannerStillTakesWellFormedChunksWhereverTheyAreSplit() throws {
        let body = "5;name=\"v a\"\r\nhello\r\n5 ; x\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
        let bytes = Array((body + "NEXT").utf8)
        for split in 0...bytes.count {
            var framing = BodyFraming.chunked(ChunkedScanner(strict: true))
            var first = ByteBuffer(bytes: bytes[..<split])
            var second = ByteBuffer(bytes: bytes[split...])
            var taken = try framing.take(from: &first)
            var count = taken.slice?.readableBytes ?? 0
            if !taken.ended {
                taken = try framing.take(from: &second)
                count += taken.slice?.readableBytes ?? 0
            }
            #expect(taken.ended && count == body.utf8.count, "split at \(split)")
        }
    }

    @Test func requestsAreFramedStrictlyAndResponsesAsBefore() throws {
        let request = try HeadParserTests.head(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        var framing = BodyFraming.request(request)
        var buffer = ByteBuffer(string: "5\nhello\r\n0\r\n\r\n")
        #expect(throws: BodyFraming.Malformed.self) { _ = try framing.take(from: &buffer) }
        let response = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", kind: .response)
        var lenient = BodyFraming.response(response, answeringHEAD: false)
        var answer = ByteBuffer(string: "5\nhello\n0\n\n")
        #expect(try lenient.take(from: &answer).ended)
    }

    // MARK: The normalised path

    @Test(arguments: [
        ("/admin/x", "/admin/x"),
        ("/%61dmin/x", "/admin/x"),
        ("/%41DMIN/x", "/ADMIN/x"),
        ("//admin/x", "/admin/x"),
        ("/./admin/x", "/admin/x"),
        ("/%2e/admin/x", "/admin/x"),
        ("/static/../admin/x", "/admin/x"),
        ("/static/%2E%2E/admin/x", "/admin/x"),
        ("/admin/./x", "/admin/x"),
        ("/admin//x/", "/admin/x/"),
        ("/admin/x/.", "/admin/x/"),
        ("/admin/x/..", "/admin/"),
        ("/", "/"),
        ("//", "/"),
        ("/..a/.b", "/..a/.b"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%20b", "/a%20b"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/.well-known/x", "/.well-known/x"),
    ])
    func matchesOneNormalisedPath(raw: String, path: String) throws {
        // With a query, and without one (a path alone takes a shorter way through the parser).
        for query in ["?q=%61", "?", ""] {
            let target = try RequestTarget.parse(raw + query, method: .GET)
            #expect(target.path == path)
            #expect(target.query == query)
            #expect(target.forwarded == raw + query)  // the ship gets what the client sent
        }
    }

    @Test(arguments: ["/..", "/../x", "/a/../../x", "/%2e%2e/x", "/a%", "/a%4", "/a%zz", "/a%00b", "x", "*"])
    func refusesPathsThatClimbOrDoNotParse(raw: String) {
        #expect(throws: RequestTarget.Refusal.self) { _ = try RequestTarget.parse(raw, method: .GET) }
    }

    @Test func aHostHoldsExactlyTheCharactersOfAnAuthority() {
        // RFC 3986: unreserved, sub-delims, `%` (escapes), `:` (the port), `[` `]` (IP literals).
        let allowed = Set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%:[]".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(HostValue.isValid([byte]) == allowed.contains(byte), "byte \(byte)")
            #expect(
                HostValue.isValid([UInt8(ascii: "h"), byte, UInt8(ascii: "1")]) == allowed.contains(byte))
        }
        #expect(HostValue.isValid([UInt8]()))
        #expect(HostValue.isValid("api.example.com:8080".utf8))
        #expect(HostValue.isValid("[::1]:8080".utf8))
        #expect(!HostValue.isValid("a b".utf8))
        #expect(!HostValue.isValid("a/b".utf8))
        #expect(!HostValue.isValid("user@host".utf8))
    }

    @Test func leavesTheAsteriskOfOptionsAndTheAuthorityOfConnectAlone() throws {
        #expect(try RequestTarget.parse("*", method: .OPTIONS).path == "*")
        #expect(try RequestTarget.parse("example.com:443", method: .CONNECT).path == "example.com:443")
        #expect(try RequestTarget.parse("HTTP://h/%61", method: .GET).path == "/a")
        #expect(try RequestTarget.parse("http://h", method: .GET).forwarded == "/")
        #expect(try RequestTarget.parse("http://h?x", method: .GET).forwarded == "/?x")
        #expect(throws: RequestTarget.Refusal.self) {
            _ = try RequestTarget.parse("http://u@h/", method: .GET)
        }
        #expect(throws: RequestTarget.Refusal.self) { _ = try RequestTarget.parse("ftp://h/", method: .GET) }
    }
}
