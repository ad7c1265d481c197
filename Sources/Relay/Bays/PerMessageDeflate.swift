/// permessage-deflate (RFC 7692) for a bay's clients: which offer of the client's
/// `Sec-WebSocket-Extensions` is accepted (§5, §7.1), and what the answer says. Pure: the upgrade
/// (`boardBay`) asks, the client's handler (`MessageDeflate`) does the compressing.
struct PerMessageDeflate: Equatable, Sendable {
    /// mothership resets its compressor after each message (`server_no_context_takeover`).
    var serverNoContextTakeover = false
    /// The client resets its compressor after each message, so mothership resets its decompressor.
    var clientNoContextTakeover = false
    /// The largest LZ77 window mothership may use, as a power of two (`server_max_window_bits`).
    var serverMaxWindowBits = 15

    /// The answer's `Sec-WebSocket-Extensions` value. `client_max_window_bits` is never declared:
    /// the decompressor keeps a 32 KiB window, which reads what any client window produces.
    var responseValue: String {
        var value = "permessage-deflate"
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if offeredServerMaxWindowBits { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        return value
    }

    /// Whether the offer limited mothership's window (then the answer says so, §7.1.2.1).
    var offeredServerMaxWindowBits = false

    /// The first acceptable permessage-deflate offer among `headers` (the values of every
    /// `Sec-WebSocket-Extensions` field, in order), or nil when there is none. An offer is declined
    /// when a parameter is unknown, repeated or has an invalid value (§7.1), or asks for an 8-bit
    /// window from mothership (zlib's raw deflate cannot produce one).
    static func negotiate(_ headers: [String]) -> PerMessageDeflate? {
        for header in headers {
            for offer in ExtensionOffer.parse(header) where offer.name == "permessage-deflate" {
                if let accepted = accept(offer.parameters) { return accepted }
            }
        }
        return nil
    }

    private static func accept(_ parameters: [(name: String, value: String?)]) -> PerMessageDeflate? {
        var result = PerMessageDeflate()
        var seen: Set<String> = []
        for (name, value) in parameters {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                result.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                result.clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let value, let bits = windowBits(value), bits >= 9 else { return nil }
                result.serverMaxWindowBits = bits
                result.offeredServerMaxWindowBits = true
            case "client_max_window_bits":
                // Without a value: the client can take a limit; with one, it is a hint (§7.1.2.2).
                if let value, windowBits(value) == nil { return nil }
            default:
                return nil
            }
        }
        return result
    }

    /// 8...15 written as plain decimal digits (§7.1.2.1: no leading zero, no sign).
    private static func windowBits(_ value: String) -> Int? {
        guard let first = value.utf8.first, first != UInt8(ascii: "0"),
            value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }
}

/// One offer of a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1): a name and its parameters,
/// each a token with an optional token or quoted-string value. Names are compared lower-case.
struct ExtensionOffer: Equatable {
    let name: String
    let parameters: [(name: String, value: String?)]

    static func == (lhs: ExtensionOffer, rhs: ExtensionOffer) -> Bool {
        lhs.name == rhs.name && lhs.parameters.map(\.name) == rhs.parameters.map(\.name)
            && lhs.parameters.map(\.value) == rhs.parameters.map(\.value)
    }

    /// The offers in one header value, split at commas outside quotes. An offer that does not
    /// parse (an empty name, an unterminated quote) is left out, so the next one may be accepted.
    static func parse(_ header: String) -> [ExtensionOffer] {
        var offers: [ExtensionOffer] = []
        for element in split(header, at: ",") {
            let pieces = split(element, at: ";")
            guard let first = pieces.first else { continue }
            let name = trimmed(first).lowercased()
            guard isToken(name) else { continue }
            var parameters: [(name: String, value: String?)] = []
            var valid = true
            for piece in pieces.dropFirst() {
                let text = trimmed(piece)
                let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let parameter = trimmed(parts[0]).lowercased()
                guard isToken(parameter) else {
                    valid = false
                    break
                }
                guard parts.count == 2 else {
                    parameters.append((parameter, nil))
                    continue
                }
                var value = trimmed(parts[1])
                if value.hasPrefix("\"") {
                    guard value.count >= 2, value.hasSuffix("\"") else {
                        valid = false
                        break
                    }
                    value = String(value.dropFirst().dropLast()).replacingBackslashEscapes()
                }
                // §7.1: a quoted value must still be a token once unquoted.
                guard isToken(value) else {
                    valid = false
                    break
                }
                parameters.append((parameter, value))
            }
            if valid { offers.append(ExtensionOffer(name: name, parameters: parameters)) }
        }
        return offers
    }

    /// `text` split at `separator` where it is not inside a quoted string.
    private static func split(_ text: some StringProtocol, at separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
            } else if quoted && character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == separator && !quoted {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }

    private static func trimmed(_ text: some StringProtocol) -> String {
        String(Substring(text).trimmingWhitespace())
    }

    /// RFC 7230 §3.2.6's token: one or more visible characters other than separators.
    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                byte > 0x20 && byte < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
            }
    }
}

extension String {
    /// A quoted-string's content with its `\x` pairs resolved.
    fileprivate func replacingBackslashEscapes() -> String {
        var result = ""
        var escaped = false
        for character in self {
            if !escaped && character == "\\" {
                escaped = true
                continue
            }
            escaped = false
            result.append(character)
        }
        return result
    }
}
