// Fuzz target manifest: the manifest loader (Sources/ShipManifest: TOMLKit, the SourceMap scanner
// that finds declaration order and positions, the decoders and validation). The input is the text of
// a ship-manifest.toml.
//
// The package has no manifest printer, so the round trip goes through TOML: the parsed value tree is
// printed back as TOML by this harness (tables in the order the SourceMap says they were declared,
// scalars in the spelling the text used) and loaded again.
//
// Properties, beyond "no crash, no memory error":
// 1. Every diagnostic's position is inside the text.
// 2. The SourceMap saw every value and array element TOMLKit parsed (errors can name a line for each;
//    tables may be implicit).
// 3. Round trip: the printed text parses to the same value tree, its keys in the same declaration order,
//    and loads with the same result: a manifest with the same vessels in the same order, and the same
//    errors and warnings (severity, field path and message; positions, and so their order, may move).

func fuzz(_ input: [UInt8]) {
    guard let text = String(validating: input, as: UTF8.self) else { return }
    let environment = ["PORT": "8080", "HOME": "/home/ship", "EMPTY": ""]
    let first = ManifestLoader.load(text: text, environment: environment)
    // (Loading twice compares the same; it is left out: TOMLKit leaks every parse, and memory is the
    // limit of a long run.)

    // Lines of bytes (in Swift's characters "\r\n" is one, not a "\n").
    let lines = input.split(separator: 10, omittingEmptySubsequences: false).map(\.count)
    for diagnostic in first.diagnostics {
        guard let position = diagnostic.position else { continue }
        require(
            position.line >= 1 && position.line <= lines.count && position.column >= 1
                && position.column <= lines[position.line - 1] + 2,
            "\(diagnostic) at \(position), outside the text (\(lines.count) lines)")
    }

    guard let document = try? TOMLDocument(parsing: text) else { return }
    let map = document.sourceMap
    visit(.table(document.root), at: .root) { path, node in
        // Tables may be implicit (`[a.b]` makes `a` without naming it where it could point).
        if case .table = node { return }
        require(map.position(of: path) != nil, "the SourceMap did not see \(path)")
    }

    var printer = Printer(map: map)
    printer.document(document.root)
    let printed = printer.text
    let again: TOMLDocument
    do {
        again = try TOMLDocument(parsing: printed)
    } catch {
        require(false, "printed TOML does not parse (\(error)):\n\(printed)")
        return
    }
    require(
        sameTree(.table(again.root), .table(document.root)), "printed TOML parses to another tree:\n\(printed)")
    visit(.table(document.root), at: .root) { path, node in
        require(
            map.position(of: path) == nil || again.sourceMap.position(of: path) != nil,
            "the printed text's SourceMap lost \(path)")
        if case .table(let table) = node {
            require(
                declarationOrder(table, at: path, in: map)
                    == declarationOrder(table, at: path, in: again.sourceMap),
                "the printed text declares the keys of \(path) in another order")
        }
    }

    let reloaded = ManifestLoader.load(text: printed, environment: environment)
    // As sets: diagnostics come in text order, and the printer must put a table's plain keys before
    // its sub-tables (a root key written last in the text comes first in the print).
    let before = first.diagnostics.map { "\($0.severity) \($0.path): \($0.message)" }.sorted()
    let after = reloaded.diagnostics.map { "\($0.severity) \($0.path): \($0.message)" }.sorted()
    require(before == after, "printed manifest loads differently:\n\(before)\nvs\n\(after)\n\(printed)")
    require(
        (first.manifest == nil) == (reloaded.manifest == nil)
            && first.manifest?.vessels.map(\.name) == reloaded.manifest?.vessels.map(\.name),
        "printed manifest has other vessels:\n\(printed)")
}

/// Calls `body` with `node` and every key and array element under it, and their paths.
func visit(_ node: TOMLNode, at path: FieldPath, _ body: (FieldPath, TOMLNode) -> Void) {
    body(path, node)
    switch node {
    case .table(let table):
        for (key, value) in table { visit(value, at: path.appending(key), body) }
    case .array(let array):
        for (index, value) in array.enumerated() { visit(value, at: path.appending(index: index), body) }
    default:
        break
    }
}

/// Where `node` at `path` was first declared: the key itself, or for a table never named itself
/// (`[a.b]` makes `a`), the first thing declared in it.
func firstDeclared(_ node: TOMLNode, at path: FieldPath, in map: SourceMap) -> Int {
    var earliest = map.sequence(of: path)
    switch node {
    case .table(let table):
        for (key, value) in table {
            earliest = min(earliest, firstDeclared(value, at: path.appending(key), in: map))
        }
    case .array(let elements):
        for (index, value) in elements.enumerated() {
            earliest = min(earliest, firstDeclared(value, at: path.appending(index: index), in: map))
        }
    default:
        break
    }
    return earliest
}

/// The keys of a table in declaration order.
func declarationOrder(_ table: [String: TOMLNode], at base: FieldPath, in map: SourceMap) -> [String] {
    table.keys.sorted().map { ($0, firstDeclared(table[$0]!, at: base.appending($0), in: map)) }
        .sorted { $0.1 < $1.1 }.map(\.0)
}

/// TOML text for a value tree: `[table]` and `[[array.of.tables]]` sections, other values inline.
/// Sections come in the order the text declared them (so arrays of tables declared in turns, as
/// `[[fleet.web]]`, `[[bays.ws]]`, `[[fleet.web]]`, stay in turns: vessels keep their order).
struct Printer {
    let map: SourceMap
    var text = ""
    private var sections: [(sequence: Int, text: String)] = []

    init(map: SourceMap) { self.map = map }

    mutating func document(_ root: [String: TOMLNode]) {
        sections = []
        table(root, at: [], header: nil)
        // A stable sort: a table before its sub-tables when they tie.
        let body = sections.dropFirst().enumerated().sorted {
            ($0.element.sequence, $0.offset) < ($1.element.sequence, $1.offset)
        }
        text = sections[0].text + body.map(\.element.text).joined()
    }

    private mutating func table(_ table: [String: TOMLNode], at path: [FieldPath.Component], header: String?)
    {
        var lines = header.map { $0 + "\n" } ?? ""
        let keys = ordered(table, at: path)
        var nested: [String] = []
        // Tables declared before the table's last plain key were inline: a header there would move
        // that key into them.
        let lastPlain = keys.lastIndex { !isTableLike(table[$0]!) } ?? -1
        for (position, key) in keys.enumerated() {
            let value = table[key]!
            if isTableLike(value) && position > lastPlain {
                nested.append(key)
            } else {
                lines += Self.key(key) + " = " + inline(value, at: path + [.key(key)]) + "\n"
            }
        }
        sections.append((firstDeclared(.table(table), at: FieldPath(path), in: map), lines))
        for key in nested {
            let childPath = path + [.key(key)]
            let dotted = Self.dotted(childPath)
            switch table[key]! {
            case .table(let child):
                self.table(child, at: childPath, header: "[\(dotted)]")
            case .array(let elements):
                for (index, element) in elements.enumerated() {
                    guard case .table(let child) = element else { continue }
                    self.table(child, at: childPath + [.index(index)], header: "[[\(dotted)]]")
                }
            default:
                break
            }
        }
    }

    func ordered(_ table: [String: TOMLNode], at path: [FieldPath.Component]) -> [String] {
        declarationOrder(table, at: FieldPath(path), in: map)
    }

    /// A table, or a non-empty array of tables: printed under headers.
    func isTableLike(_ node: TOMLNode) -> Bool {
        switch node {
        case .table: return true
        case .array(let elements):
            return !elements.isEmpty && elements.allSatisfy { if case .table = $0 { true } else { false } }
        default: return false
        }
    }

    func inline(_ node: TOMLNode, at path: [FieldPath.Component]) -> String {
        switch node {
        case .table(let table):
            let keys = ordered(table, at: path)
            return "{"
                + keys.map { Self.key($0) + " = " + inline(table[$0]!, at: path + [.key($0)]) }.joined(
                    separator: ", ") + "}"
        case .array(let elements):
            return "["
                + elements.enumerated().map { inline($1, at: path + [.index($0)]) }.joined(separator: ", ")
                + "]"
        case .string(let string):
            return Self.quoted(string)
        case .integer, .float, .boolean, .dateTime:
            if let literal = map.literal(at: FieldPath(path)) { return literal }
            switch node {
            case .integer(let value): return "\(value)"
            case .float(let value):
                if value.isNaN { return "nan" }
                if value.isInfinite { return value < 0 ? "-inf" : "inf" }
                return "\(value)".contains(where: { $0 == "." || $0 == "e" }) ? "\(value)" : "\(value).0"
            case .boolean(let value): return value ? "true" : "false"
            case .dateTime(let value): return value
            default: return ""
            }
        }
    }

    static func key(_ key: String) -> String {
        let bare =
            !key.isEmpty
            && key.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45
                    || $0 == 95
            }
        return bare ? key : quoted(key)
    }

    static func dotted(_ path: [FieldPath.Component]) -> String {
        path.compactMap { if case .key(let key) = $0 { Self.key(key) } else { nil } }.joined(separator: ".")
    }

    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out +=
                        "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Whether two value trees are the same, a `nan` equal to a `nan` (`TOMLNode`'s `==` follows
/// `Double`'s, where it never is: `relay_workers = nan` printed back as `nan` is the same value).
func sameTree(_ lhs: TOMLNode, _ rhs: TOMLNode) -> Bool {
    switch (lhs, rhs) {
    case (.float(let left), .float(let right)):
        return left == right || (left.isNaN && right.isNaN)
    case (.table(let left), .table(let right)):
        return left.count == right.count
            && left.allSatisfy { key, value in right[key].map { sameTree(value, $0) } ?? false }
    case (.array(let left), .array(let right)):
        return left.count == right.count && zip(left, right).allSatisfy { sameTree($0, $1) }
    default:
        return lhs == rhs
    }
}
