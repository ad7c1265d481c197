/// Collects every problem found while reading a manifest, with positions from the source map.
final class DecodeContext {
    let sourceMap: SourceMap
    private(set) var diagnostics: [Diagnostic] = []

    init(sourceMap: SourceMap) {
        self.sourceMap = sourceMap
    }

    func error(_ path: FieldPath, _ message: String) {
        diagnostics.append(Diagnostic(.error, path, message, at: sourceMap.nearestPosition(of: path)))
    }

    func warning(_ path: FieldPath, _ message: String) {
        diagnostics.append(Diagnostic(.warning, path, message, at: sourceMap.nearestPosition(of: path)))
    }
}

/// Reads one TOML table of the manifest: typed accessors that report type errors at the field's path,
/// and a check for unknown keys that suggests the nearest known one.
struct TableReader {
    let path: FieldPath
    let entries: [String: TOMLNode]
    let context: DecodeContext

    init(path: FieldPath, entries: [String: TOMLNode], context: DecodeContext) {
        self.path = path
        self.entries = entries
        self.context = context
    }

    /// Keys in declaration order.
    var keys: [String] { context.sourceMap.ordered(keys: entries.keys.sorted(), in: path) }

    func contains(_ key: String) -> Bool { entries[key] != nil }

    /// Reports every key not in `allowed`, suggesting the closest allowed key.
    func rejectUnknownKeys(allowed: [String], section: String? = nil) {
        for key in keys where !allowed.contains(key) {
            var message = "unknown key '\(key)'"
            if let section { message += " in \(section)" }
            if let suggestion = Suggestion.nearest(to: key, in: allowed) {
                message += "; did you mean '\(suggestion)'?"
            } else {
                message += "; known keys: \(allowed.joined(separator: ", "))"
            }
            context.error(path.appending(key), message)
        }
    }

    func typeError(_ key: String, expected: String, found node: TOMLNode) {
        context.error(path.appending(key), "expected \(expected), found \(node.kindDescription)")
    }

    func missing(_ key: String, _ what: String? = nil) {
        let subject = what.map { " (\($0))" } ?? ""
        context.error(path.appending(key), "missing required field '\(key)'\(subject)")
    }

    func string(_ key: String) -> String? {
        guard let node = entries[key] else { return nil }
        guard case .string(let value) = node else {
            typeError(key, expected: "a string", found: node)
            return nil
        }
        return value
    }

    func requiredString(_ key: String, _ what: String? = nil) -> String? {
        guard entries[key] != nil else {
            missing(key, what)
            return nil
        }
        guard let value = string(key) else { return nil }
        if value.allSatisfy(\.isWhitespace) {
            context.error(path.appending(key), "must not be empty")
            return nil
        }
        return value
    }

    func bool(_ key: String) -> Bool? {
        guard let node = entries[key] else { return nil }
        guard case .boolean(let value) = node else {
            typeError(key, expected: "a boolean (true or false)", found: node)
            return nil
        }
        return value
    }

    func integer(_ key: String) -> Int? {
        guard let node = entries[key] else { return nil }
        guard case .integer(let value) = node else {
            typeError(key, expected: "an integer", found: node)
            return nil
        }
        return value
    }

    /// An integer or a float.
    func number(_ key: String) -> Double? {
        switch entries[key] {
        case nil: return nil
        case .integer(let value): return Double(value)
        case .float(let value): return value
        case let node?:
            typeError(key, expected: "a number", found: node)
            return nil
        }
    }

    func strings(_ key: String) -> [String]? {
        guard let node = entries[key] else { return nil }
        guard case .array(let elements) = node else {
            typeError(key, expected: "an array of strings", found: node)
            return nil
        }
        var values: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let value) = element else {
                context.error(
                    path.appending(key).appending(index: index),
                    "expected a string, found \(element.kindDescription)")
                continue
            }
            values.append(value)
        }
        return values
    }

    func table(_ key: String) -> TableReader? {
        guard let node = entries[key] else { return nil }
        guard case .table(let child) = node else {
            typeError(key, expected: "a table", found: node)
            return nil
        }
        return TableReader(path: path.appending(key), entries: child, context: context)
    }

    /// An array of tables (`[[section]]` or `key = [{...}, ...]`).
    func tables(_ key: String) -> [TableReader] {
        guard let node = entries[key] else { return [] }
        guard case .array(let elements) = node else {
            typeError(key, expected: "an array of tables ([[\(path.appending(key))]])", found: node)
            return []
        }
        var readers: [TableReader] = []
        for (index, element) in elements.enumerated() {
            let elementPath = path.appending(key).appending(index: index)
            guard case .table(let child) = element else {
                context.error(elementPath, "expected a table, found \(element.kindDescription)")
                continue
            }
            readers.append(TableReader(path: elementPath, entries: child, context: context))
        }
        return readers
    }

    /// A duration string (`"5s"`); bare integers are seconds when `integersAreSeconds`.
    func duration(_ key: String, integersAreSeconds: Bool = true) -> Duration? {
        switch entries[key] {
        case nil:
            return nil
        case .string(let text):
            do {
                let value = try DurationText.parse(text)
                if value <= .zero {
                    context.error(path.appending(key), "must be longer than zero")
                    return nil
                }
                return value
            } catch {
                context.error(path.appending(key), error.description)
                return nil
            }
        case .integer(let seconds) where integersAreSeconds:
            guard seconds > 0 else {
                context.error(path.appending(key), "must be longer than zero")
                return nil
            }
            return .seconds(seconds)
        case let node?:
            typeError(key, expected: "a duration such as \"5s\"", found: node)
            return nil
        }
    }

    /// A table whose values become strings: `env` (strings only... and numbers/booleans in their TOML
    /// spelling, so that `PORT = 3000` works) and `config`.
    func stringMap(_ key: String) -> [String: String]? {
        guard let table = table(key) else { return nil }
        var values: [String: String] = [:]
        for name in table.keys {
            let valuePath = table.path.appending(name)
            switch table.entries[name]! {
            case .string(let value):
                values[name] = value
            case .integer(let value):
                values[name] = context.sourceMap.literal(at: valuePath) ?? String(value)
            case .float(let value):
                values[name] = context.sourceMap.literal(at: valuePath) ?? String(value)
            case .boolean(let value):
                values[name] = String(value)
            case let node:
                context.error(
                    valuePath, "expected a string, number or boolean, found \(node.kindDescription)")
            }
        }
        return values
    }
}

/// "Did you mean" for unknown keys (and unknown vessel names): the closest candidate by edit
/// distance, when close enough.
public enum Suggestion {
    public static func nearest(to word: String, in candidates: [String]) -> String? {
        let lowered = word.lowercased()
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, candidate.lowercased())
            if best == nil || distance < best!.distance { best = (candidate, distance) }
        }
        guard let best else { return nil }
        let limit = max(2, min(word.count, best.candidate.count) / 3)
        if best.distance <= limit { return best.candidate }
        // A truncated key (`strip` for `strip_prefix`).
        guard lowered.count >= 3 else { return nil }
        return candidates.first { $0.lowercased().hasPrefix(lowered) }
    }

    /// Damerau-Levenshtein (optimal string alignment) distance, so a swapped pair counts as one edit.
    static func editDistance(_ lhs: String, _ rhs: String) -> Int {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previousPrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previousPrevious[j - 2] + 1)
                }
            }
            (previousPrevious, previous, current) = (previous, current, previousPrevious)
        }
        return previous[b.count]
    }
}
