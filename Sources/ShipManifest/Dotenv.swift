/// Parses `.env` files (dotenv syntax, as foreman and overmind read them).
///
/// Pure: the caller passes the file's text and the environment `${VAR}` falls back to.
///
/// - `KEY=VALUE`, optionally after `export `; blank lines and lines starting with `#` are skipped.
/// - Unquoted values are trimmed; ` #` (a `#` after whitespace) starts a comment.
/// - `'single quotes'` are literal.
/// - `"double quotes"` understand `\n`, `\t`, `\r`, `\"`, `\\`, `\$` and `${VAR}`, which expands to a
///   variable defined earlier in the file, else from the given environment, else to nothing.
/// - CRLF line ends are accepted. A line without `=`, a bad name or an unterminated quote is an error
///   naming the line.
public enum Dotenv {
    public struct Entry: Equatable, Sendable {
        public var key: String
        public var value: String
        /// 1-based.
        public var line: Int

        public init(key: String, value: String, line: Int) {
            self.key = key
            self.value = value
            self.line = line
        }
    }

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// 1-based.
        public var line: Int
        public var message: String

        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }

        public var description: String { "line \(line): \(message)" }
    }

    public struct Parsed: Equatable, Sendable {
        public var entries: [Entry]
        public var failures: [Failure]

        /// The variables, a later definition of a key winning over an earlier one.
        public var values: [String: String] {
            var values: [String: String] = [:]
            for entry in entries { values[entry.key] = entry.value }
            return values
        }
    }

    public static func parse(_ text: String, environment: [String: String] = [:]) -> Parsed {
        var entries: [Entry] = []
        var failures: [Failure] = []
        var defined: [String: String] = [:]
        for (offset, rawLine) in lines(of: text).enumerated() {
            let number = offset + 1
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            line = line.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.first == "#" { continue }
            if line.hasPrefix("export"), let next = line.dropFirst(6).first, next == " " || next == "\t" {
                line = line.dropFirst(6).drop { $0 == " " || $0 == "\t" }
            }
            guard let equals = line.firstIndex(of: "=") else {
                failures.append(Failure(line: number, message: "expected KEY=VALUE, found '\(line)'"))
                continue
            }
            let key = String(line[..<equals].reversed().drop { $0 == " " || $0 == "\t" }.reversed())
            guard isValidKey(key) else {
                failures.append(
                    Failure(
                        line: number,
                        message:
                            "invalid variable name '\(key)': use ASCII letters, digits and '_', not starting with a digit"
                    ))
                continue
            }
            let rest = line[line.index(after: equals)...].drop { $0 == " " || $0 == "\t" }
            let lookup = { (name: String) -> String in defined[name] ?? environment[name] ?? "" }
            switch value(rest, lookup: lookup) {
            case .success(let value):
                defined[key] = value
                entries.append(Entry(key: key, value: value, line: number))
            case .failure(let message):
                failures.append(Failure(line: number, message: message))
            }
        }
        return Parsed(entries: entries, failures: failures)
    }

    enum ValueResult {
        case success(String)
        case failure(String)
    }

    static func value(_ text: Substring, lookup: (String) -> String) -> ValueResult {
        guard let first = text.first else { return .success("") }
        switch first {
        case "'":
            let body = text.dropFirst()
            guard let close = body.firstIndex(of: "'") else {
                return .failure("unterminated single quote")
            }
            if let problem = trailing(body[body.index(after: close)...]) { return .failure(problem) }
            return .success(String(body[..<close]))
        case "\"":
            var output = ""
            var index = text.index(after: text.startIndex)
            while index < text.endIndex {
                let character = text[index]
                if character == "\"" {
                    if let problem = trailing(text[text.index(after: index)...]) { return .failure(problem) }
                    return .success(output)
                }
                if character == "\\" {
                    let next = text.index(after: index)
                    guard next < text.endIndex else { break }
                    switch text[next] {
                    case "n": output.append("\n")
                    case "t": output.append("\t")
                    case "r": output.append("\r")
                    case "\"": output.append("\"")
                    case "\\": output.append("\\")
                    case "$": output.append("$")
                    case let other:
                        output.append("\\")
                        output.append(other)
                    }
                    index = text.index(after: next)
                    continue
                }
                if character == "$", text[index...].hasPrefix("${"),
                    let close = text[index...].firstIndex(of: "}")
                {
                    let name = String(text[text.index(index, offsetBy: 2)..<close])
                    if isValidKey(name) {
                        output += lookup(name)
                        index = text.index(after: close)
                        continue
                    }
                }
                output.append(character)
                index = text.index(after: index)
            }
            return .failure("unterminated double quote")
        default:
            var end = text.endIndex
            var previous: Character?
            for index in text.indices {
                if text[index] == "#", previous == " " || previous == "\t" {
                    end = index
                    break
                }
                previous = text[index]
            }
            let value = text[..<end].reversed().drop { $0 == " " || $0 == "\t" }.reversed()
            return .success(String(value))
        }
    }

    /// After a closing quote only whitespace and a comment may follow.
    static func trailing(_ text: Substring) -> String? {
        let rest = text.drop { $0 == " " || $0 == "\t" }
        if rest.isEmpty || rest.first == "#" { return nil }
        return "unexpected text '\(rest)' after the closing quote"
    }

    static func isValidKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F
        }
    }

    /// Lines split at LF and CRLF (one `Character` in Swift, so splitting at "\n" alone misses it).
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    }
}
