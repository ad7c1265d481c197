/// Content types by file extension (SPEC §5.1), and which types are worth compressing (§5.2).
enum MediaType {
    /// The type for a file name's extension; `application/octet-stream` when unknown.
    static func forFile(_ name: Substring) -> String {
        guard let dot = name.lastIndex(of: "."), !name[dot...].contains(where: { $0 == "/" }) else {
            return "application/octet-stream"
        }
        return byExtension[name[name.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }

    static let byExtension: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8",
        "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8", "json": "application/json", "map": "application/json",
        "webmanifest": "application/manifest+json", "xml": "application/xml",
        "txt": "text/plain; charset=utf-8",
        "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8", "svg": "image/svg+xml",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "avif": "image/avif", "ico": "image/x-icon", "bmp": "image/bmp",
        "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
        "wasm": "application/wasm", "pdf": "application/pdf", "zip": "application/zip",
        "gz": "application/gzip", "br": "application/octet-stream", "mp4": "video/mp4", "webm": "video/webm",
        "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "tar": "application/x-tar",
    ]

    /// Text, JSON, JavaScript, XML, SVG and WASM are compressed; never `text/event-stream` (each event
    /// must reach the client when sent), images, audio, video or already compressed archives.
    static func isCompressible(_ contentType: Substring) -> Bool {
        let essence = contentType.prefix { $0 != ";" }.trimmingSpaces.lowercased()
        if essence == "text/event-stream" { return false }
        if essence.hasPrefix("text/") { return true }
        if essence == "image/svg+xml" { return true }
        guard essence.hasPrefix("application/") else { return false }
        let subtype = essence.dropFirst("application/".count)
        return subtype == "json" || subtype.hasSuffix("+json") || subtype == "javascript"
            || subtype == "x-javascript" || subtype == "ecmascript" || subtype == "xml"
            || subtype.hasSuffix("+xml") || subtype == "wasm" || subtype == "manifest+json"
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
