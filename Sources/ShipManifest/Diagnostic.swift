/// A place in the manifest text, 1-based.
public struct SourcePosition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// One problem found in a manifest: an error (the manifest is refused) or a warning (reported, not fatal).
///
/// `path` names the offending field (`fleet.web[0].routes[1].bind`); `position` is where the TOML text
/// puts it, when known. The CLI prints `FILE:LINE:COL: error: PATH: MESSAGE`.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
    }

    public var severity: Severity
    public var path: FieldPath
    public var message: String
    public var position: SourcePosition?

    public init(
        _ severity: Severity, _ path: FieldPath, _ message: String, at position: SourcePosition? = nil
    ) {
        self.severity = severity
        self.path = path
        self.message = message
        self.position = position
    }

    /// `error: fleet.web[0].depend_on: unknown key ...` (no file, no position).
    public var description: String {
        path.isRoot ? "\(severity.rawValue): \(message)" : "\(severity.rawValue): \(path): \(message)"
    }

    /// The full line the CLI prints: `FILE:LINE:COL: error: PATH: MESSAGE`.
    public func rendered(file: String) -> String {
        if let position {
            return "\(file):\(position.line):\(position.column): \(description)"
        }
        return "\(file): \(description)"
    }
}

extension Array where Element == Diagnostic {
    public var errors: [Diagnostic] { filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { filter { $0.severity == .warning } }
    public var hasErrors: Bool { contains { $0.severity == .error } }
}
