import NIOCore
import NIOHTTP1
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// The answers the edge features give without a ship: a static file (SPEC §5.1) and a cached CORS
/// preflight (§5.3). The decisions are made by plain values (`StaticPlan`, `CorsPreflightCache`);
/// this is the writing.
extension RelayServerHandler {
    // MARK: Request steps (SPEC §4), called in order from `received(head:)`

    /// Rate limit (SPEC §5.6): 429 with `Retry-After` once the client's or the relay's budget is
    /// spent.
    func answeredByRateLimit(head: MessageHead, close: Bool, context: ChannelHandlerContext) -> Bool {
        guard let limiter = settings.edge.rateLimiter,
            case .reject(let retryAfter) = limiter.admit(client: clientAddress, now: EdgeFeatures.now())
        else { return false }
        answer(.rateLimited(retryAfter: retryAfter), head: head, close: close, context: context)
        return true
    }

    /// Static dirs (SPEC §5.1): a file found is served; a path leaving the directory is refused; a
    /// missing file falls through to the routes. Only bodiless GET and HEAD.
    func answeredFromStaticFiles(
        head: MessageHead, path: Substring, close: Bool, context: ChannelHandlerContext
    ) -> Bool {
        guard let files = settings.edge.staticFiles, head.method == .GET || head.method == .HEAD,
            requestBody.isNone, !head.isUpgrade
        else { return false }
        switch files.lookup(path: path) {
        case .file(let file):
            serveStatic(file, head: head, close: close, context: context)
            return true
        case .refused:
            answer(.outsideStaticDirectory(), head: head, close: close, context: context)
            return true
        case .missing:
            return false
        }
    }

    /// CORS preflight cache (SPEC §5.3): a fresh stored answer is replayed; on a miss, `miss` is
    /// what records the ship's answer.
    func answeredFromCorsCache(
        head: MessageHead, path: Substring, close: Bool, context: ChannelHandlerContext,
        miss: inout CorsCapture?
    ) -> Bool {
        guard let cache = settings.edge.corsCache, head.method == .OPTIONS,
            let key = CorsPreflightCache.Key.of(head, path: path, bind: settings.name)
        else { return false }
        if let entry = cache.lookup(key, now: EdgeFeatures.now()) {
            replay(entry, head: head, close: close, context: context)
            return true
        }
        miss = CorsCapture(key: key, cache: cache)
        return false
    }

    /// Compression (SPEC §5.2): the coding the client accepts, nil when compression is off.
    func compressionRequest(_ head: MessageHead) -> CompressionRequest? {
        guard settings.edge.compression else { return nil }
        return CompressionRequest(
            coding: ContentCoding.negotiate(head.joinedValues(named: "accept-encoding")))
    }

    // MARK: Local answers
    /// Answers with `file`: 200, 206, 304 or 416 by `StaticPlan`. A small body joins the head in
    /// one write; a larger one goes out by sendfile on plain TCP, and over TLS or compressed it is
    /// read off the event loop (NonBlockingFileIO) in 64 KiB chunks, each written before the next
    /// is read.
    func serveStatic(_ file: StaticFiles.File, head: MessageHead, close: Bool, context: ChannelHandlerContext)
    {
        let etag = StaticPlan.etag(
            modified: file.modified, nanoseconds: file.modifiedNanoseconds, size: file.size)
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
        var descriptor: CInt = -1
        if body != nil, head.method != .HEAD {
            descriptor = open(file.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if descriptor < 0 {
                answer(.notFound(), head: head, close: close, context: context)
                return
            }
        }
        var bytes = context.channel.allocator.buffer(capacity: 320)
        let close = close || (coding != nil && head.version.minor == 0)  // 1.0: the close ends it
        writeStaticHead(
            status: status, file: file, etag: etag, body: body, version: head.version, close: close,
            coding: coding, vary: vary, into: &bytes)
        guard descriptor >= 0, let body else {
            state = .answered(close: close)
            sendNow(bytes, context: context)
            return
        }
        if coding == nil && body.count <= Self.inlineFileBytes {
            // A small file joins its head in one write: one read of (usually cached) pages on the
            // loop costs less than a hop to the file I/O threads or a second system call.
            let read = bytes.writeWithUnsafeMutableBytes(minimumWritableBytes: body.count) { target in
                max(0, pread(descriptor, target.baseAddress, body.count, off_t(body.lowerBound)))
            }
            Glibc.close(descriptor)
            guard read == body.count else {
                closeClient()  // the file changed under us; nothing was sent
                return
            }
            state = .answered(close: close)
            sendNow(bytes, context: context)
            return
        }
        state = .streaming(close: close)
        writer.beforeNIOWrite(context: context)
        context.write(wrapOutboundOut(bytes), promise: nil)
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        if coding == nil && settings.scheme == "http" {
            // Plain TCP, bytes as they are: the kernel copies the file to the socket (sendfile),
            // as nginx does; nothing crosses threads.
            let region = FileRegion(
                fileHandle: handle, readerIndex: body.lowerBound, endIndex: body.upperBound + 1)
            watchFileSend(descriptor: descriptor, path: file.path, end: body.upperBound + 1, context: context)
            context.writeAndFlush(NIOAny(IOData.fileRegion(region))).whenComplete { result in
                let handler = bound.value
                handler.fileWatch?.cancel()  // before the descriptor it checks is closed
                handler.fileWatch = nil
                try? handle.close()
                handler.staticFinished(close: close, succeeded: (try? result.get()) != nil)
            }
            return
        }
        let eventLoop = context.eventLoop
        let compressor = coding.map { NIOLoopBound(ResponseCompressor(coding: $0), eventLoop: eventLoop) }
        let chunked = coding != nil && head.version.minor == 1
        // A file that shrank while being read ends early: the connection must close then.
        let sent = NIOLoopBoundBox(0, eventLoop: eventLoop)
        settings.edge.fileIO.readChunked(
            fileHandle: handle, fromOffset: Int64(body.lowerBound), byteCount: body.count,
            chunkSize: 64 * 1024, allocator: context.channel.allocator, eventLoop: eventLoop
        ) { chunk in
            guard let context = bound.value.context else {
                return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            sent.value += chunk.readableBytes
            guard let compressor else { return context.writeAndFlush(bound.value.wrapOutboundOut(chunk)) }
            var output = context.channel.allocator.buffer(capacity: chunk.readableBytes / 2 + 64)
            compressor.value.compress(chunk, into: &output)
            return context.writeAndFlush(bound.value.wrapOutboundOut(Self.framed(output, chunked: chunked)))
        }.whenComplete { result in
            try? handle.close()
            var succeeded = (try? result.get()) != nil && sent.value == body.count
            if (try? result.get()) != nil && sent.value < body.count {
                bound.value.settings.logger.warning(
                    "static file '\(file.path)' was truncated while being sent (\(sent.value) of \(body.count) bytes); connection closed"
                )
            }
            if succeeded, let compressor, let context = bound.value.context {
                var output = context.channel.allocator.buffer(capacity: 64)
                compressor.value.finish(into: &output)
                var last = Self.framed(output, chunked: chunked)
                if chunked { last.writeStaticString("0\r\n\r\n") }
                context.writeAndFlush(bound.value.wrapOutboundOut(last), promise: nil)
            } else if compressor != nil {
                succeeded = false
            }
            bound.value.staticFinished(close: close, succeeded: succeeded)
        }
    }

    /// Files up to this size are read on the event loop and sent with their head in one write.
    static let inlineFileBytes = 16 * 1024

    /// How often a file going out by sendfile is checked.
    static let fileWatchInterval = TimeAmount.milliseconds(250)

    /// Checks a file going out by sendfile until it is out: a file truncated meanwhile (`cp new
    /// old` during a deploy) can never deliver the length already announced, and sendfile would
    /// find nothing to send for ever, so the connection closes; so does a client that takes
    /// nothing for the send timeout (SPEC §4).
    private func watchFileSend(descriptor: CInt, path: String, end: Int, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let stalled = NIOLoopBoundBox<(bytes: Int, since: NIODeadline)?>(nil, eventLoop: context.eventLoop)
        fileWatch?.cancel()
        fileWatch = context.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.fileWatchInterval, delay: Self.fileWatchInterval
        ) { task in
            let handler = bound.value
            guard case .streaming = handler.state, let context = handler.context else {
                task.cancel()
                return
            }
            var info = stat()
            if fstat(descriptor, &info) == 0, Int(info.st_size) < end {
                handler.settings.logger.warning(
                    "static file '\(path)' was truncated while being sent (now \(info.st_size) of \(end) bytes); connection closed"
                )
                task.cancel()
                handler.fileWatch = nil
                handler.closeClient()
                return
            }
            let held = context.channel.heldBytes
            let now = NIODeadline.now()
            if context.channel.isWritable || held < (stalled.value?.bytes ?? Int.max) {
                stalled.value = (held, now)
            } else if let since = stalled.value?.since, now - since >= handler.settings.limits.sendTimeout {
                handler.settings.logger.info(
                    "closing a client that took nothing of '\(path)' for \(DurationText.format(.nanoseconds(handler.settings.limits.sendTimeout.nanoseconds)))"
                )
                task.cancel()
                handler.fileWatch = nil
                handler.resetClient()
            }
        }
    }

    /// A compressed piece as a chunk (HTTP/1.1) or as it is (HTTP/1.0, ended by the close).
    private static func framed(_ bytes: ByteBuffer, chunked: Bool) -> ByteBuffer {
        guard chunked, bytes.readableBytes > 0 else { return bytes }
        var framed = ByteBuffer()
        framed.reserveCapacity(bytes.readableBytes + 16)
        HeadWriter.writeChunkSize(bytes.readableBytes, into: &framed)
        framed.writeImmutableBuffer(bytes)
        framed.writeStaticString("\r\n")
        return framed
    }

    private func staticFinished(close: Bool, succeeded: Bool) {
        guard case .streaming = state else { return }
        if succeeded {
            settle(close: close, requestEnded: true)
        } else {
            closeClient()  // part of the file went out: the client learns of the failure by the close
        }
    }

    private func writeStaticHead(
        status: HTTPResponseStatus, file: StaticFiles.File, etag: String, body: ClosedRange<Int>?,
        version: HTTPVersion, close: Bool, coding: ContentCoding?, vary: Bool, into buffer: inout ByteBuffer
    ) {
        let lastModified = HTTPDate.format(file.modified)
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
        _ entry: CorsPreflightCache.Entry, head: MessageHead, close: Bool, context: ChannelHandlerContext
    ) {
        state = .answered(close: close)
        var bytes = context.channel.allocator.buffer(
            capacity: entry.headerLines.count + entry.body.count + 128)
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
        sendNow(bytes, context: context)
    }
}
