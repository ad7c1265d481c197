import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Header lookups by name for the edge features. The parser classifies only the headers the plain
/// proxy path needs (`FieldKind`); the rest are found here by a case-insensitive name comparison,
/// which only a request or response that an edge feature looks at pays for.
extension MessageHead {
    /// The field named `name` (lower-case ASCII), first of its kind.
    func field(named name: StaticString) -> HeaderField? {
        bytes.withUnsafeReadableBytes { source in
            fields.first { Self.nameEquals(source, $0.name, name) }
        }
    }

    /// The first value of the header named `name` (lower-case ASCII).
    func value(named name: StaticString) -> String? {
        field(named: name).map { string($0.value) }
    }

    /// Every value of the header named `name`, joined by `, ` (a list header sent on several lines
    /// means the same as one line with the values joined, RFC 9110 §5.3). Nil when absent.
    func joinedValues(named name: StaticString) -> String? {
        var result: String?
        bytes.withUnsafeReadableBytes { source in
            for field in fields where Self.nameEquals(source, field.name, name) {
                let value = string(field.value)
                result = result.map { $0 + ", " + value } ?? value
            }
        }
        return result
    }

    /// Whether every value of the header named `name`, joined as `joinedValues` joins them, equals
    /// `known` byte for byte; no string is made. False when the header is absent.
    func joinedValues(named name: StaticString, equal known: [UInt8]) -> Bool {
        known.withUnsafeBytes { expected in
            bytes.withUnsafeReadableBytes { source in
                var offset = 0
                var found = false
                for field in fields where Self.nameEquals(source, field.name, name) {
                    if found {
                        guard expected.count >= offset + 2, expected[offset] == 0x2C,
                            expected[offset + 1] == 0x20
                        else { return false }
                        offset += 2
                    }
                    found = true
                    let count = field.value.count
                    guard expected.count >= offset + count else { return false }
                    if count > 0,
                        memcmp(
                            source.baseAddress! + field.value.lowerBound, expected.baseAddress! + offset,
                            count) != 0
                    {
                        return false
                    }
                    offset += count
                }
                return found && offset == expected.count
            }
        }
    }

    static func nameEquals(_ source: UnsafeRawBufferPointer, _ range: Range<Int>, _ name: StaticString)
        -> Bool
    {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for offset in 0..<range.count {
            var byte = source[range.lowerBound + offset]
            if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
            if byte != expected[offset] { return false }
        }
        return true
    }
}
