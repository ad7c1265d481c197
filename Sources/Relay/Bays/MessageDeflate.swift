import CZlib
import NIOCore

/// The compression of one bay client's messages once permessage-deflate is agreed (RFC 7692 §7.2):
/// a raw inflate stream for what the client sends, a raw deflate stream for what the bay sends.
/// Each is allocated the first time it is needed (an idle client holds neither) and freed by
/// `release()` when the client's handler goes. Confined to the client's event loop.
///
/// Memory, with zlib's own formulas: the inflater is about 7 KiB of state plus its 32 KiB window
/// (allocated at its first output); the deflater, with `windowBits` 13 and `memLevel` 6, is
/// 2×8 KiB of window, 16 KiB of chain, 16 KiB of hash heads and 16 KiB of pending buffer plus
/// about 6 KiB of state (about 70 KiB, against 262 KiB for zlib's defaults of 15 and 8).
final class MessageDeflate {
    let parameters: PerMessageDeflate
    private var inflater: UnsafeMutablePointer<z_stream>?
    private var deflater: UnsafeMutablePointer<z_stream>?
    /// The message in progress ended its deflate stream (a block with BFINAL set): the rest of it,
    /// the appended trailer included, is not deflate data (§7.2.3.3).
    private var streamEnded = false

    /// Messages from the bay shorter than this go out uncompressed (RSV1 clear, §6): under it the
    /// flush marker and block header take most of what compression saves, and a client that only
    /// gets short messages never costs a deflater.
    static let minimumCompressedBytes = 64
    /// The deflater's window (a power of two, at most what the client allowed): 8 KiB keeps most
    /// of the ratio on JSON-sized messages at a quarter of the default's memory. A client's
    /// decompressor reads it whatever window it declared.
    static let deflateWindowBits = 13
    static let deflateMemLevel: Int32 = 6
    /// zlib's fastest level: a relay's compression has to keep up with the bay.
    static let deflateLevel: Int32 = 1
    /// The decompressor's window: the most a client may use, since `client_max_window_bits` is
    /// never declared.
    static let inflateWindowBits: Int32 = 15
    /// What a sync flush leaves at the end of a message, and a receiver puts back (§7.2.1, §7.2.2).
    static let trailer: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    static let invalidData = WebSocketRules.Violation(code: 1007, reason: "invalid compressed data")

    init(parameters: PerMessageDeflate) {
        self.parameters = parameters
    }

    deinit { release() }

    /// Whether a zlib stream is allocated now (tests).
    var holdsStreams: (inflater: Bool, deflater: Bool) { (inflater != nil, deflater != nil) }

    /// Frees both streams (a later message would allocate them again).
    func release() {
        if let inflater {
            inflateEnd(inflater)
            inflater.deallocate()
            self.inflater = nil
        }
        if let deflater {
            deflateEnd(deflater)
            deflater.deallocate()
            self.deflater = nil
        }
    }

    // MARK: Inflating what the client sends

    /// Inflates the next piece of a compressed message's payload (unmasked) onto `output`, which
    /// holds the message so far; `end`: the message ends with it. Fails with 1009 as soon as the
    /// message would pass `limit` bytes (the output grows only as far as the limit), with 1007 when
    /// the data is not a deflate stream, or with what `check` says of the new bytes (text's UTF-8).
    func inflate(
        _ input: UnsafeRawBufferPointer, end: Bool, into output: inout ByteBuffer, limit: Int,
        check: (UnsafeRawBufferPointer) -> WebSocketRules.Violation?
    ) -> WebSocketRules.Violation? {
        guard let stream = inflateStream() else {
            return WebSocketRules.Violation(code: 1011, reason: "out of memory")
        }
        var violation = run(input, stream: stream, into: &output, limit: limit, check: check)
        if violation == nil && end {
            violation = Self.trailer.withUnsafeBytes {
                run($0, stream: stream, into: &output, limit: limit, check: check)
            }
        }
        // A failed message leaves the stream mid-block; the connection is failed anyway.
        if end { streamEnded = false }
        if violation != nil || (end && parameters.clientNoContextTakeover) { inflateReset(stream) }
        return violation
    }

    private func run(
        _ input: UnsafeRawBufferPointer, stream: UnsafeMutablePointer<z_stream>,
        into output: inout ByteBuffer,
        limit: Int, check: (UnsafeRawBufferPointer) -> WebSocketRules.Violation?
    ) -> WebSocketRules.Violation? {
        guard let base = input.baseAddress, !input.isEmpty, !streamEnded else { return nil }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            // One byte more than the limit allows: producing it means the message is too big.
            let chunk = min(64 * 1024, limit - output.readableBytes + 1)
            var status = Z_OK
            var full = false
            var violation: WebSocketRules.Violation?
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { target in
                stream.pointee.next_out = target.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(chunk)
                status = CZlib.inflate(stream, Z_SYNC_FLUSH)
                full = stream.pointee.avail_out == 0
                let produced = chunk - Int(stream.pointee.avail_out)
                stream.pointee.next_out = nil
                if produced > 0 { violation = check(UnsafeRawBufferPointer(rebasing: target[..<produced])) }
                return produced
            }
            if output.readableBytes > limit {
                return WebSocketRules.Violation(code: 1009, reason: "message over \(limit) bytes")
            }
            if let violation { return violation }
            switch status {
            case Z_OK:
                if !full && stream.pointee.avail_in == 0 { return nil }
            case Z_BUF_ERROR:
                // No progress possible: everything given was used and all output is out.
                if stream.pointee.avail_in == 0 || !full { return nil }
            case Z_STREAM_END:
                // A block with BFINAL set ended the stream (§7.2.3.3): the next message starts a
                // new one, and what is left of this one is ignored.
                inflateReset(stream)
                streamEnded = true
                return nil
            default:
                return Self.invalidData
            }
        }
    }

    private func inflateStream() -> UnsafeMutablePointer<z_stream>? {
        if let inflater { return inflater }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard czlib_inflate_init(stream, -Self.inflateWindowBits) == Z_OK else {
            stream.deallocate()
            return nil
        }
        inflater = stream
        return stream
    }

    // MARK: Deflating what the bay sends

    /// `message` compressed as one message's payload (sync-flushed, the trailer cut off), with
    /// `headerRoom` bytes free in front for the frame header; nil when zlib fails (then it goes
    /// out uncompressed).
    func deflate(_ message: ByteBuffer, headerRoom: Int, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard let stream = deflateStream() else { return nil }
        var output = allocator.buffer(capacity: headerRoom + message.readableBytes / 2 + 64)
        output.moveWriterIndex(forwardBy: headerRoom)
        output.moveReaderIndex(forwardBy: headerRoom)
        var failed = false
        message.withUnsafeReadableBytes { source in
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(source.count)
            while true {
                var status = Z_OK
                var full = false
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: max(256, source.count / 4 + 64)) {
                    target in
                    stream.pointee.next_out = target.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.pointee.avail_out = uInt(target.count)
                    status = CZlib.deflate(stream, Z_SYNC_FLUSH)
                    full = stream.pointee.avail_out == 0
                    stream.pointee.next_out = nil
                    return target.count - Int(stream.pointee.avail_out)
                }
                if status != Z_OK && status != Z_BUF_ERROR {
                    failed = true
                    break
                }
                if !full && stream.pointee.avail_in == 0 { break }
            }
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        guard !failed, output.readableBytes >= 4,
            output.getBytes(at: output.writerIndex - 4, length: 4) == Self.trailer
        else {
            // A reset compressor refers to nothing earlier, so the client's context stays usable.
            deflateReset(stream)
            return nil
        }
        output.moveWriterIndex(to: output.writerIndex - 4)
        if parameters.serverNoContextTakeover { deflateReset(stream) }
        return output
    }

    private func deflateStream() -> UnsafeMutablePointer<z_stream>? {
        if let deflater { return deflater }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let windowBits = Int32(min(Self.deflateWindowBits, parameters.serverMaxWindowBits))
        guard
            czlib_deflate_init(stream, Self.deflateLevel, -windowBits, Self.deflateMemLevel) == Z_OK
        else {
            stream.deallocate()
            return nil
        }
        deflater = stream
        return stream
    }
}
