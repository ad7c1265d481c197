import NIOHTTP1

/// A request's target as the relay matches and forwards it (SPEC §4, RFC 9112 §3.2).
///
/// Static dirs, request modules and routes all match `path`: the one normalised path, so that no
/// spelling of a path walks around a rule written for it (`/%61dmin`, `//admin`, `/./admin`,
/// `/x/../admin` are all `/admin`). The ship gets `forwarded`: the target as the client sent it,
/// except that the absolute form (`GET http://host/x`) becomes the origin form (`/x`).
struct RequestTarget {
    /// What the ship receives as the target (before `strip_prefix`).
    let forwarded: String
    /// The normalised path: unreserved characters percent-decoded (other escapes kept, with
    /// upper-case hex digits), dot segments resolved, repeated slashes merged.
    let path: Substring
    /// The query with its `?`, or empty.
    let query: Substring
    /// The authority of an absolute-form target: the `Host` the ship gets.
    let authority: String?

    enum Refusal: Error, Equatable {
        /// 400, with what is wrong.
        case malformed(String)

        var reason: String {
            switch self {
            case .malformed(let reason): reason
            }
        }
    }

    /// The target of a request whose raw target is `raw`.
    static func parse(_ raw: String, method: HTTPMethod) throws(Refusal) -> RequestTarget {
        var contiguous = raw
        let result = contiguous.withUTF8 { bytes in
            Result { () throws(Refusal) -> RequestTarget in try parse(raw, bytes: bytes, method: method) }
        }
        return try result.get()
    }

    private static func parse(_ raw: String, bytes: UnsafeBufferPointer<UInt8>, method: HTTPMethod)
        throws(Refusal)
        -> RequestTarget
    {
        do {
            guard let first = bytes.first else { throw .malformed("empty request target") }
            if first == slash { return try origin(raw, bytes: bytes, authority: nil) }
            if method.isConnect {
                // The authority form (`CONNECT host:443`): matched as it is; no route starts there.
                return RequestTarget(forwarded: raw, path: raw[...], query: "", authority: nil)
            }
            if bytes.count == 1 && first == asterisk {
                guard case .OPTIONS = method else { throw .malformed("'*' is a target for OPTIONS only") }
                return RequestTarget(forwarded: raw, path: raw[...], query: "", authority: nil)
            }
            return try absolute(bytes)
        }
    }

    /// `/path?query`: the path normalised when it needs to be (one scan when it does not).
    private static func origin(_ raw: String, bytes: UnsafeBufferPointer<UInt8>, authority: String?)
        throws(Refusal)
        -> RequestTarget
    {
        var end = 0
        var plain = true
        var previous: UInt8 = 0
        while end < bytes.count {
            let byte = bytes[end]
            if byte == question { break }
            if byte == percent || (previous == slash && (byte == slash || byte == dot)) { plain = false }
            previous = byte
            end += 1
        }
        if plain && end == bytes.count {
            // No query (most targets): the whole target is the path, with no index arithmetic.
            return RequestTarget(forwarded: raw, path: raw[...], query: "", authority: authority)
        }
        let pathEnd = raw.utf8.index(raw.utf8.startIndex, offsetBy: end)
        let query = raw[pathEnd...]
        if plain {
            return RequestTarget(forwarded: raw, path: raw[..<pathEnd], query: query, authority: authority)
        }
        let normalised = try normalise(UnsafeBufferPointer(rebasing: bytes[0..<end]))
        return RequestTarget(forwarded: raw, path: normalised[...], query: query, authority: authority)
    }

    /// `http://host[:port][/path][?query]` (or `https`): the origin form of its path and query.
    private static func absolute(_ bytes: UnsafeBufferPointer<UInt8>) throws(Refusal) -> RequestTarget {
        let text = String(decoding: bytes, as: UTF8.self)
        let lowered = text.lowercased()
        let schemeLength: Int
        if lowered.hasPrefix("http://") {
            schemeLength = 7
        } else if lowered.hasPrefix("https://") {
            schemeLength = 8
        } else {
            throw .malformed("invalid request target")
        }
        let rest = text.utf8.dropFirst(schemeLength)
        let authorityEnd = rest.firstIndex { $0 == slash || $0 == question } ?? rest.endIndex
        let authority = String(text[rest.startIndex..<authorityEnd])
        guard !authority.isEmpty, HostValue.isValid(authority.utf8),
            !authority.utf8.contains(UInt8(ascii: "@"))
        else {
            throw .malformed("invalid authority in the request target")
        }
        var origin = String(text[authorityEnd...])
        if origin.isEmpty || origin.utf8.first == question { origin = "/" + origin }
        let path = origin
        let result = origin.withUTF8 { originBytes in
            Result { () throws(Refusal) -> RequestTarget in
                try Self.origin(path, bytes: originBytes, authority: authority)
            }
        }
        return try result.get()
    }

    /// RFC 3986 §6.2.2 on a path that starts with `/`; refused when a `..` would climb above the
    /// root, or an escape is malformed or encodes NUL.
    static func normalise(_ bytes: UnsafeBufferPointer<UInt8>) throws(Refusal) -> String {
        var segments: [[UInt8]] = []
        var current: [UInt8] = []
        // Whether the normalised path ends with `/`: an empty last segment, or a dot segment last.
        var trailing = false
        func finish() throws(Refusal) {
            defer { current.removeAll(keepingCapacity: true) }
            trailing = true
            if current.isEmpty || current == [dot] { return }  // `//` merges; `.` goes
            if current == [dot, dot] {
                guard !segments.isEmpty else { throw .malformed("the path climbs above '/'") }
                segments.removeLast()
                return
            }
            segments.append(current)
            trailing = false
        }
        var index = 1  // past the leading `/`
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == slash {
                try finish()
                continue
            }
            guard byte == percent else {
                current.append(byte)
                continue
            }
            guard index + 1 < bytes.count, let high = HexDigit.value(bytes[index]),
                let low = HexDigit.value(bytes[index + 1])
            else {
                throw .malformed("malformed percent-encoding in the path")
            }
            index += 2
            let decoded = high << 4 | low
            if decoded == 0 { throw .malformed("an encoded NUL in the path") }
            if isUnreserved(decoded) {
                current.append(decoded)
            } else {
                current.append(percent)
                current.append(upperHex(high))
                current.append(upperHex(low))
            }
        }
        try finish()
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        for segment in segments {
            result.append(slash)
            result.append(contentsOf: segment)
        }
        if segments.isEmpty || trailing { result.append(slash) }
        return String(decoding: result, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }

    private static func upperHex(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }
}

/// A hexadecimal digit's value (percent-escapes), nil for any other byte.
enum HexDigit {
    static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The characters a `Host` value (or an absolute-form authority) may hold: RFC 3986's reg-name,
/// IP literals and a port (unreserved, sub-delims, `%`, `:`, `[`, `]`).
enum HostValue {
    static func isValid<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        for byte in bytes where !isAllowed(byte) { return false }
        return true
    }

    /// One bit per byte value: a shift and a mask instead of a chain of range comparisons (a
    /// `Host` is checked on every request).
    @inline(__always)
    static func isAllowed(_ byte: UInt8) -> Bool {
        let word = byte < 64 ? allowedBelow64 : (byte < 128 ? allowedFrom64 : 0)
        return (word >> UInt64(byte & 63)) & 1 == 1
    }

    /// `!$%&'()*+,-.` `0-9` `:;=`
    private static let allowedBelow64: UInt64 = 0x2FFF_7FF2_0000_0000
    /// `A-Z` `[` `]` `_` `a-z` `~`
    private static let allowedFrom64: UInt64 = 0x47FF_FFFE_AFFF_FFFE
}

private let slash = UInt8(ascii: "/")
private let dot = UInt8(ascii: ".")
private let percent = UInt8(ascii: "%")
private let question = UInt8(ascii: "?")
private let asterisk = UInt8(ascii: "*")
