import CZlib

/// A WebSocket client's side of permessage-deflate (RFC 7692 §7.2), with the system zlib: each
/// message is raw deflate, sync-flushed, without the trailing 00 00 FF FF. The context carries
/// from one message to the next unless `noContextTakeover`.
public final class RawDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let noContextTakeover: Bool

    public init(windowBits: Int32 = 15, noContextTakeover: Bool = false) {
        self.noContextTakeover = noContextTakeover
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = czlib_deflate_init(stream, 6, -windowBits, 8)
        precondition(status == Z_OK, "deflateInit2: \(status)")
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// One message's payload.
    public func compress(_ message: [UInt8]) -> [UInt8] {
        var input = message
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = uInt(source.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { target in
                    stream.pointee.next_out = target.baseAddress
                    stream.pointee.avail_out = uInt(target.count)
                    let status = CZlib.deflate(stream, Z_SYNC_FLUSH)
                    return (status, target.count - Int(stream.pointee.avail_out))
                }
                output.append(contentsOf: chunk[0..<produced])
                if status != Z_OK || produced < chunk.count { break }
            }
            stream.pointee.next_in = nil
        }
        precondition(output.suffix(4) == [0x00, 0x00, 0xFF, 0xFF], "a sync flush ends with 00 00 FF FF")
        if noContextTakeover { deflateReset(stream) }
        return Array(output.dropLast(4))
    }
}

/// The reading side: the trailer put back, then raw inflate with a 32 KiB window.
public final class RawInflater {
    private let stream: UnsafeMutablePointer<z_stream>

    public init() {
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = czlib_inflate_init(stream, -15)
        precondition(status == Z_OK, "inflateInit2: \(status)")
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// One message's payload as it came (RSV1 set), decompressed.
    public func decompress(_ payload: [UInt8]) throws -> [UInt8] {
        var input = payload + [0x00, 0x00, 0xFF, 0xFF]
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let status: Int32 = input.withUnsafeMutableBufferPointer { source in
            stream.pointee.next_in = source.baseAddress
            stream.pointee.avail_in = uInt(source.count)
            defer { stream.pointee.next_in = nil }
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { target in
                    stream.pointee.next_out = target.baseAddress
                    stream.pointee.avail_out = uInt(target.count)
                    let status = CZlib.inflate(stream, Z_SYNC_FLUSH)
                    return (status, target.count - Int(stream.pointee.avail_out))
                }
                output.append(contentsOf: chunk[0..<produced])
                if status != Z_OK { return status == Z_BUF_ERROR ? Z_OK : status }
                if stream.pointee.avail_in == 0 && produced < chunk.count { return Z_OK }
            }
        }
        guard status == Z_OK else {
            throw Decompression.Failure(description: "inflate failed with \(status)")
        }
        return output
    }
}
