/// Parses the manifest's duration spellings: `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1.5s"`, and bare
/// numbers as seconds (the original used integers for `prelaunch_timeout`, `election_timeout`,
/// `default_ttl`).
public enum DurationText {
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var text: String
        public var description: String {
            "'\(text)' is not a duration; expected a number with a unit: \"500ms\", \"5s\", \"2m\", \"1h\""
        }
    }

    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let trimmed = text.trimmingSpaces()
        let digits = trimmed.prefix { ($0 >= "0" && $0 <= "9") || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingSpaces().lowercased()
        guard !digits.isEmpty, let value = Double(digits), value.isFinite, value >= 0 else {
            throw ParseError(text: text)
        }
        let milliseconds: Double
        switch unit {
        case "ms": milliseconds = value
        case "s", "", "sec", "secs": milliseconds = value * 1000
        case "m", "min", "mins": milliseconds = value * 60_000
        case "h": milliseconds = value * 3_600_000
        default: throw ParseError(text: text)
        }
        guard milliseconds < 1e12 else { throw ParseError(text: text) }
        return .milliseconds(Int64(milliseconds.rounded()))
    }

    /// `"500ms"`, `"5s"`, `"2m"`, `"1h"`, or `"1500ms"` when not whole seconds.
    public static func format(_ duration: Duration) -> String {
        let milliseconds =
            duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 3_600_000 == 0, milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0, milliseconds > 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}
