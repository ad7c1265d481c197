import NIOCore
import NIOHTTP1
import Testing

@testable import Relay

/// What the relay does with a hook's decision, without sockets: heads written anew from a changed
/// path and header list, and a module's own answer.
@Suite("Hook heads")
struct HookHeadTests {
    @Test func aChangedRequestHeadKeepsItsMethodVersionAndFraming() throws {
        let head = try HeadParserTests.head(
            "POST /old/x?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nCookie: s=1\r\n\r\n")
        var headers = HeadEditor.headers(of: head)
        #expect(headers.map(\.name) == ["Host", "Content-Length", "Cookie"])
        headers.removeAll { $0.name == "Cookie" }
        headers.append(HookHeader(name: "X-User", value: "alice"))
        let edited = try #require(
            HeadEditor.request(head, target: "/new/x?q=1", headers: headers, allocator: ByteBufferAllocator())
        )
        #expect(edited.method == .POST && edited.version == .http1_1)
        #expect(edited.targetString == "/new/x?q=1")
        #expect(edited.contentLength == 3)
        #expect(
            edited.headerPairs.map { "\($0.0): \($0.1)" } == [
                "Host: a", "Content-Length: 3", "X-User: alice",
            ])
    }

    @Test func headersThatWouldSplitTheHeadAreRefused() throws {
        let head = try HeadParserTests.head("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let allocator = ByteBufferAllocator()
        #expect(
            HeadEditor.request(
                head, target: "/", headers: [HookHeader(name: "X", value: "1\r\nEvil: yes")],
                allocator: allocator)
                == nil)
        #expect(
            HeadEditor.request(
                head, target: "/", headers: [HookHeader(name: "Bad Name", value: "1")], allocator: allocator)
                == nil)
        #expect(HeadEditor.request(head, target: "/a b", headers: [], allocator: allocator) == nil)
    }

    @Test func aChangedResponseHeadKeepsItsStatusLine() throws {
        let head = try HeadParserTests.head(
            "HTTP/1.1 201 Created\r\nServer: py\r\nTransfer-Encoding: chunked\r\n\r\n", kind: .response)
        let edited = try #require(
            HeadEditor.response(
                head,
                headers: [
                    HookHeader(name: "Transfer-Encoding", value: "chunked"),
                    HookHeader(name: "X-Stamp", value: "1"),
                ], allocator: ByteBufferAllocator()))
        #expect(edited.status == 201 && edited.chunked)
        #expect(edited.string(edited.statusText) == "201 Created")
        #expect(edited.headerPairs.map(\.0) == ["Transfer-Encoding", "X-Stamp"])
    }

    @Test func aBlockIsWrittenWithItsHeadersAndTheRelaysFraming() {
        func written(_ block: HookBlock, close: Bool = false, isHead: Bool = false) -> String {
            var buffer = ByteBuffer()
            ClientConnection.writeBlock(
                block, version: .http1_1, close: close, isHead: isHead, into: &buffer)
            return String(buffer: buffer)
        }
        let json = HookBlock(
            status: 401,
            headers: [
                HookHeader(name: "Content-Type", value: "application/json"),
                HookHeader(name: "Content-Length", value: "999"),
            ], body: Array(#"{"e":1}"#.utf8))
        #expect(
            written(json, close: true)
                == "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 7\r\nServer: mothership\r\nConnection: close\r\n\r\n{\"e\":1}"
        )
        #expect(
            written(HookBlock(status: 403, body: Array("no".utf8)), isHead: true)
                == "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nServer: mothership\r\n\r\n"
        )
        #expect(
            written(HookBlock(status: 204, body: Array("dropped".utf8)))
                == "HTTP/1.1 204 No Content\r\nServer: mothership\r\n\r\n")
    }
}
