import NIOCore
import NIOHTTP1
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// The answers the edge features give without a ship: a static file (SPEC §5.1) and a cached CORS
/// preflight (§5.3). The decisions are made by plain values (`StaticPlan`, `CorsPreflightCache`);
/// this is the writing.
extension ClientConnection {
    // MARK: Request steps (SPEC §4), called in order from `received(head:)`

    /// Rate limit (SPEC §5.6): 429 with `Retry-After` once the client's or the relay's budget is
    /// spent.
    func answeredByRateLimit(head: MessageHead, close: Bool) -> Bool {
        guard let limiter = settings.edge.rateLimiter,
            case .reject(let retryAfter) = limiter.admit(client: clientAddress, now: EdgeFeatures.now())
        else { return false }
        answer(.rateLimited(retryAfter: retryAfter), head: head, close: close)
        return true
    }

    /// Static dirs (SPEC §5.1): a file found is served; a path leaving the directory is refused; a
    /// missing file falls through to the routes. Only bodiless GET and HEAD.
    func answeredFromStaticFiles(
        head: MessageHead, path: Substring, query: Substring, close: Bool
    ) -> Bool {
        guard let files = settings.edge.staticFiles, head.method == .GET || head.method == .HEAD,
            requestBody.isNone, !head.isUpgrade, let mount = files.mount(for: path)
        else { return false }
        switch loop.staticFiles.find(path: path, in: mount, of: files, now: EdgeFeatures.now()) {
        case .file(let entry):
            serveStatic(entry, head: head, close: close)
            return true
        case .refused:
            answer(.outsideStaticDirectory(), head: head, close: close)
            return true
        case .directory:
            answer(.slashRedirect(to: Self.slashed(path, query: query)), head: head, close: close)
            return true
        case .missing:
            return false
        }
    }

    /// `path` with a trailing slash and the request's `query` (with its `?`, as `RequestTarget`
    /// keeps it): the `Location` of a directory's redirect. Path-absolute with one leading slash
    /// (`//host` would name another site).
    static func slashed(_ path: Substring, query: Substring) -> String {
        "/" + path.drop { $0 == "/" } + "/" + query
    }

    /// CORS preflight cache (SPEC §5.3): a fresh stored answer is replayed; on a miss, `miss` is
    /// what records the ship's answer.
    func answeredFromCorsCache(
        head: MessageHead, path: Substring, close: Bool,
        miss: inout CorsCapture?
    ) -> Bool {
        guard let cache = settings.edge.corsCache, head.method == .OPTIONS,
            let key = CorsPreflightCache.Key.of(head, path: path, bind: settings.name)
        else { return false }
        if let entry = cache.lookup(key, now: EdgeFeatures.now()) {
            replay(entry, head: head, close: close)
            return true
        }
        miss = CorsCapture(key: key, cache: cache)
        return false
    }

    /// Compression (SPEC §5.2): the coding the client accepts, nil when compression is off.
    /// A client sends the same `Accept-Encoding` on every request of a connection: the coding
    /// it gave last time is taken again when the header's bytes are the same (parsing it made
    /// several strings, arrays and a dictionary per request).
    func compressionRequest(_ head: MessageHead) -> CompressionRequest? {
        guard settings.edge.compression else { return nil }
        if let seen = acceptEncodingSeen, head.joinedValues(named: "accept-encoding", equal: seen) {
            return CompressionRequest(coding: acceptEncodingCoding)
        }
        let value = head.joinedValues(named: "accept-encoding")
        let coding = ContentCoding.negotiate(value)
        acceptEncodingSeen = value.map { Array($0.utf8) }
        acceptEncodingCoding = coding
        return CompressionRequest(coding: coding)
    }

    // MARK: Local answers
    /// Answers with `file`: 200, 206, 304 or 416 by `StaticPlan`. A small body joins the head in
    /// one write; a larger one is the driver's to send (`ClientTransport.sendFile`).
    func serveStatic(_ entry: StaticFileCache.Entry, head: MessageHead, close: Bool) {
        let file = entry.file
        let etag = entry.etag
        let conditions = StaticPlan.Conditions(
            ifNoneMatch: head.joinedValues(named: "if-none-match"),
            ifModifiedSince: head.value(named: "if-modified-since"), range: head.value(named: "range"),
            ifRange: head.value(named: "if-range"))
        let plan = StaticPlan.decide(
            etag: etag, modified: file.modified, size: file.size, conditions: conditions)
        let body: ClosedRange<Int>?
        let status: HTTPResponseStatus
        switch plan {
        case .full:
            status = .ok
            body = file.size > 0 ? 0...(file.size - 1) : nil
        case .partial(let range):
            status = .partialContent
            body = range
        case .notModified:
            status = .notModified
            body = nil
        case .unsatisfiable:
            status = .rangeNotSatisfiable
            body = nil
        }
        // Compression (SPEC §5.2) applies to a whole file of a compressible type.
        var coding: ContentCoding?
        var vary = false
        if settings.edge.compression, status == .ok {
            switch ResponseCompression.decide(
                status: 200, contentType: file.contentType, contentEncoding: nil, contentLength: file.size,
                hasContentRange: false, cacheControl: nil,
                coding: ContentCoding.negotiate(head.joinedValues(named: "accept-encoding")),
                isHead: head.method == .HEAD)
            {
            case .untouched: break
            case .varyOnly: vary = true
            case .compress(let chosen):
                vary = true
                coding = chosen
            }
        }
        var bytes = allocator.buffer(capacity: 320)
        let close = close || (coding != nil && head.version.minor == 0)  // 1.0: the close ends it
        writeStaticHead(
            status: status, file: file, etag: etag, lastModified: entry.lastModified, body: body,
            version: head.version, close: close, coding: coding, vary: vary, into: &bytes)
        guard head.method != .HEAD, let body else {
            state = .answered(close: close)
            sendNow(bytes)
            return
        }
        if coding == nil && body.count <= Self.inlineFileBytes {
            // A small file joins its head in one write: one read of (usually cached) pages costs
            // less than a hop to file I/O threads or a second system call. The descriptor stays
            // the cache's.
            let read = bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: body.count) { target in
                max(0, pread(entry.descriptor, target.baseAddress, body.count, off_t(body.lowerBound)))
            }
            guard read == body.count else {
                closeClient()  // the file changed under us; nothing was sent
                return
            }
            state = .answered(close: close)
            sendNow(bytes)
            return
        }
        // A larger file, or a compressed one, is the driver's to send (by sendfile where it can),
        // on a descriptor of its own: the cache keeps its own open.
        let descriptor = dup(entry.descriptor)
        guard descriptor >= 0 else {
            answer(
                LocalResponse(
                    status: .serviceUnavailable,
                    message: "the relay cannot send the file: \(RelayResources.describe(errno))",
                    retryAfterSeconds: 1), head: head, close: close)
            return
        }
        state = .streaming(close: close)
        transport?.write(bytes)
        transport?.sendFile(
            descriptor: descriptor, range: body, path: file.path, coding: coding,
            chunked: coding != nil && head.version.minor == 1)
    }

    /// Files up to this size are read where the request is and sent with their head in one write.
    static let inlineFileBytes = 16 * 1024

    /// The driver sent the file (or failed to: part of it may have gone out, so the client learns of
    /// the failure by the close).
    func staticFinished(succeeded: Bool) {
        guard case .streaming(let close) = state else { return }
        if succeeded {
            settle(close: close, requestEnded: true)
        } else {
            closeClient()
        }
    }

    private func writeStaticHead(
        status: HTTPResponseStatus, file: StaticFiles.File, etag: String, lastModified: String,
        body: ClosedRange<Int>?, version: HTTPVersion, close: Bool, coding: ContentCoding?, vary: Bool,
        into buffer: inout ByteBuffer
    ) {
        ByteWriter.write(into: &buffer, estimate: 320 + file.contentType.utf8.count, source: ByteBuffer()) {
            writer, _ in
            writer.append(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            writer.appendDecimal(Int64(status.code))
            writer.append(" ")
            writer.append(string: status.reasonPhrase)
            writer.append("\r\nServer: mothership\r\nETag: ")
            if coding != nil { writer.append("W/") }  // not the file's bytes
            writer.append(string: etag)
            writer.append("\r\nLast-Modified: ")
            writer.append(string: lastModified)
            writer.append("\r\nAccept-Ranges: bytes\r\n")
            if status != .notModified {
                if status != .rangeNotSatisfiable {
                    writer.append("Content-Type: ")
                    writer.append(string: file.contentType)
                    writer.append("\r\n")
                }
                switch coding {
                case nil:
                    writer.append("Content-Length: ")
                    writer.appendDecimal(Int64(body?.count ?? 0))
                    writer.append("\r\n")
                case .br?: writer.append("Content-Encoding: br\r\n")
                case .gzip?: writer.append("Content-Encoding: gzip\r\n")
                case .deflate?: writer.append("Content-Encoding: deflate\r\n")
                }
                if coding != nil && version.minor == 1 { writer.append("Transfer-Encoding: chunked\r\n") }
                if vary { writer.append("Vary: Accept-Encoding\r\n") }
            }
            if status == .partialContent, let body {
                writer.append("Content-Range: bytes ")
                writer.appendDecimal(Int64(body.lowerBound))
                writer.append("-")
                writer.appendDecimal(Int64(body.upperBound))
                writer.append("/")
                writer.appendDecimal(Int64(file.size))
                writer.append("\r\n")
            } else if status == .rangeNotSatisfiable {
                writer.append("Content-Range: bytes */")
                writer.appendDecimal(Int64(file.size))
                writer.append("\r\n")
            }
            if close {
                writer.append("Connection: close\r\n")
            } else if version.minor == 0 {
                writer.append("Connection: keep-alive\r\n")
            }
            writer.append("\r\n")
        }
    }

    /// Answers a preflight from the cache: the stored status, headers and body.
    func replay(
        _ entry: CorsPreflightCache.Entry, head: MessageHead, close: Bool
    ) {
        state = .answered(close: close)
        var bytes = allocator.buffer(capacity: entry.headerLines.count + entry.body.count + 128)
        ByteWriter.write(
            into: &bytes, estimate: entry.headerLines.count + entry.body.count + 128, source: ByteBuffer()
        ) { writer, _ in
            writer.append(head.version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            writer.append(string: entry.statusText)
            writer.append("\r\n")
            entry.headerLines.withUnsafeBytes { writer.append($0) }
            if entry.status != 204 {
                writer.append("Content-Length: ")
                writer.appendDecimal(Int64(entry.body.count))
                writer.append("\r\n")
            }
            if close {
                writer.append("Connection: close\r\n")
            } else if head.version.minor == 0 {
                writer.append("Connection: keep-alive\r\n")
            }
            writer.append("\r\n")
            entry.body.withUnsafeBytes { writer.append($0) }
        }
        sendNow(bytes)
    }
}
