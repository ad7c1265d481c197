import TOMLKit

/// A parsed TOML value, detached from TOMLKit's reference types so it can cross concurrency domains.
public indirect enum TOMLNode: Sendable, Equatable {
    case table([String: TOMLNode])
    case array([TOMLNode])
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    /// Dates and times, kept as text: the manifest has no date fields.
    case dateTime(String)

    /// The word used in type errors: "expected a string, found an integer".
    public var kindDescription: String {
        switch self {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a float"
        case .boolean: "a boolean"
        case .dateTime: "a date/time"
        }
    }
}

/// The text of a manifest parsed into a value tree plus the map of where everything stands.
public struct TOMLDocument: Sendable {
    public var root: [String: TOMLNode]
    public var sourceMap: SourceMap

    /// A TOML syntax error, with the position the parser reports.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var position: SourcePosition

        public var description: String { "\(position): \(message)" }
    }

    public init(parsing text: String) throws(SyntaxError) {
        let bytes = Array(text.utf8)
        // TOMLKit hands toml++ a C string, which ends at the first NUL: the rest of the text would go
        // unread (and unchecked) while the SourceMap scans it. TOML allows no NUL byte anywhere.
        if let nul = bytes.firstIndex(of: 0) {
            let lineStart = bytes[..<nul].lastIndex(of: 10).map { $0 + 1 } ?? 0
            throw SyntaxError(
                message: "a NUL byte is not allowed in TOML",
                position: SourcePosition(
                    line: bytes[..<nul].count { $0 == 10 } + 1, column: nul - lineStart + 1))
        }
        // toml++ (in TOMLKit 0.6.0) asserts, and aborts the process, on a table header whose name
        // starts with anything but a key character or a quote (`[#`, `[.a]`, `[[ =`), and on an array
        // element that starts with `}` or a non-ASCII whitespace (`[}]`); refused here first.
        if let error = HeaderScan.badTableName(in: bytes) { throw error }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw SyntaxError(
                message: error.description,
                position: SourcePosition(line: error.source.begin.line, column: error.source.begin.column))
        } catch {
            throw SyntaxError(message: "\(error)", position: SourcePosition(line: 1, column: 1))
        }
        guard case .table(let root) = Self.convert(table) else {
            preconditionFailure("a TOML document is a table")
        }
        self.root = root
        self.sourceMap = SourceMap(scanning: text)
    }

    static func convert(_ value: any TOMLValueConvertible) -> TOMLNode {
        switch value.type {
        case .table:
            let table = value.table!
            var entries: [String: TOMLNode] = [:]
            for key in table.keys {
                if let child = table[key] { entries[key] = convert(child) }
            }
            return .table(entries)
        case .array:
            return .array(value.array!.map { convert($0) })
        case .string:
            return .string(value.string!)
        case .int:
            return .integer(value.int!)
        case .double:
            return .float(value.double!)
        case .bool:
            return .boolean(value.bool!)
        case .date, .time, .dateTime:
            return .dateTime(value.debugDescription)
        }
    }
}

/// Finds the table headers of a TOML text the way toml++ meets them (a `[` that starts a line outside
/// any string, array or inline table), and the elements of its arrays, to refuse what it cannot take:
/// a header name that starts with neither a key character nor a quote, an array element that starts
/// with `}` or a non-ASCII character, where toml++ asserts instead of reporting an error.
enum HeaderScan {
    static func badTableName(in bytes: [UInt8]) -> TOMLDocument.SyntaxError? {
        var index = 0
        var depth = 0  // open arrays and inline tables of values
        var lineStart = true
        var line = 1
        var lineOffset = 0
        let count = bytes.count
        func at(_ offset: Int) -> UInt8? { offset < count ? bytes[offset] : nil }
        if at(0) == 0xEF && at(1) == 0xBB && at(2) == 0xBF { index = 3 }  // toml++ skips a UTF-8 BOM
        func newline(at offset: Int) {
            line += 1
            lineOffset = offset + 1
        }
        /// Whether the arrays and inline tables open are arrays (innermost last).
        var arrays: [Bool] = []
        /// An array element that starts with `}` or a non-ASCII byte (after spaces, newlines and
        /// comments): toml++ asserts on some (`[}`, `[1, }`, U+2028), and no TOML value starts so.
        func badElement(from start: Int) -> TOMLDocument.SyntaxError? {
            var offset = start
            var elementLine = line
            var elementLineOffset = lineOffset
            while offset < count {
                let byte = bytes[offset]
                if byte == 32 || byte == 9 {
                    offset += 1
                } else if byte == 10 || (byte == 13 && at(offset + 1) == 10) {
                    offset += byte == 10 ? 1 : 2
                    elementLine += 1
                    elementLineOffset = offset
                } else if byte == 35 {  // '#'
                    while offset < count && bytes[offset] != 10 { offset += 1 }
                } else {
                    break
                }
            }
            guard let byte = at(offset), byte == 125 || byte >= 0x80 else { return nil }
            return TOMLDocument.SyntaxError(
                message:
                    "Error while parsing array: expected a value, saw '\(byte == 125 ? "}" : "a non-ASCII character")'",
                position: SourcePosition(line: elementLine, column: offset - elementLineOffset + 1))
        }
        /// Skips a string starting at `index` (its opening quote), counting the lines it spans.
        func skipString() {
            let quote = bytes[index]
            let multiLine = at(index + 1) == quote && at(index + 2) == quote
            index += multiLine ? 3 : 1
            while index < count {
                let byte = bytes[index]
                if byte == 92 && quote == 34 {  // a backslash escapes the next byte in basic strings
                    if at(index + 1) == 10 { newline(at: index + 1) }
                    index += 2
                    continue
                }
                if byte == 10 {
                    if !multiLine { return }  // an unterminated string: toml++ reports it
                    newline(at: index)
                }
                if byte == quote {
                    if !multiLine {
                        index += 1
                        return
                    }
                    if at(index + 1) == quote && at(index + 2) == quote {
                        index += 3
                        // Up to two more quotes belong to the content (`""""` ends with one).
                        var extra = 0
                        while extra < 2 && at(index) == quote {
                            index += 1
                            extra += 1
                        }
                        return
                    }
                }
                index += 1
            }
        }
        while index < count {
            if lineStart && depth == 0 {
                lineStart = false
                while at(index) == 32 || at(index) == 9 { index += 1 }
                if at(index) == 91 {  // '[': a table header
                    var name = index + 1
                    while at(name) == 32 || at(name) == 9 { name += 1 }
                    if at(name) == 91 && name == index + 1 {  // '[[' (toml++ refuses `[ [` itself)
                        name += 1
                        while at(name) == 32 || at(name) == 9 { name += 1 }
                    }
                    if let byte = at(name), byte != 93, byte != 34, byte != 39, !isBareKeyByte(byte) {
                        let shown =
                            byte >= 32 && byte < 127
                            ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
                        return TOMLDocument.SyntaxError(
                            message:
                                "Error while parsing table header: expected bare key starting character or string delimiter, saw '\(shown)'",
                            position: SourcePosition(line: line, column: name - lineOffset + 1))
                    }
                    // The rest of the header line: its name may hold quoted `]` or `#`.
                    index += 1
                    while index < count && bytes[index] != 10 {
                        if bytes[index] == 34 || bytes[index] == 39 {
                            skipString()
                        } else if bytes[index] == 35 {  // '#': a comment to the end of the line
                            while index < count && bytes[index] != 10 { index += 1 }
                        } else {
                            index += 1
                        }
                    }
                    continue
                }
                continue
            }
            switch bytes[index] {
            case 35:  // '#'
                while index < count && bytes[index] != 10 { index += 1 }
            case 10:
                newline(at: index)
                if depth == 0 { lineStart = true }
                index += 1
            case 34, 39:
                skipString()
            case 91, 123:  // '[', '{'
                depth += 1
                arrays.append(bytes[index] == 91)
                index += 1
                if bytes[index - 1] == 91, let error = badElement(from: index) { return error }
            case 93, 125:  // ']', '}'
                depth = max(0, depth - 1)
                _ = arrays.popLast()
                index += 1
            case 44:  // ','
                index += 1
                if arrays.last == true, let error = badElement(from: index) { return error }
            default:
                index += 1
            }
        }
        return nil
    }

    private static func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
