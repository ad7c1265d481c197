import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Appends bytes to a region of a `ByteBuffer`'s memory: one reservation and plain copies per head,
/// instead of one `ByteBuffer` write (and its bookkeeping) per piece.
struct ByteWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var count = 0
    /// Something did not fit: the whole head is written again into a larger region.
    private(set) var overflowed = false

    private init(_ region: UnsafeMutableRawBufferPointer) {
        base = region.baseAddress!
        capacity = region.count
    }

    /// Runs `body` over at least `estimate` writable bytes of `buffer` (with `source`'s readable
    /// bytes at hand) and commits what it wrote; if the estimate was short, runs it again with twice
    /// the room.
    static func write(
        into buffer: inout ByteBuffer, estimate: Int, source: ByteBuffer,
        _ body: (inout ByteWriter, UnsafeRawBufferPointer) -> Void
    ) {
        var room = max(estimate, 64)
        while true {
            var overflowed = false
            source.withUnsafeReadableBytes { sourceBytes in
                _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { region in
                    var writer = ByteWriter(region)
                    body(&writer, sourceBytes)
                    overflowed = writer.overflowed
                    return overflowed ? 0 : writer.count
                }
            }
            if !overflowed { return }
            room *= 2
        }
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        guard count + bytes.count <= capacity else {
            overflowed = true
            return
        }
        memcpy(base + count, bytes.baseAddress!, bytes.count)
        count += bytes.count
    }

    /// `range` of `source`.
    mutating func append(_ source: UnsafeRawBufferPointer, _ range: Range<Int>) {
        append(UnsafeRawBufferPointer(rebasing: source[range]))
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Text known only at run time (a literal takes the `StaticString` overload, which copies
    /// straight from the binary).
    mutating func append(string text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// A non-negative integer in decimal.
    mutating func appendDecimal(_ value: Int64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for Int64
        var remaining = UInt64(max(0, value))
        withUnsafeMutableBytes(of: &digits) { scratch in
            var index = scratch.count
            repeat {
                index -= 1
                scratch[index] = UInt8(48 + remaining % 10)
                remaining /= 10
            } while remaining > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }
}
