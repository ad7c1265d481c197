/// An IPv4 or IPv6 address as 4 or 16 bytes, and CIDR ranges over them (for `trusted_proxies`).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public var isV6: Bool { bytes.count == 16 }

    public init?(parsing text: String) {
        if let v4 = Self.parseV4(Substring(text)) {
            bytes = v4
        } else if let v6 = Self.parseV6(text) {
            bytes = v6
        } else {
            return nil
        }
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var result: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = UInt8(part)
            else { return nil }
            result.append(value)
        }
        return result
    }

    static func parseV6(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }  // zone id
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var values: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (offset, piece) in pieces.enumerated() {
                if offset == pieces.count - 1, piece.contains("."), let v4 = parseV4(piece) {
                    values.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    values.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                values.append(value)
            }
            return values
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    public var description: String {
        if !isV6 { return bytes.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for offset in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }
}

/// An address range such as `10.0.0.0/8` or `fd00::/8`; a bare address is a range of one.
public struct CIDRRange: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: Int

    public init?(parsing text: String) {
        let parts = text.trimmingSpaces().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPAddress(parsing: String(parts[0])) else {
            return nil
        }
        let maximum = address.bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maximum).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        self.address = address
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        var candidate = candidate
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 ranges.
        if !address.isV6, candidate.isV6, candidate.bytes[0..<10].allSatisfy({ $0 == 0 }),
            candidate.bytes[10] == 0xFF, candidate.bytes[11] == 0xFF
        {
            candidate = IPAddress(bytes: Array(candidate.bytes[12...]))
        }
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for offset in 0..<address.bytes.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if address.bytes[offset] & mask != candidate.bytes[offset] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
