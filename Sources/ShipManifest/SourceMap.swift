/// Where each key, table and array element of a TOML document stands, and in which order they were
/// declared.
///
/// TOMLKit returns table keys sorted and carries no positions for values, but routes are matched in
/// declaration order and errors must name a line. This is a light scanner over text that TOMLKit has
/// already accepted: it does not validate, it only follows headers, keys, arrays and inline tables.
public struct SourceMap: Sendable {
    struct Entry: Sendable {
        var position: SourcePosition
        var sequence: Int
    }

    private var entries: [FieldPath: Entry] = [:]
    /// The literal text of scalar values (numbers, booleans, dates), for "TOML spelling" of config values.
    private var scalars: [FieldPath: String] = [:]
    private var nextSequence = 0

    public init() {}

    public init(scanning text: String) {
        var scanner = Scanner(bytes: Array(text.utf8))
        scanner.scanDocument()
        self = scanner.map
    }

    /// The position of the key, header or element at `path`, if the scanner saw it.
    public func position(of path: FieldPath) -> SourcePosition? {
        entries[path]?.position
    }

    /// The nearest known position: that of `path`, else of its closest enclosing field.
    public func nearestPosition(of path: FieldPath) -> SourcePosition? {
        var components = path.components
        while true {
            if let entry = entries[FieldPath(components)] { return entry.position }
            if components.isEmpty { return nil }
            components.removeLast()
        }
    }

    /// Declaration order of `path` (smaller is earlier); unknown paths sort last.
    public func sequence(of path: FieldPath) -> Int {
        entries[path]?.sequence ?? Int.max
    }

    /// The literal spelling of a scalar value (`1_000`, `3.0`, `true`) as written in the text.
    public func literal(at path: FieldPath) -> String? {
        scalars[path]
    }

    /// Keys of a table, in declaration order (keys the scanner did not see keep their relative order, last).
    public func ordered(keys: some Sequence<String>, in table: FieldPath) -> [String] {
        keys.enumerated()
            .sorted { lhs, rhs in
                let left = sequence(of: table.appending(lhs.element))
                let right = sequence(of: table.appending(rhs.element))
                return left == right ? lhs.offset < rhs.offset : left < right
            }
            .map(\.element)
    }

    mutating func record(_ path: FieldPath, _ position: SourcePosition) {
        guard entries[path] == nil else { return }
        entries[path] = Entry(position: position, sequence: nextSequence)
        nextSequence += 1
    }

    mutating func recordScalar(_ path: FieldPath, _ literal: String) {
        scalars[path] = literal
    }
}

private struct Scanner {
    let bytes: [UInt8]
    var index = 0
    var line = 1
    var lineStart = 0
    var map = SourceMap()
    /// Array-of-tables paths (printed) and how many elements each has so far.
    var arrayTables: [FieldPath: Int] = [:]
    var currentTable = FieldPath.root

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    var position: SourcePosition { SourcePosition(line: line, column: index - lineStart + 1) }
    var atEnd: Bool { index >= bytes.count }
    var current: UInt8 { bytes[index] }

    func peek(_ offset: Int) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        index += 1
    }

    mutating func skipSpaces() {
        while !atEnd, current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") { advance() }
    }

    mutating func skipComment() {
        if !atEnd, current == UInt8(ascii: "#") {
            while !atEnd, current != UInt8(ascii: "\n") { advance() }
        }
    }

    /// Skips spaces, newlines and comments (inside arrays).
    mutating func skipTrivia() {
        while !atEnd {
            switch current {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): advance()
            case UInt8(ascii: "#"): skipComment()
            default: return
            }
        }
    }

    mutating func skipToNextLine() {
        while !atEnd, current != UInt8(ascii: "\n") { advance() }
    }

    mutating func scanDocument() {
        while true {
            skipTrivia()
            if atEnd { return }
            if current == UInt8(ascii: "[") {
                scanHeader()
            } else {
                scanKeyValue(in: currentTable)
            }
            skipToNextLine()
        }
    }

    mutating func scanHeader() {
        let start = position
        let isArray = peek(1) == UInt8(ascii: "[")
        advance()
        if isArray { advance() }
        skipSpaces()
        let keys = scanKey()
        // Resolve array-of-tables prefixes: `[fleet.web.env]` means the last `fleet.web` element.
        var path = FieldPath.root
        for (offset, key) in keys.enumerated() {
            path = path.appending(key)
            let isLast = offset == keys.count - 1
            if isLast && isArray {
                let count = arrayTables[path, default: 0]
                map.record(path, start)
                arrayTables[path] = count + 1
                path = path.appending(index: count)
            } else if let count = arrayTables[path] {
                path = path.appending(index: count - 1)
            }
        }
        map.record(path, start)
        currentTable = path
    }

    /// Reads a possibly dotted key (`a."b c".d`), stopping before `=` or `]`.
    mutating func scanKey() -> [String] {
        var keys: [String] = []
        while !atEnd {
            skipSpaces()
            if atEnd { break }
            switch current {
            case UInt8(ascii: "\""):
                keys.append(scanBasicString())
            case UInt8(ascii: "'"):
                keys.append(scanLiteralString())
            default:
                let begin = index
                while !atEnd, isBareKeyByte(current) { advance() }
                keys.append(String(decoding: bytes[begin..<index], as: UTF8.self))
            }
            skipSpaces()
            if !atEnd, current == UInt8(ascii: ".") {
                advance()
                continue
            }
            break
        }
        return keys
    }

    func isBareKeyByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x2D || byte == 0x5F
    }

    mutating func scanKeyValue(in table: FieldPath) {
        let start = position
        let keys = scanKey()
        var path = table
        for key in keys {
            path = path.appending(key)
            map.record(path, start)
        }
        skipSpaces()
        if !atEnd, current == UInt8(ascii: "=") { advance() }
        skipSpaces()
        scanValue(at: path)
    }

    mutating func scanValue(at path: FieldPath) {
        guard !atEnd else { return }
        map.record(path, position)
        switch current {
        case UInt8(ascii: "\""):
            _ = scanBasicString()
        case UInt8(ascii: "'"):
            _ = scanLiteralString()
        case UInt8(ascii: "["):
            scanArray(at: path)
        case UInt8(ascii: "{"):
            scanInlineTable(at: path)
        default:
            let begin = index
            while !atEnd {
                let byte = current
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}")
                    || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "#") || byte == UInt8(ascii: "\r")
                {
                    break
                }
                advance()
            }
            var end = index
            while end > begin, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") {
                end -= 1
            }
            map.recordScalar(path, String(decoding: bytes[begin..<end], as: UTF8.self))
        }
    }

    mutating func scanArray(at path: FieldPath) {
        advance()  // [
        var element = 0
        while true {
            skipTrivia()
            if atEnd { return }
            if current == UInt8(ascii: "]") {
                advance()
                return
            }
            if current == UInt8(ascii: ",") {
                advance()
                continue
            }
            let before = index
            scanValue(at: path.appending(index: element))
            element += 1
            // Text TOMLKit accepted always moves on; anything else must not stop the scan here.
            if index == before { advance() }
        }
    }

    mutating func scanInlineTable(at path: FieldPath) {
        advance()  // {
        while true {
            skipTrivia()
            if atEnd { return }
            if current == UInt8(ascii: "}") {
                advance()
                return
            }
            if current == UInt8(ascii: ",") {
                advance()
                continue
            }
            let before = index
            scanKeyValue(in: path)
            if index == before { advance() }  // as in scanArray
        }
    }

    /// Reads a basic string (single-line or multi-line) and returns its content with simple escapes resolved.
    mutating func scanBasicString() -> String {
        if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
            advance()
            advance()
            advance()
            var content: [UInt8] = []
            while !atEnd {
                if current == UInt8(ascii: "\\") {
                    advance()
                    if !atEnd { advance() }
                    continue
                }
                if current == UInt8(ascii: "\""), peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"")
                {
                    advance()
                    advance()
                    advance()
                    // Up to two more quotes belong to the content (`""""` ends with one quote inside).
                    while !atEnd, current == UInt8(ascii: "\"") { advance() }
                    break
                }
                content.append(current)
                advance()
            }
            return String(decoding: content, as: UTF8.self)
        }
        advance()
        var content: [UInt8] = []
        while !atEnd, current != UInt8(ascii: "\""), current != UInt8(ascii: "\n") {
            if current == UInt8(ascii: "\\") {
                advance()
                guard !atEnd else { break }
                switch current {
                case UInt8(ascii: "n"): content.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): content.append(UInt8(ascii: "\t"))
                default: content.append(current)
                }
                advance()
                continue
            }
            content.append(current)
            advance()
        }
        if !atEnd, current == UInt8(ascii: "\"") { advance() }
        return String(decoding: content, as: UTF8.self)
    }

    mutating func scanLiteralString() -> String {
        if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
            advance()
            advance()
            advance()
            let begin = index
            while !atEnd {
                if current == UInt8(ascii: "'"), peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                    let end = index
                    advance()
                    advance()
                    advance()
                    while !atEnd, current == UInt8(ascii: "'") { advance() }
                    return String(decoding: bytes[begin..<end], as: UTF8.self)
                }
                advance()
            }
            return String(decoding: bytes[begin..<index], as: UTF8.self)
        }
        advance()
        let begin = index
        while !atEnd, current != UInt8(ascii: "'"), current != UInt8(ascii: "\n") { advance() }
        let content = String(decoding: bytes[begin..<index], as: UTF8.self)
        if !atEnd, current == UInt8(ascii: "'") { advance() }
        return content
    }
}
