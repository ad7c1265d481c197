import NIOCore
import NIOHTTP1

/// Whether and how a response is compressed (SPEC §5.2), decided from its head alone.
enum ResponseCompression: Equatable {
    /// Not a candidate: passed on untouched.
    case untouched
    /// A candidate, but the client accepts no coding: passed on with `Vary: Accept-Encoding`.
    case varyOnly
    /// Compressed with this coding.
    case compress(ContentCoding)

    /// Smaller bodies gain nothing from compression.
    static let minimumLength = 32

    /// A response is a candidate when it is a 2xx with a body (not 204, not a 206 range), carries no
    /// `Content-Encoding` and no `Cache-Control: no-transform`, is at least 32 bytes (or of unknown
    /// length) and has a compressible `Content-Type`. A HEAD answer gets the `Vary` only.
    static func decide(
        status: Int, contentType: String?, contentEncoding: String?, contentLength: Int?,
        hasContentRange: Bool, cacheControl: String?, coding: ContentCoding?, isHead: Bool
    ) -> ResponseCompression {
        guard status >= 200, status < 300, status != 204, status != 206, !hasContentRange else {
            return .untouched
        }
        if let contentEncoding, contentEncoding.trimmingCharacters().lowercased() != "identity" {
            return .untouched  // never twice
        }
        if let cacheControl, cacheControl.lowercased().contains("no-transform") { return .untouched }
        if let contentLength, contentLength < minimumLength { return .untouched }
        guard let contentType, MediaType.isCompressible(Substring(contentType)) else { return .untouched }
        guard let coding, !isHead else { return .varyOnly }
        return .compress(coding)
    }

    /// The decision for a ship's response head.
    static func decide(_ head: MessageHead, coding: ContentCoding?, isHead: Bool) -> ResponseCompression {
        // What the numbers alone decide (most answers to browsers: small, or not a 2xx), before
        // any header is read into a string.
        let status = head.status
        guard status >= 200, status < 300, status != 204, status != 206 else { return .untouched }
        if let length = head.contentLength, length < minimumLength { return .untouched }
        return decide(
            status: head.status, contentType: head.value(named: "content-type"),
            contentEncoding: head.value(named: "content-encoding"), contentLength: head.contentLength,
            hasContentRange: head.field(named: "content-range") != nil,
            cacheControl: head.joinedValues(named: "cache-control"), coding: coding, isHead: isHead)
    }
}

extension HeadWriter {
    /// The response head sent to the client when compression applies: like `clientResponse`, and
    /// with `coding`, the length and any `Transfer-Encoding` dropped (the body is sent chunked to
    /// an HTTP/1.1 client, ended by the close to an HTTP/1.0 one), a strong `ETag` made weak (the
    /// bytes differ from the uncompressed ones), `Content-Encoding` added; `Vary: Accept-Encoding`
    /// either way.
    static func compressedResponse(
        _ head: MessageHead, clientVersion: HTTPVersion, closeAfter: Bool, reframing: Reframing,
        coding: ContentCoding?, into buffer: inout ByteBuffer
    ) {
        ByteWriter.write(into: &buffer, estimate: head.bytes.readableBytes + 128, source: head.bytes) {
            writer, source in
            appendStatusLine(of: head, clientVersion: clientVersion, from: source, into: &writer)
            for field in head.fields {
                if field.isHopByHop { continue }
                if coding != nil {
                    if field.kind == .contentLength || field.kind == .transferEncoding { continue }
                    if MessageHead.nameEquals(source, field.name, "etag") {
                        writer.append(source, field.name.lowerBound..<field.value.lowerBound)
                        if source[field.value.lowerBound] == UInt8(ascii: "\"") { writer.append("W/") }
                        writer.append(source, field.value)
                        writer.append("\r\n")
                        continue
                    }
                } else if field.kind == .transferEncoding && reframing == .dechunk {
                    continue
                }
                writer.append(source, field.name.lowerBound..<field.value.upperBound)
                writer.append("\r\n")
            }
            switch coding {
            case .br?: writer.append("Content-Encoding: br\r\n")
            case .gzip?: writer.append("Content-Encoding: gzip\r\n")
            case .deflate?: writer.append("Content-Encoding: deflate\r\n")
            case nil: break
            }
            if !head.variesByAcceptEncoding { writer.append("Vary: Accept-Encoding\r\n") }
            appendEnding(
                reframing: reframing, closeAfter: closeAfter, clientVersion: clientVersion, into: &writer)
        }
    }
}

extension MessageHead {
    /// A `Vary` header already names `Accept-Encoding` (or `*`): not added twice.
    var variesByAcceptEncoding: Bool {
        guard let vary = joinedValues(named: "vary")?.lowercased() else { return false }
        return vary.split(separator: ",").contains {
            $0.trimmingSpaces == "accept-encoding" || $0.trimmingSpaces == "*"
        }
    }
}
