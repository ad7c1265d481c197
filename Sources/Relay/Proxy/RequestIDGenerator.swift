/// Request ids for `X-Request-Id`: 32 hex digits from a per-event-loop wyrand generator, seeded
/// from the system's random source once (no system call per request).
struct RequestIDGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    /// Writes the next id straight into a head being written (no String on the hot path).
    mutating func write(into writer: inout ByteWriter) {
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            fill(
                UnsafeMutableBufferPointer(
                    start: buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 32))
            writer.append(UnsafeRawBufferPointer(buffer))
        }
    }

    mutating func next() -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            fill(buffer)
            return 32
        }
    }

    private mutating func fill(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        let high = step()
        let low = step()
        let base = UnsafeMutableRawPointer(buffer.baseAddress!)
        base.storeBytes(
            of: Self.hex(UInt32(truncatingIfNeeded: high >> 32)), toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: Self.hex(UInt32(truncatingIfNeeded: high)), toByteOffset: 8, as: UInt64.self)
        base.storeBytes(
            of: Self.hex(UInt32(truncatingIfNeeded: low >> 32)), toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: Self.hex(UInt32(truncatingIfNeeded: low)), toByteOffset: 24, as: UInt64.self)
    }

    /// The eight lower-case hex digits of `value`, most significant first, as the bytes of a
    /// little-endian word: each nibble spread to a byte, then `0`–`9` or `a`–`f` added to all at once.
    static func hex(_ value: UInt32) -> UInt64 {
        var x = UInt64(value)
        x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
        x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // Nibbles sit least significant first; the digits go out most significant first.
        x = x.byteSwapped
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return (x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27).littleEndian
    }

    private mutating func step() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}
