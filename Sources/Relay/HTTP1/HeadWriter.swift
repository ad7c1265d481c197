import NIOCore
import NIOHTTP1

/// The header rewriting of a proxied exchange (SPEC §4), straight from received bytes to the bytes
/// sent: hop-by-hop headers out, forwarding headers in. Kept header lines are copied as they came,
/// in runs (the usual request is one copy for its whole header block).
enum HeadWriter {
    /// What the relay knows about the client side of one request.
    struct Client {
        /// The client's IP address as text (from PROXY protocol when present), or nil for a Unix
        /// socket peer. Bytes, made once per connection.
        var address: [UInt8]?
        /// `https` rather than `http`.
        var secure: Bool

        init(addressBytes: [UInt8]?, secure: Bool) {
            self.address = addressBytes
            self.secure = secure
        }

        init(address: String?, scheme: String) {
            self.init(addressBytes: address.map { Array($0.utf8) }, secure: scheme == "https")
        }
    }

    /// The request head sent upstream: `target` replaces the original when given (after
    /// `strip_prefix`), HTTP/1.1 towards the ship, hop-by-hop headers removed (an upgrade keeps its
    /// `Upgrade` and says `Connection: upgrade`), `Expect` answered by the relay removed, and the
    /// forwarding headers added. `requestID` writes a new request id (when the client sent none).
    /// `host` replaces the `Host` header (the authority of an absolute-form target). A client's own
    /// `X-Forwarded-Host` and `X-Forwarded-Proto` never pass: the relay writes them.
    static func upstreamRequest(
        _ head: MessageHead, target: String?, host hostOverride: String? = nil, client: Client,
        requestID: (inout ByteWriter) -> Void, startMicroseconds: Int64, into buffer: inout ByteBuffer
    ) {
        let isUpgrade = head.isUpgrade
        let host = hostOverride == nil ? head.fields.first { $0.kind == .host } : nil
        let estimate =
            2 * head.bytes.readableBytes + (target?.utf8.count ?? 0) + (client.address?.count ?? 0)
            + 2 * (hostOverride?.utf8.count ?? 0) + 256
        ByteWriter.write(into: &buffer, estimate: estimate, source: head.bytes) { writer, source in
            writer.append(source, 0..<head.target.lowerBound)
            if let target {
                writer.append(string: target)
            } else {
                writer.append(source, head.target)
            }
            writer.append(" HTTP/1.1\r\n")
            var hasRequestID = false
            copyFields(of: head, from: source, into: &writer) { field in
                switch field.kind {
                case .upgrade: return isUpgrade
                case .expect: return !head.expectsContinue
                case .xForwardedFor: return client.address == nil
                case .xForwardedProto, .xRequestStart, .xForwardedHost: return false
                case .host: return hostOverride == nil
                case .xRequestID:
                    hasRequestID = true
                    return true
                default: return !field.isHopByHop
                }
            }
            if let hostOverride {
                writer.append("Host: ")
                writer.append(string: hostOverride)
                writer.append("\r\n")
            }
            if isUpgrade { writer.append("Connection: upgrade\r\n") }
            if let address = client.address {
                writer.append("X-Forwarded-For: ")
                var first = true
                for field in head.fields where field.kind == .xForwardedFor {
                    if !first { writer.append(", ") }
                    writer.append(source, field.value)
                    first = false
                }
                if !first { writer.append(", ") }
                address.withUnsafeBytes { writer.append($0) }
                writer.append("\r\n")
            }
            writer.append(client.secure ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n")
            if let hostOverride {
                writer.append("X-Forwarded-Host: ")
                writer.append(string: hostOverride)
                writer.append("\r\n")
            } else if let host {
                writer.append("X-Forwarded-Host: ")
                writer.append(source, host.value)
                writer.append("\r\n")
            }
            if !hasRequestID {
                writer.append("X-Request-Id: ")
                requestID(&writer)
                writer.append("\r\n")
            }
            writer.append("X-Request-Start: t=")
            writer.appendDecimal(startMicroseconds)
            writer.append("\r\n\r\n")
        }
    }

    /// The response head sent to the client: in the client's HTTP version (the ship's describes the
    /// other hop), hop-by-hop headers removed (kept on a 101), `Transfer-Encoding` adjusted when the
    /// relay re-frames the body, and `Connection: close` when the client's connection ends after
    /// this response (`keep-alive` for an HTTP/1.0 client that keeps it).
    static func clientResponse(
        _ head: MessageHead, clientVersion: HTTPVersion, closeAfter: Bool, reframing: Reframing,
        into buffer: inout ByteBuffer
    ) {
        ByteWriter.write(into: &buffer, estimate: head.bytes.readableBytes + 64, source: head.bytes) {
            writer, source in
            appendStatusLine(of: head, clientVersion: clientVersion, from: source, into: &writer)
            if head.status == 101 {
                copyFields(of: head, from: source, into: &writer) { _ in true }
                writer.append("\r\n")
                return
            }
            copyFields(of: head, from: source, into: &writer) { field in
                if field.kind == .transferEncoding && reframing == .dechunk { return false }
                return !field.isHopByHop
            }
            appendEnding(
                reframing: reframing, closeAfter: closeAfter, clientVersion: clientVersion, into: &writer)
        }
    }

    /// `HTTP/1.x <the ship's status and reason>` in the client's version.
    static func appendStatusLine(
        of head: MessageHead, clientVersion: HTTPVersion, from source: UnsafeRawBufferPointer,
        into writer: inout ByteWriter
    ) {
        writer.append(clientVersion.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        writer.append(source, head.statusText)
        writer.append("\r\n")
    }

    /// The lines the relay adds last to a response head (chunked re-framing, the client
    /// connection's fate), then the blank line.
    static func appendEnding(
        reframing: Reframing, closeAfter: Bool, clientVersion: HTTPVersion, into writer: inout ByteWriter
    ) {
        if reframing == .chunk { writer.append("Transfer-Encoding: chunked\r\n") }
        if closeAfter {
            writer.append("Connection: close\r\n")
        } else if clientVersion.minor == 0 {
            writer.append("Connection: keep-alive\r\n")
        }
        writer.append("\r\n")
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
        let reason = response.status.reasonPhrase
        let estimate = body.utf8.count + reason.utf8.count + (response.location?.utf8.count ?? 0) + 176
        ByteWriter.write(into: &buffer, estimate: estimate, source: ByteBuffer()) { writer, _ in
            writer.append(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            writer.appendDecimal(Int64(response.status.code))
            writer.append(" ")
            writer.append(string: reason)
            writer.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
            writer.appendDecimal(Int64(body.utf8.count))
            writer.append("\r\nServer: mothership\r\n")
            if let retryAfter = response.retryAfterSeconds {
                writer.append("Retry-After: ")
                writer.appendDecimal(Int64(retryAfter))
                writer.append("\r\n")
            }
            if let location = response.location {
                writer.append("Location: ")
                writer.append(string: location)
                writer.append("\r\n")
            }
            if close { writer.append("Connection: close\r\n") }
            writer.append("\r\n")
            if !isHead { writer.append(string: body) }
        }
    }

    /// Copies the header lines `keep` accepts, in runs of consecutive lines.
    private static func copyFields(
        of head: MessageHead, from source: UnsafeRawBufferPointer, into writer: inout ByteWriter,
        keep: (HeaderField) -> Bool
    ) {
        if head.bareLineFeeds {
            // Lines re-terminated one by one: the ship and the client get CRLF only.
            for field in head.fields where keep(field) {
                writer.append(source, field.name.lowerBound..<field.value.upperBound)
                writer.append("\r\n")
            }
            return
        }
        var runStart = head.fieldsStart
        for field in head.fields where !keep(field) {
            if field.line.lowerBound > runStart { writer.append(source, runStart..<field.line.lowerBound) }
            runStart = field.line.upperBound
        }
        let end = head.fieldsEnd
        if end > runStart { writer.append(source, runStart..<end) }
    }

    /// A piece of a body as a chunk (`chunked`, HTTP/1.1) or as it is (HTTP/1.0, where the close
    /// ends the body): a compressed file's pieces on their way to the client.
    static func framed(_ bytes: ByteBuffer, chunked: Bool) -> ByteBuffer {
        guard chunked, bytes.readableBytes > 0 else { return bytes }
        var framed = ByteBuffer()
        framed.reserveCapacity(bytes.readableBytes + 16)
        writeChunkSize(bytes.readableBytes, into: &framed)
        framed.writeImmutableBuffer(bytes)
        framed.writeStaticString("\r\n")
        return framed
    }

    /// `"1a\r\n"`: a chunk-size line.
    static func writeChunkSize(_ size: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
    }
}
