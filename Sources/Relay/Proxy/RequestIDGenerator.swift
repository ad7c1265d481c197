/// Request ids for `X-Request-Id`: 32 hex digits from a per-event-loop wyrand generator, seeded
/// from the system's random source once (no system call per request).
struct RequestIDGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    mutating func next() -> String {
        let high = step()
        let low = step()
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            digits.withUTF8Buffer { hex in
                for index in 0..<16 {
                    buffer[index] = hex[Int((high >> UInt64(60 - index * 4)) & 0xF)]
                    buffer[16 + index] = hex[Int((low >> UInt64(60 - index * 4)) & 0xF)]
                }
            }
            return 32
        }
    }

    private mutating func step() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}
