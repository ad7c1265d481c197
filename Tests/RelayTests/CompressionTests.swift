import MothershipTestSupport
import NIOCore
import Testing

@testable import Relay

/// Accept-Encoding negotiation, the response rules, and the streaming compressor against the
/// system decoders.
@Suite("Compression")
struct CompressionTests {
    @Test func acceptEncodingHonoursQValuesWildcardsAndIdentity() {
        #expect(ContentCoding.negotiate(nil) == nil)
        #expect(ContentCoding.negotiate("") == nil)
        #expect(ContentCoding.negotiate("gzip, deflate, br") == .br)
        #expect(ContentCoding.negotiate("deflate, gzip") == .gzip)
        #expect(ContentCoding.negotiate("deflate") == .deflate)
        #expect(ContentCoding.negotiate("GZIP") == .gzip)
        #expect(ContentCoding.negotiate("x-gzip") == .gzip)
        #expect(ContentCoding.negotiate("br;q=0, gzip") == .gzip)
        #expect(ContentCoding.negotiate("br;q=0") == nil)
        #expect(ContentCoding.negotiate("br;q=0.5, gzip;q=0.8") == .gzip)
        #expect(ContentCoding.negotiate("br; q=0.8 , gzip;q=0.8") == .br)
        #expect(ContentCoding.negotiate("*") == .br)
        #expect(ContentCoding.negotiate("*;q=0") == nil)
        #expect(ContentCoding.negotiate("*, br;q=0") == .gzip)
        #expect(ContentCoding.negotiate("gzip;q=0, *") == .br)
        #expect(ContentCoding.negotiate("identity") == nil)
        #expect(ContentCoding.negotiate("identity, gzip;q=0.5") == nil)
        #expect(ContentCoding.negotiate("identity;q=0.1, gzip;q=0.5") == .gzip)
        #expect(ContentCoding.negotiate("compress, zstd") == nil)
        #expect(ContentCoding.negotiate("gzip;q=abc") == nil)
        #expect(ContentCoding.negotiate("gzip;q=2") == .gzip)
        #expect(ContentCoding.negotiate(" , ;q=1, gzip") == .gzip)
    }

    static func decide(
        status: Int = 200, type: String? = "text/html", encoding: String? = nil, length: Int? = 1000,
        range: Bool = false, cacheControl: String? = nil, coding: ContentCoding? = .gzip, head: Bool = false
    ) -> ResponseCompression {
        ResponseCompression.decide(
            status: status, contentType: type, contentEncoding: encoding, contentLength: length,
            hasContentRange: range, cacheControl: cacheControl, coding: coding, isHead: head)
    }

    /// A connection's next request reuses the coding its last `Accept-Encoding` gave when the
    /// header's bytes are the same, joined over repeated lines as `joinedValues` joins them.
    @Test func theAcceptEncodingMemoMatchesTheJoinedBytesExactly() throws {
        let two = try HeadParserTests.head(
            "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\naccept-encoding: br;q=0.5\r\n\r\n")
        let joined = try #require(two.joinedValues(named: "accept-encoding"))
        #expect(joined == "gzip, br;q=0.5")
        #expect(two.joinedValues(named: "accept-encoding", equal: Array(joined.utf8)))
        #expect(!two.joinedValues(named: "accept-encoding", equal: Array("gzip".utf8)))
        #expect(!two.joinedValues(named: "accept-encoding", equal: Array("gzip, br;q=0.6".utf8)))
        #expect(!two.joinedValues(named: "accept-encoding", equal: Array("gzip, br;q=0.5, x".utf8)))
        let none = try HeadParserTests.head("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(!none.joinedValues(named: "accept-encoding", equal: []))
        let empty = try HeadParserTests.head("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: \r\n\r\n")
        #expect(empty.joinedValues(named: "accept-encoding", equal: []))
    }

    @Test func onlyLargeEnoughCompressibleUnencodedResponsesAreCompressed() {
        #expect(Self.decide() == .compress(.gzip))
        #expect(Self.decide(length: nil) == .compress(.gzip))
        #expect(Self.decide(length: 32) == .compress(.gzip))
        #expect(Self.decide(length: 31) == .untouched)
        for type in [
            "application/json", "application/problem+json", "text/javascript", "application/javascript",
            "application/xml", "application/atom+xml", "image/svg+xml", "application/wasm",
            "text/plain; charset=utf-8", "TEXT/CSS",
        ] {
            #expect(Self.decide(type: type) == .compress(.gzip), "\(type)")
        }
        for type in [
            "text/event-stream", "image/png", "image/jpeg", "video/mp4", "application/zip",
            "application/octet-stream",
        ] {
            #expect(Self.decide(type: type) == .untouched, "\(type)")
        }
        #expect(Self.decide(type: nil) == .untouched)
        #expect(Self.decide(encoding: "gzip") == .untouched)
        #expect(Self.decide(encoding: "identity") == .compress(.gzip))
        #expect(Self.decide(status: 206, range: true) == .untouched)
        #expect(Self.decide(range: true) == .untouched)
        #expect(Self.decide(status: 204) == .untouched)
        #expect(Self.decide(status: 304) == .untouched)
        #expect(Self.decide(status: 404) == .untouched)
        #expect(Self.decide(cacheControl: "public, no-transform") == .untouched)
        #expect(Self.decide(coding: nil) == .varyOnly)
        #expect(Self.decide(head: true) == .varyOnly)
    }

    @Test(arguments: ContentCoding.allCases)
    func compressedStreamsDecodeToTheOriginal(coding: ContentCoding) throws {
        // About 100 KB, made cheaply: this suite shares the cooperative pool with suites timed to a
        // few hundred milliseconds.
        let line = Array("line of a compressible body, with some variety: ".utf8)
        var original: [UInt8] = []
        original.reserveCapacity(100_000)
        for index in 0..<1_800 { original += line + [UInt8(48 + index % 10), UInt8(65 + index % 26), 10] }
        let compressor = ResponseCompressor(coding: coding)
        #expect(compressor.isUsable)
        var output = ByteBuffer()
        var offset = 0
        // Pieces of varied size, as reads from a ship come.
        var size = 1
        while offset < original.count {
            let end = min(original.count, offset + size)
            compressor.compress(ByteBuffer(bytes: original[offset..<end]), into: &output)
            offset = end
            size = size * 3 % 20_000 + 1
        }
        compressor.finish(into: &output)
        let compressed = Array(output.readableBytesView)
        #expect(compressed.count < original.count / 5)
        #expect(try Decompression.decode(compressed, coding: coding.token) == original)
        // An empty body still makes a valid stream.
        let empty = ResponseCompressor(coding: coding)
        var emptyOutput = ByteBuffer()
        empty.finish(into: &emptyOutput)
        #expect(try Decompression.decode(Array(emptyOutput.readableBytesView), coding: coding.token) == [])
    }

    @Test func eachPieceIsFlushedSoStreamedBodiesAreNotHeldBack() throws {
        for coding in ContentCoding.allCases {
            let compressor = ResponseCompressor(coding: coding)
            var output = ByteBuffer()
            compressor.compress(ByteBuffer(string: "data: first event\n\n"), into: &output)
            #expect(output.readableBytes > 0, "\(coding)")
        }
    }

    @Test func compressedHeadsDropTheLengthWeakenTheETagAndAddVary() throws {
        let response = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\nETag: \"abc\"\r\nConnection: keep-alive\r\n\r\n",
            kind: .response)
        var buffer = ByteBuffer()
        HeadWriter.compressedResponse(
            response, clientVersion: .http1_1, closeAfter: false, reframing: .chunk, coding: .br,
            into: &buffer)
        #expect(
            String(buffer: buffer)
                == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nETag: W/\"abc\"\r\nContent-Encoding: br\r\nVary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        let alreadyVaries = try HeadParserTests.head(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Origin, accept-encoding\r\nContent-Length: 100\r\n\r\n",
            kind: .response)
        var once = ByteBuffer()
        HeadWriter.compressedResponse(
            alreadyVaries, clientVersion: .http1_1, closeAfter: false, reframing: .chunk, coding: .gzip,
            into: &once)
        #expect(
            String(buffer: once)
                == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Origin, accept-encoding\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        var varyOnly = ByteBuffer()
        HeadWriter.compressedResponse(
            response, clientVersion: .http1_0, closeAfter: true, reframing: .none, coding: nil,
            into: &varyOnly)
        #expect(
            String(buffer: varyOnly)
                == "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\nETag: \"abc\"\r\nVary: Accept-Encoding\r\nConnection: close\r\n\r\n"
        )
    }
}
