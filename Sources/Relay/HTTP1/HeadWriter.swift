import NIOCore
import NIOHTTP1

/// The header rewriting of a proxied exchange (SPEC §4), straight from received bytes to the bytes
/// sent: hop-by-hop headers out, forwarding headers in. Kept header lines are copied as they came,
/// in runs (the usual request is one copy for its whole header block).
enum HeadWriter {
    /// What the relay knows about the client side of one request.
    struct Client {
        /// The client's IP address (from PROXY protocol when present), or nil for a Unix socket peer.
        var address: String?
        /// `http` or `https`.
        var scheme: String
    }

    /// The request head sent upstream: `target` replaces the original when given (after
    /// `strip_prefix`), HTTP/1.1 towards the ship, hop-by-hop headers removed (an upgrade keeps its
    /// `Upgrade` and says `Connection: upgrade`), `Expect` answered by the relay removed, and the
    /// forwarding headers added.
    static func upstreamRequest(
        _ head: MessageHead, target: String?, client: Client, requestID: () -> String,
        startMicroseconds: Int64, into buffer: inout ByteBuffer
    ) {
        let isUpgrade = head.isUpgrade
        let hasHost = head.fields.contains { $0.kind == .host }
        buffer.writeImmutableBuffer(
            head.bytes.getSlice(at: head.bytes.readerIndex, length: head.target.lowerBound)!)
        if let target {
            buffer.writeString(target)
        } else {
            buffer.writeImmutableBuffer(
                head.bytes.getSlice(
                    at: head.bytes.readerIndex + head.target.lowerBound, length: head.target.count)!)
        }
        buffer.writeStaticString(" HTTP/1.1\r\n")
        var hasRequestID = false
        copyFields(of: head, into: &buffer) { field in
            switch field.kind {
            case .upgrade: return isUpgrade
            case .expect: return !head.expectsContinue
            case .xForwardedFor: return client.address == nil
            case .xForwardedProto, .xRequestStart: return false
            case .xForwardedHost: return !hasHost
            case .xRequestID:
                hasRequestID = true
                return true
            default: return !field.isHopByHop
            }
        }
        if isUpgrade { buffer.writeStaticString("Connection: upgrade\r\n") }
        if let address = client.address {
            buffer.writeStaticString("X-Forwarded-For: ")
            if let previous = head.joinedValues(of: .xForwardedFor) {
                buffer.writeString(previous)
                buffer.writeStaticString(", ")
            }
            buffer.writeString(address)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("X-Forwarded-Proto: ")
        buffer.writeString(client.scheme)
        buffer.writeStaticString("\r\n")
        if hasHost, let host = head.fields.first(where: { $0.kind == .host }) {
            buffer.writeStaticString("X-Forwarded-Host: ")
            writeRange(host.value, of: head, into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        if !hasRequestID {
            buffer.writeStaticString("X-Request-Id: ")
            buffer.writeString(requestID())
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("X-Request-Start: t=")
        writeDecimal(startMicroseconds, into: &buffer)
        buffer.writeStaticString("\r\n\r\n")
    }

    /// The response head sent to the client: in the client's HTTP version (the ship's describes the
    /// other hop), hop-by-hop headers removed (kept on a 101), `Transfer-Encoding` adjusted when the
    /// relay re-frames the body, and `Connection: close` when the client's connection ends after
    /// this response (`keep-alive` for an HTTP/1.0 client that keeps it).
    static func clientResponse(
        _ head: MessageHead, clientVersion: HTTPVersion, closeAfter: Bool, reframing: Reframing,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(clientVersion.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writeRange(head.statusText, of: head, into: &buffer)
        buffer.writeStaticString("\r\n")
        if head.status == 101 {
            copyFields(of: head, into: &buffer) { _ in true }
            buffer.writeStaticString("\r\n")
            return
        }
        copyFields(of: head, into: &buffer) { field in
            if field.kind == .transferEncoding && reframing == .dechunk { return false }
            return !field.isHopByHop
        }
        if reframing == .chunk { buffer.writeStaticString("Transfer-Encoding: chunked\r\n") }
        if closeAfter {
            buffer.writeStaticString("Connection: close\r\n")
        } else if clientVersion.minor == 0 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
    }

    /// How the relay changes a response body's framing on its way to the client.
    enum Reframing {
        /// Passed on as it came.
        case none
        /// A body that ends at the ship's close, sent to an HTTP/1.1 client in chunks (so that the
        /// client's connection can stay open).
        case chunk
        /// A chunked body for an HTTP/1.0 client: the data only, ended by the close.
        case dechunk
    }

    /// A response the relay answers itself.
    static func local(
        _ response: LocalResponse, version: HTTPVersion, close: Bool, isHead: Bool,
        into buffer: inout ByteBuffer
    ) {
        let body = response.body
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writeDecimal(Int64(response.status.code), into: &buffer)
        buffer.writeStaticString(" ")
        buffer.writeString(response.status.reasonPhrase)
        buffer.writeStaticString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        writeDecimal(Int64(body.utf8.count), into: &buffer)
        buffer.writeStaticString("\r\nServer: mothership\r\n")
        if let retryAfter = response.retryAfterSeconds {
            buffer.writeStaticString("Retry-After: ")
            writeDecimal(Int64(retryAfter), into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        if close { buffer.writeStaticString("Connection: close\r\n") }
        buffer.writeStaticString("\r\n")
        if !isHead { buffer.writeString(body) }
    }

    /// Copies the header lines `keep` accepts, in runs of consecutive lines.
    private static func copyFields(
        of head: MessageHead, into buffer: inout ByteBuffer, keep: (HeaderField) -> Bool
    ) {
        let base = head.bytes.readerIndex
        if head.bareLineFeeds {
            // Lines re-terminated one by one: the ship and the client get CRLF only.
            for field in head.fields where keep(field) {
                writeRange(field.name.lowerBound..<field.value.upperBound, of: head, into: &buffer)
                buffer.writeStaticString("\r\n")
            }
            return
        }
        var runStart = head.fieldsStart
        for field in head.fields where !keep(field) {
            if field.line.lowerBound > runStart {
                buffer.writeImmutableBuffer(
                    head.bytes.getSlice(at: base + runStart, length: field.line.lowerBound - runStart)!)
            }
            runStart = field.line.upperBound
        }
        let end = head.fieldsEnd
        if end > runStart {
            buffer.writeImmutableBuffer(head.bytes.getSlice(at: base + runStart, length: end - runStart)!)
        }
    }

    private static func writeRange(_ range: Range<Int>, of head: MessageHead, into buffer: inout ByteBuffer) {
        guard !range.isEmpty else { return }
        buffer.writeImmutableBuffer(
            head.bytes.getSlice(at: head.bytes.readerIndex + range.lowerBound, length: range.count)!)
    }

    /// Writes a non-negative integer in decimal without going through a String.
    static func writeDecimal(_ value: Int64, into buffer: inout ByteBuffer) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for Int64
        var remaining = UInt64(max(0, value))
        withUnsafeMutableBytes(of: &digits) { scratch in
            var index = scratch.count
            repeat {
                index -= 1
                scratch[index] = UInt8(48 + remaining % 10)
                remaining /= 10
            } while remaining > 0
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    /// `"1a\r\n"`: a chunk-size line.
    static func writeChunkSize(_ size: Int, into buffer: inout ByteBuffer) {
        let hex: StaticString = "0123456789abcdef"
        var digits: [UInt8] = []
        var remaining = size
        repeat {
            digits.append(hex.utf8Start[remaining & 0xF])
            remaining >>= 4
        } while remaining > 0
        buffer.writeBytes(digits.reversed())
        buffer.writeStaticString("\r\n")
    }
}
