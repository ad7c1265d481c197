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

    /// A non-negative integer in decimal, two digits per division.
    mutating func appendDecimal(_ value: Int64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for Int64
        var remaining = UInt64(max(0, value))
        let pairs = Self.digitPairs.utf8Start
        withUnsafeMutableBytes(of: &digits) { scratch in
            let base = scratch.baseAddress!
            var index = scratch.count
            while remaining >= 100 {
                let pair = Int(remaining % 100) &* 2
                remaining /= 100
                index -= 2
                base.storeBytes(of: pairs[pair], toByteOffset: index, as: UInt8.self)
                base.storeBytes(of: pairs[pair + 1], toByteOffset: index + 1, as: UInt8.self)
            }
            if remaining >= 10 {
                let pair = Int(remaining) &* 2
                index -= 2
                base.storeBytes(of: pairs[pair], toByteOffset: index, as: UInt8.self)
                base.storeBytes(of: pairs[pair + 1], toByteOffset: index + 1, as: UInt8.self)
            } else {
                index -= 1
                base.storeBytes(of: UInt8(48 + remaining), toByteOffset: index, as: UInt8.self)
            }
            append(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    private static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
}
