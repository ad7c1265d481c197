import Foundation

/// Checks Prometheus text (format 0.0.4) for what mothership promises of its `/metrics`: every
/// family has exactly one `# HELP` (with text) and one `# TYPE` line, both before its samples, and
/// its samples are together; a counter's name ends in `_total` and no other family's does (but for
/// the names in `totalAllowed`); every sample has a number.
public enum ExpositionCheck {
    /// The families of `text` by name, as its `# TYPE` lines declare them.
    public static func types(in text: String) -> [String: String] {
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
        }
        return types
    }

    /// What is wrong with `text`, one sentence per problem; empty when nothing is.
    public static func problems(
        in text: String, totalAllowed: Set<String> = ["mothership_fleet_ships_total"]
    ) -> [String] {
        var problems: [String] = []
        var helps: [String: Int] = [:]
        var types: [String: String] = [:]
        var typeLines: [String: Int] = [:]
        /// Families whose samples have begun, and the one they are in now.
        var sampled: Set<String> = []
        var current: String?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3)
                guard parts.count >= 3, parts[1] == "HELP" || parts[1] == "TYPE" else { continue }
                let name = String(parts[2])
                if sampled.contains(name) {
                    problems.append("line \(number): \(parts[1]) of \(name) after its samples")
                }
                if parts[1] == "HELP" {
                    helps[name, default: 0] += 1
                    if parts.count < 4 || parts[3].allSatisfy(\.isWhitespace) {
                        problems.append("line \(number): empty HELP for \(name)")
                    }
                } else {
                    typeLines[name, default: 0] += 1
                    types[name] = parts.count == 4 ? String(parts[3]) : ""
                }
                continue
            }
            let sample = String(line.prefix { $0 != "{" && $0 != " " })
            guard let family = family(of: sample, types: types) else {
                problems.append("line \(number): sample \(sample) has no # TYPE before it")
                continue
            }
            if family != current {
                if sampled.contains(family) {
                    problems.append("line \(number): samples of \(family) are not together")
                }
                sampled.insert(family)
                current = family
            }
            if let value = line.split(separator: " ").dropFirst().last, Double(value) == nil,
                !["+Inf", "-Inf", "NaN"].contains(value)
            {
                problems.append("line \(number): \(sample) has no number: \(line)")
            }
        }
        for name in Set(helps.keys).union(typeLines.keys).sorted() {
            if helps[name, default: 0] != 1 {
                problems.append("\(name) has \(helps[name, default: 0]) HELP lines")
            }
            if typeLines[name, default: 0] != 1 {
                problems.append("\(name) has \(typeLines[name, default: 0]) TYPE lines")
            }
            let isCounter = types[name] == "counter"
            if isCounter && !name.hasSuffix("_total") {
                problems.append("counter \(name) does not end in _total")
            }
            if !isCounter && name.hasSuffix("_total") && !totalAllowed.contains(name) {
                problems.append("\(types[name] ?? "untyped") \(name) ends in _total")
            }
        }
        return problems
    }

    /// The family a sample belongs to: its own name, or a histogram's or summary's without the
    /// suffix of its series.
    private static func family(of sample: String, types: [String: String]) -> String? {
        if types[sample] != nil { return sample }
        for suffix in ["_bucket", "_sum", "_count"] where sample.hasSuffix(suffix) {
            let base = String(sample.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || (type == "summary" && suffix != "_bucket") {
                return base
            }
        }
        return nil
    }
}
