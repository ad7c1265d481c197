import CBrotliDecoder
import CZlib

/// Decodes what the relay's compression produced, with the same system libraries (tests check
/// that a compressed body comes back as the original).
public enum Decompression {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `gzip`, `deflate` (the zlib format) or `br`.
    public static func decode(_ bytes: [UInt8], coding: String) throws -> [UInt8] {
        switch coding {
        case "gzip": return try inflate(bytes, windowBits: 31)
        case "deflate": return try inflate(bytes, windowBits: 15)
        case "br": return try brotli(bytes)
        default: throw Failure(description: "unknown coding \(coding)")
        }
    }

    private static func inflate(_ bytes: [UInt8], windowBits: Int32) throws -> [UInt8] {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            inflateEnd(stream)
            stream.deallocate()
        }
        guard czlib_inflate_init(stream, windowBits) == Z_OK else {
            throw Failure(description: "inflateInit")
        }
        var output: [UInt8] = []
        var input = bytes
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let status: Int32 = input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = uInt(source.count)
            while true {
                let (result, produced) = chunk.withUnsafeMutableBufferPointer { target in
                    stream.pointee.next_out = target.baseAddress
                    stream.pointee.avail_out = uInt(target.count)
                    let result = CZlib.inflate(stream, Z_NO_FLUSH)
                    return (result, target.count - Int(stream.pointee.avail_out))
                }
                output.append(contentsOf: chunk[0..<produced])
                if result != Z_OK { return result }
                if stream.pointee.avail_in == 0 && produced < chunk.count { return Z_BUF_ERROR }
            }
        }
        guard status == Z_STREAM_END else {
            throw Failure(description: "inflate ended with \(status) after \(output.count) bytes")
        }
        guard stream.pointee.avail_in == 0 else { throw Failure(description: "bytes after the stream's end") }
        return output
    }

    private static func brotli(_ bytes: [UInt8]) throws -> [UInt8] {
        guard let state = BrotliDecoderCreateInstance(nil, nil, nil) else {
            throw Failure(description: "brotli")
        }
        defer { BrotliDecoderDestroyInstance(state) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let result: BrotliDecoderResult = bytes.withUnsafeBufferPointer { source in
            var availableIn = source.count
            var nextIn = source.baseAddress
            while true {
                var result = BROTLI_DECODER_RESULT_ERROR
                let produced = chunk.withUnsafeMutableBufferPointer { target in
                    var availableOut = target.count
                    var nextOut = target.baseAddress
                    result = BrotliDecoderDecompressStream(
                        state, &availableIn, &nextIn, &availableOut, &nextOut, nil)
                    return target.count - availableOut
                }
                output.append(contentsOf: chunk[0..<produced])
                if result != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT { return result }
            }
        }
        guard result == BROTLI_DECODER_RESULT_SUCCESS else {
            throw Failure(
                description: "brotli decoding ended with \(result.rawValue) after \(output.count) bytes")
        }
        return output
    }
}
