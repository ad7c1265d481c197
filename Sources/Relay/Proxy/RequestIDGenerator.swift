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
        let digits: StaticString = "0123456789abcdef"
        for index in 0..<16 {
            buffer[index] = digits.utf8Start[Int((high >> UInt64(60 - index * 4)) & 0xF)]
            buffer[16 + index] = digits.utf8Start[Int((low >> UInt64(60 - index * 4)) & 0xF)]
        }
    }

    private mutating func step() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}
