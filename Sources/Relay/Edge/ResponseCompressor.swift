import CBrotli
import CZlib
import NIOCore

/// Compresses one response body as it streams through (SPEC §5.2): gzip and deflate with the
/// system zlib, br with the system libbrotlienc. Each piece handed in comes out flushed (a sync
/// flush), so a body that arrives slowly reaches the client as it arrives. One per response; not
/// shared between threads.
final class ResponseCompressor {
    let coding: ContentCoding
    private let zlib: UnsafeMutablePointer<z_stream>?
    private let brotli: OpaquePointer?

    /// zlib level 5 and brotli quality 4 with a 256 KiB window: close to the best ratio for their
    /// speed, and a few hundred KiB of state per response in flight.
    init(coding: ContentCoding) {
        self.coding = coding
        switch coding {
        case .br:
            zlib = nil
            let state = BrotliEncoderCreateInstance(nil, nil, nil)
            if let state {
                BrotliEncoderSetParameter(state, BROTLI_PARAM_QUALITY, 4)
                BrotliEncoderSetParameter(state, BROTLI_PARAM_LGWIN, 18)
            }
            brotli = state
        case .gzip, .deflate:
            brotli = nil
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            // 15 + 16: a gzip wrapper; 15: the zlib wrapper that HTTP's `deflate` means.
            let status = czlib_deflate_init(stream, 5, coding == .gzip ? 31 : 15, 8)
            if status != Z_OK {
                stream.deallocate()
                zlib = nil
            } else {
                zlib = stream
            }
        }
    }

    /// False when the library could not set up its state (out of memory): send the body as it is.
    var isUsable: Bool { zlib != nil || brotli != nil }

    deinit {
        if let zlib {
            deflateEnd(zlib)
            zlib.deallocate()
        }
        if let brotli { BrotliEncoderDestroyInstance(brotli) }
    }

    /// The compressed form of `input`, flushed; appended to `output`.
    func compress(_ input: ByteBuffer, into output: inout ByteBuffer) {
        run(input, finish: false, into: &output)
    }

    /// The end of the stream; appended to `output`.
    func finish(into output: inout ByteBuffer) {
        run(ByteBuffer(), finish: true, into: &output)
    }

    private func run(_ input: ByteBuffer, finish: Bool, into output: inout ByteBuffer) {
        input.withUnsafeReadableBytes { source in
            if let zlib {
                deflate(source, stream: zlib, finish: finish, into: &output)
            } else if let brotli {
                encode(source, state: brotli, finish: finish, into: &output)
            }
        }
    }

    private func deflate(
        _ source: UnsafeRawBufferPointer, stream: UnsafeMutablePointer<z_stream>, finish: Bool,
        into output: inout ByteBuffer
    ) {
        if source.isEmpty && !finish { return }
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(source.count)
        let flush = finish ? Z_FINISH : Z_SYNC_FLUSH
        while true {
            let room = max(4096, source.count / 2 + 64)
            var full = false
            var status = Z_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
                stream.pointee.next_out = target.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(target.count)
                status = CZlib.deflate(stream, flush)
                full = stream.pointee.avail_out == 0
                return target.count - Int(stream.pointee.avail_out)
            }
            if status == Z_STREAM_END || status == Z_STREAM_ERROR { break }
            if !full && stream.pointee.avail_in == 0 { break }
        }
        stream.pointee.next_in = nil
    }

    private func encode(
        _ source: UnsafeRawBufferPointer, state: OpaquePointer, finish: Bool, into output: inout ByteBuffer
    ) {
        if source.isEmpty && !finish { return }
        var availableIn = source.count
        var nextIn = source.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let operation = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH
        while true {
            var ok = BROTLI_TRUE
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: max(4096, source.count / 2 + 64)) {
                target in
                var availableOut = target.count
                var nextOut: UnsafeMutablePointer<UInt8>? = target.baseAddress!.assumingMemoryBound(
                    to: UInt8.self)
                ok = BrotliEncoderCompressStream(
                    state, operation, &availableIn, &nextIn, &availableOut, &nextOut, nil)
                return target.count - availableOut
            }
            if ok == BROTLI_FALSE { break }
            if availableIn == 0 && BrotliEncoderHasMoreOutput(state) == BROTLI_FALSE {
                if !finish || BrotliEncoderIsFinished(state) == BROTLI_TRUE { break }
            }
        }
    }
}
