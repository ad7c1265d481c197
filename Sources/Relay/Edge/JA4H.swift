import Crypto

/// The JA4H fingerprint of an HTTP request (SPEC §5.5; FoxIO's JA4H): which client, by what it
/// sends and in what order, independent of the values that change per request.
///
/// `ge11cr09enus_df50b14dec48_d733b88e2d70_774e52af4cfe` reads: GET, HTTP/1.1, has a Cookie, has a
/// Referer, 9 other headers, Accept-Language `en-US`; then the first 12 hex digits of SHA-256 over
/// the other headers' names in received order, over the sorted cookie names, and over the sorted
/// cookie `name=value` pairs.
///
/// A plain value: the relay computes it only when something reads it (a debug log line, a payload
/// module), never on the plain proxy path.
public struct JA4H: Sendable, Equatable, CustomStringConvertible {
    /// `ge11cr09enus`: method, version, cookie and referer flags, header count, language.
    public let prefix: String
    /// The header names part b hashes: received order, original case, without Cookie and Referer.
    public let headerNames: [String]
    /// Cookie names, sorted (part c).
    public let cookieNames: [String]
    /// Cookie `name=value` pairs as sent, sorted (part d).
    public let cookiePairs: [String]

    /// The fingerprint: `prefix_hash(names)_hash(cookie names)_hash(cookie pairs)`.
    public var description: String {
        "\(prefix)_\(Self.hash12(headerNames))_\(Self.hash12(cookieNames))_\(Self.hash12(cookiePairs))"
    }

    /// The unhashed form (FoxIO's `JA4H_ro`), for reading a fingerprint in a debug log.
    public var raw: String {
        [
            prefix, headerNames.joined(separator: ","), cookieNames.joined(separator: ","),
            cookiePairs.joined(separator: ","),
        ].joined(separator: "_")
    }

    /// - Parameters:
    ///   - method: the request method as sent (`GET`).
    ///   - version: `"10"`, `"11"` or `"20"`.
    ///   - headers: name and value of every header line, in received order, names in their original case.
    public init(method: String, version: String, headers: [(name: String, value: String)]) {
        var names: [String] = []
        var cookies: [Substring] = []
        var hasCookie = false
        var hasReferer = false
        var language: String?
        for (name, value) in headers {
            switch name.lowercased() {
            case "cookie":
                hasCookie = true
                cookies += Self.cookieSegments(value)
            case "referer":
                hasReferer = true
            case "accept-language":
                if language == nil { language = value }
                names.append(name)
            default:
                names.append(name)
            }
        }
        let count = min(names.count, 99)
        prefix =
            Self.methodCode(method) + version + (hasCookie ? "c" : "n") + (hasReferer ? "r" : "n")
            + (count < 10 ? "0\(count)" : "\(count)") + Self.languageCode(language)
        headerNames = names
        cookieNames = cookies.map { segment in
            String(segment[..<(segment.firstIndex(of: "=") ?? segment.endIndex)])
        }.sorted(by: Self.byteOrder)
        cookiePairs = cookies.map(String.init).sorted(by: Self.byteOrder)
    }

    /// Two lower-case letters of the method (`ge`, `po`, `op`, ...), padded with `0`.
    static func methodCode(_ method: String) -> String {
        let code = method.prefix(2).lowercased()
        return code + String(repeating: "0", count: 2 - code.count)
    }

    /// The first Accept-Language tag: up to the first `,` or `;`, dashes removed, lower-case, its
    /// first four characters padded with `0`; `0000` when absent. This is FoxIO's reference
    /// reading (`es-419` gives `es41`), so fingerprints compare with published ones; SPEC §5.5's
    /// "letters only" would give `es00` there and match no other implementation.
    static func languageCode(_ value: String?) -> String {
        guard let value else { return "0000" }
        let tag = value.prefix { $0 != "," && $0 != ";" }.filter { $0 != "-" }.lowercased()
        let code = tag.prefix(4)
        return code + String(repeating: "0", count: 4 - code.count)
    }

    /// A Cookie header's `name=value` segments, split at `;`, trimmed, empty ones dropped.
    static func cookieSegments(_ value: String) -> [Substring] {
        value.split(separator: ";").compactMap { segment in
            let trimmed = segment.drop { $0 == " " || $0 == "\t" }
            let end = trimmed.lastIndex { $0 != " " && $0 != "\t" }
            guard let end else { return nil }
            return trimmed[...end]
        }
    }

    /// Strings in byte order (what the reference's sort gives for the ASCII a header carries).
    static func byteOrder(_ first: String, _ second: String) -> Bool {
        first.utf8.lexicographicallyPrecedes(second.utf8)
    }

    /// The first 12 hex digits of SHA-256 over the list joined by `,`; twelve zeros for an empty list.
    static func hash12(_ items: [String]) -> String {
        guard !items.isEmpty else { return "000000000000" }
        let digest = SHA256.hash(data: Array(items.joined(separator: ",").utf8))
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(12)
        for byte in digest.prefix(6) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension JA4H {
    /// The fingerprint of a request head the relay parsed (HTTP/1.0 or 1.1).
    init(_ head: MessageHead) {
        let methodEnd = head.bytes.withUnsafeReadableBytes { bytes in
            bytes.firstIndex(of: UInt8(ascii: " ")) ?? 0
        }
        self.init(
            method: head.string(0..<methodEnd), version: head.minorVersion == 1 ? "11" : "10",
            headers: head.fields.map { (name: head.string($0.name), value: head.string($0.value)) })
    }
}
