/// What to answer for a static file (SPEC §5.1), from the file's identity and the request's
/// conditional and range headers: a plain value, decided without touching the file.
enum StaticPlan: Equatable {
    /// 200 with the whole file.
    case full
    /// 206 with `range` of the file.
    case partial(ClosedRange<Int>)
    /// 304: the client's copy is current.
    case notModified
    /// 416: no byte of the range exists.
    case unsatisfiable

    /// The request headers that decide.
    struct Conditions: Equatable {
        var ifNoneMatch: String?
        var ifModifiedSince: String?
        var range: String?
        var ifRange: String?
    }

    /// RFC 9110 §13.2.2 order: If-None-Match, else If-Modified-Since; then Range (guarded by
    /// If-Range). A malformed or multi-range `Range` is ignored (the whole file, 200).
    static func decide(etag: String, modified: Int64, size: Int, conditions: Conditions) -> StaticPlan {
        if let ifNoneMatch = conditions.ifNoneMatch {
            if matches(ifNoneMatch, etag: etag) { return .notModified }
        } else if let since = conditions.ifModifiedSince.flatMap(HTTPDate.parse), modified <= since {
            return .notModified
        }
        guard let rangeText = conditions.range else { return .full }
        if let ifRange = conditions.ifRange {
            let trimmed = ifRange.trimmingCharacters()
            if trimmed.hasPrefix("\"") {
                if trimmed != etag { return .full }  // strong comparison only
            } else if HTTPDate.parse(trimmed) != modified {
                return .full
            }
        }
        switch ByteRange.parse(rangeText) {
        case nil: return .full
        case let range?:
            guard let resolved = range.resolve(size: size) else { return .unsatisfiable }
            return resolved == 0...(size - 1) ? .full : .partial(resolved)
        }
    }

    /// `If-None-Match`: `*` or a list of entity tags, compared weakly.
    static func matches(_ header: String, etag: String) -> Bool {
        let ours = etag.hasPrefix("W/") ? etag.dropFirst(2) : Substring(etag)
        for candidate in header.split(separator: ",") {
            var tag = candidate.trimmingSpaces
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            if tag == ours { return true }
        }
        return false
    }

    /// `"<mtime in hex>-<size in hex>"`, as nginx makes it: changes whenever the file does.
    static func etag(modified: Int64, nanoseconds: Int, size: Int) -> String {
        "\"\(String(modified, radix: 16))\(nanoseconds == 0 ? "" : "." + String(nanoseconds, radix: 16))-\(String(size, radix: 16))\""
    }
}

/// One byte range of a `Range: bytes=...` header (RFC 9110 §14.1.2).
enum ByteRange: Equatable {
    /// `first-` or `first-last`.
    case from(Int, through: Int?)
    /// `-count`: the last `count` bytes.
    case suffix(Int)

    /// The single range of a `bytes=` header; nil for anything else (several ranges, another
    /// unit, malformed numbers, `last < first`): the header is then ignored.
    static func parse(_ header: String) -> ByteRange? {
        let text = header.trimmingCharacters()
        guard text.lowercased().hasPrefix("bytes=") else { return nil }
        let spec = text.dropFirst(6).trimmingSpaces
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash].trimmingSpaces
        let last = spec[spec.index(after: dash)...].trimmingSpaces
        func number(_ digits: Substring) -> Int? {
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                return nil
            }
            return Int(digits)
        }
        if first.isEmpty {
            guard let count = number(last) else { return nil }
            return .suffix(count)
        }
        guard let start = number(first) else { return nil }
        if last.isEmpty { return .from(start, through: nil) }
        guard let end = number(last), end >= start else { return nil }
        return .from(start, through: end)
    }

    /// The bytes this range selects of a file of `size`; nil when none (416).
    func resolve(size: Int) -> ClosedRange<Int>? {
        switch self {
        case .from(let start, let end):
            guard start < size else { return nil }
            return start...min(end ?? (size - 1), size - 1)
        case .suffix(let count):
            guard count > 0, size > 0 else { return nil }
            return max(0, size - count)...(size - 1)
        }
    }
}

extension String {
    func trimmingCharacters() -> String { String(Substring(self).trimmingSpaces) }
}
