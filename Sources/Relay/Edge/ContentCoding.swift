/// A response content coding the relay can apply (SPEC §5.2), best first.
enum ContentCoding: UInt8, Sendable, CaseIterable {
    case br, gzip, deflate

    var token: String {
        switch self {
        case .br: "br"
        case .gzip: "gzip"
        case .deflate: "deflate"
        }
    }

    /// The coding to use for a request's `Accept-Encoding` (RFC 9110 §12.5.3): the highest
    /// q-value wins, ties go to br, then gzip, then deflate; `*` stands for every coding not
    /// listed; `q=0` refuses; an `identity` preferred over every coding means none. Nil when the
    /// header is absent or empty, or nothing acceptable remains.
    static func negotiate(_ acceptEncoding: String?) -> ContentCoding? {
        guard let acceptEncoding else { return nil }
        var listed: [ContentCoding: Double] = [:]
        var wildcard: Double?
        var identity: Double?
        for element in acceptEncoding.split(separator: ",") {
            let parts = element.split(separator: ";")
            guard let first = parts.first else { continue }
            let name = first.trimmingSpaces.lowercased()
            guard !name.isEmpty else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, pair[0].trimmingSpaces.lowercased() == "q" else { continue }
                // An unreadable q-value refuses the coding rather than guessing.
                quality = Double(pair[1].trimmingSpaces).map { min(max($0, 0), 1) } ?? 0
            }
            switch name {
            case "br": listed[.br] = max(listed[.br] ?? 0, quality)
            case "gzip", "x-gzip": listed[.gzip] = max(listed[.gzip] ?? 0, quality)
            case "deflate": listed[.deflate] = max(listed[.deflate] ?? 0, quality)
            case "identity": identity = quality
            case "*": wildcard = quality
            default: continue
            }
        }
        var best: (coding: ContentCoding, quality: Double)?
        for coding in allCases {
            let quality = listed[coding] ?? wildcard ?? 0
            if quality > 0, quality > (best?.quality ?? 0) { best = (coding, quality) }
        }
        guard let best else { return nil }
        if let identity, identity > best.quality { return nil }
        return best.coding
    }
}
