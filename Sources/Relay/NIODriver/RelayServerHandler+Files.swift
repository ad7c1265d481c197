import NIOCore
import NIOPosix
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// Static files (SPEC §5.1) as SwiftNIO sends them: by sendfile on plain TCP (the kernel copies the
/// file to the socket, as nginx does; nothing crosses threads); over TLS or compressed, read off the
/// event loop (NonBlockingFileIO) in 64 KiB chunks, each written before the next is read.
extension RelayServerHandler {
    func sendFile(
        descriptor: CInt, range body: ClosedRange<Int>, path: String, coding: ContentCoding?, chunked: Bool
    ) {
        guard let context else {
            Glibc.close(descriptor)
            return
        }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        flush()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        if coding == nil && !connection.secure {
            let region = FileRegion(
                fileHandle: handle, readerIndex: body.lowerBound, endIndex: body.upperBound + 1)
            watchFileSend(descriptor: descriptor, path: path, end: body.upperBound + 1, context: context)
            context.writeAndFlush(NIOAny(IOData.fileRegion(region))).whenComplete { result in
                let handler = bound.value
                handler.fileWatch?.cancel()  // before the descriptor it checks is closed
                handler.fileWatch = nil
                try? handle.close()
                handler.connection.staticFinished(succeeded: (try? result.get()) != nil)
            }
            return
        }
        let eventLoop = context.eventLoop
        let compressor = coding.map { NIOLoopBound(ResponseCompressor(coding: $0), eventLoop: eventLoop) }
        // A file that shrank while being read ends early: the connection must close then.
        let sent = NIOLoopBoundBox(0, eventLoop: eventLoop)
        let settings = connection.settings
        settings.edge.fileIO.readChunked(
            fileHandle: handle, fromOffset: Int64(body.lowerBound), byteCount: body.count,
            chunkSize: 64 * 1024, allocator: context.channel.allocator, eventLoop: eventLoop
        ) { chunk in
            guard let context = bound.value.context else {
                return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            sent.value += chunk.readableBytes
            guard let compressor else { return context.writeAndFlush(NIOAny(chunk)) }
            var output = context.channel.allocator.buffer(capacity: chunk.readableBytes / 2 + 64)
            compressor.value.compress(chunk, into: &output)
            return context.writeAndFlush(NIOAny(HeadWriter.framed(output, chunked: chunked)))
        }.whenComplete { result in
            try? handle.close()
            var succeeded = (try? result.get()) != nil && sent.value == body.count
            if (try? result.get()) != nil && sent.value < body.count {
                settings.logger.warning(
                    "static file '\(path)' was truncated while being sent (\(sent.value) of \(body.count) bytes); connection closed"
                )
            }
            if succeeded, let compressor, let context = bound.value.context {
                var output = context.channel.allocator.buffer(capacity: 64)
                compressor.value.finish(into: &output)
                var last = HeadWriter.framed(output, chunked: chunked)
                if chunked { last.writeStaticString("0\r\n\r\n") }
                context.writeAndFlush(NIOAny(last), promise: nil)
            } else if compressor != nil {
                succeeded = false
            }
            bound.value.connection.staticFinished(succeeded: succeeded)
        }
    }

    /// How often a file going out by sendfile is checked.
    static let fileWatchInterval = TimeAmount.milliseconds(250)

    /// Checks a file going out by sendfile until it is out: a file truncated meanwhile (`cp new
    /// old` during a deploy) can never deliver the length already announced, and sendfile would
    /// find nothing to send for ever, so the connection closes; so does a client that takes
    /// nothing for the send timeout (SPEC §4).
    private func watchFileSend(descriptor: CInt, path: String, end: Int, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let stalled = NIOLoopBoundBox<(bytes: Int, since: NIODeadline)?>(nil, eventLoop: context.eventLoop)
        let settings = connection.settings
        fileWatch?.cancel()
        fileWatch = context.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.fileWatchInterval, delay: Self.fileWatchInterval
        ) { task in
            let handler = bound.value
            guard case .streaming = handler.connection.state, let context = handler.context else {
                task.cancel()
                return
            }
            var info = stat()
            if fstat(descriptor, &info) == 0, Int(info.st_size) < end {
                settings.logger.warning(
                    "static file '\(path)' was truncated while being sent (now \(info.st_size) of \(end) bytes); connection closed"
                )
                task.cancel()
                handler.fileWatch = nil
                handler.connection.closeClient()
                return
            }
            let held = context.channel.heldBytes
            let now = NIODeadline.now()
            if context.channel.isWritable || held < (stalled.value?.bytes ?? Int.max) {
                stalled.value = (held, now)
            } else if let since = stalled.value?.since, now - since >= settings.limits.sendTimeout {
                settings.logger.info(
                    "closing a client that took nothing of '\(path)' for \(DurationText.format(.nanoseconds(settings.limits.sendTimeout.nanoseconds)))"
                )
                task.cancel()
                handler.fileWatch = nil
                handler.connection.resetClient()
            }
        }
    }
}
