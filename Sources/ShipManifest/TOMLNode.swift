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
