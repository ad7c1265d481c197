import Relay

/// The JSON documents of the ABI (SPEC §7), written by hand: a module call must not pay for a
/// general encoder, and the shapes are fixed.
enum PayloadJSON {
    /// `{"method","path","query","headers":{lower-case name: value},"remote_addr","bind","ua_kind","ja4h"}`.
    static func request(_ request: HookRequest, ja4h: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + request.headers.count * 48)
        out.append(contentsOf: #"{"method":"#.utf8)
        string(request.method, into: &out)
        out.append(contentsOf: #","path":"#.utf8)
        string(request.path, into: &out)
        out.append(contentsOf: #","query":"#.utf8)
        string(request.query, into: &out)
        out.append(contentsOf: #","headers":"#.utf8)
        headers(request.headers, into: &out)
        out.append(contentsOf: #","remote_addr":"#.utf8)
        string(request.remoteAddress, into: &out)
        out.append(contentsOf: #","bind":"#.utf8)
        string(request.bind, into: &out)
        out.append(contentsOf: #","ua_kind":"#.utf8)
        string(request.userAgentKind, into: &out)
        out.append(contentsOf: #","ja4h":"#.utf8)
        string(ja4h, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `{"status","headers","path"}`.
    static func response(_ response: HookResponse) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + response.headers.count * 48)
        out.append(contentsOf: #"{"status":"#.utf8)
        out.append(contentsOf: String(response.status).utf8)
        out.append(contentsOf: #","headers":"#.utf8)
        headers(response.headers, into: &out)
        out.append(contentsOf: #","path":"#.utf8)
        string(response.path, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A module's `config` as one object of strings, keys sorted.
    static func config(_ config: [String: String]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, key) in config.keys.sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            string(key, into: &out)
            out.append(UInt8(ascii: ":"))
            string(config[key]!, into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Names lower-cased; repeated headers joined with `, ` (`; ` for `cookie`), first position kept.
    static func headers(_ headers: [HookHeader], into out: inout [UInt8]) {
        var names: [String] = []
        var values: [String: String] = [:]
        for header in headers {
            let name = header.name.lowercased()
            if let earlier = values[name] {
                values[name] = earlier + (name == "cookie" ? "; " : ", ") + header.value
            } else {
                names.append(name)
                values[name] = header.value
            }
        }
        out.append(UInt8(ascii: "{"))
        for (index, name) in names.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            string(name, into: &out)
            out.append(UInt8(ascii: ":"))
            string(values[name]!, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    struct SyntaxError: Error, CustomStringConvertible {
        var offset: Int
        var description: String { "invalid JSON object at byte \(offset)" }
    }

    /// A flat JSON object (`set_block_with_headers`): its members in order, string values as they
    /// are, numbers and booleans in their JSON spelling; `null` members are left out.
    static func flatObject(_ bytes: [UInt8]) throws(SyntaxError) -> [(String, String)] {
        var reader = Reader(bytes: bytes)
        var members: [(String, String)] = []
        reader.skipSpace()
        try reader.expect(UInt8(ascii: "{"))
        reader.skipSpace()
        if reader.peek == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipSpace()
                let key = try reader.string()
                reader.skipSpace()
                try reader.expect(UInt8(ascii: ":"))
                reader.skipSpace()
                if let value = try reader.scalar() { members.append((key, value)) }
                reader.skipSpace()
                if reader.peek == UInt8(ascii: ",") {
                    reader.index += 1
                    continue
                }
                try reader.expect(UInt8(ascii: "}"))
                break
            }
        }
        reader.skipSpace()
        guard reader.index == bytes.count else { throw SyntaxError(offset: reader.index) }
        return members
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(SyntaxError) {
            guard peek == byte else { throw SyntaxError(offset: index) }
            index += 1
        }

        /// A string, a number, `true`/`false` as text; nil for `null`.
        mutating func scalar() throws(SyntaxError) -> String? {
            guard let byte = peek else { throw SyntaxError(offset: index) }
            if byte == UInt8(ascii: "\"") { return try string() }
            let start = index
            while let next = peek, next != UInt8(ascii: ","), next != UInt8(ascii: "}"), next > 0x20 {
                index += 1
            }
            let word = String(decoding: bytes[start..<index], as: UTF8.self)
            if word == "null" { return nil }
            guard word == "true" || word == "false" || Double(word) != nil else {
                throw SyntaxError(offset: start)
            }
            return word
        }

        mutating func string() throws(SyntaxError) -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while true {
                guard let byte = peek else { throw SyntaxError(offset: index) }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek else { throw SyntaxError(offset: index) }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar), peek == UInt8(ascii: "\\") {
                            index += 1
                            try expect(UInt8(ascii: "u"))
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw SyntaxError(offset: index) }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw SyntaxError(offset: index) }
                        out.append(contentsOf: String(Character(unicode)).utf8)
                    default: throw SyntaxError(offset: index - 1)
                    }
                case 0..<0x20:
                    throw SyntaxError(offset: index - 1)
                default:
                    out.append(byte)
                }
            }
        }

        /// Exactly four hex digits (`UInt32(_:radix:)` would also take a sign: `\u+041`).
        private mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw SyntaxError(offset: index) }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw SyntaxError(offset: index)
                }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }
    }
}
