/// Parses a Procfile (`type: command` per line, as foreman, overmind and Heroku read it) and writes
/// the manifest that runs it.
///
/// Pure: the caller passes the text; nothing here reads files.
public enum Procfile {
    public struct Entry: Equatable, Sendable {
        /// The process type: `web`, `worker`, `release`…
        public var name: String
        /// A shell command line, `$PORT` and all.
        public var command: String
        /// 1-based.
        public var line: Int

        public init(name: String, command: String, line: Int) {
            self.name = name
            self.command = command
            self.line = line
        }
    }

    public struct Parsed: Equatable, Sendable {
        public var entries: [Entry]
        public var failures: [Dotenv.Failure]
    }

    /// `web: bundle exec puma -p $PORT`; blank lines and `#` comments are skipped, CRLF is accepted; a
    /// line without `:`, a bad type name, an empty command or a type seen before is an error.
    public static func parse(_ text: String) -> Parsed {
        var entries: [Entry] = []
        var failures: [Dotenv.Failure] = []
        for (offset, rawLine) in lines(of: text).enumerated() {
            let number = offset + 1
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            line = line.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.first == "#" { continue }
            guard let colon = line.firstIndex(of: ":") else {
                failures.append(
                    Dotenv.Failure(line: number, message: "expected 'type: command', found '\(line)'"))
                continue
            }
            let name = String(line[..<colon].reversed().drop { $0 == " " || $0 == "\t" }.reversed())
            let command = String(
                line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }.reversed()
                    .drop { $0 == " " || $0 == "\t" }.reversed())
            guard isValidName(name) else {
                failures.append(
                    Dotenv.Failure(
                        line: number,
                        message:
                            "invalid process type '\(name)': use only ASCII letters, digits, '-' and '_'"))
                continue
            }
            guard !command.isEmpty else {
                failures.append(
                    Dotenv.Failure(line: number, message: "process type '\(name)' has no command"))
                continue
            }
            if let earlier = entries.first(where: { $0.name == name }) {
                failures.append(
                    Dotenv.Failure(
                        line: number,
                        message: "duplicate process type '\(name)' (also on line \(earlier.line))"))
                continue
            }
            entries.append(Entry(name: name, command: command, line: number))
        }
        return Parsed(entries: entries, failures: failures)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                    || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
            }
    }

    /// foreman's ports: 5000 (or the base given) for the first entry, then one hundred more for each.
    public static func port(ofEntryAt index: Int, base: Int = defaultBasePort) -> Int { base + 100 * index }

    public static let defaultBasePort = 5000

    public enum Style: Sendable {
        /// `init --from Procfile`: a manifest to keep and edit: the web entry gets a bind with a
        /// catch-all route on an `http` listener; workers restart on a crash.
        case manifest
        /// `run --procfile`: foreman's behaviour: no proxy, every entry gets `PORT`, any crash lands
        /// the fleet.
        case foreman
    }

    /// The manifest that runs `entries`: each entry a ship started with `/bin/sh -c COMMAND` (so
    /// `$PORT` and other shell syntax keep working), `release` a prelaunch job.
    public static func manifest(
        _ entries: [Entry], style: Style, envFile: String?, source: String = "Procfile",
        basePort: Int = defaultBasePort
    ) -> String {
        var text = ""
        func line(_ value: String = "") { text += value + "\n" }
        switch style {
        case .manifest:
            line("# ship-manifest.toml, written by `mothership init --from \(source)`.")
            line(
                "# Check it with `mothership clearance`, run it with `mothership` (add --tui for the dashboard)."
            )
            line("# Each entry runs as `/bin/sh -c COMMAND`, so $PORT and other shell syntax work as before.")
            line()
            line("[mothership]")
            line("# Prometheus metrics on http://127.0.0.1:9090/metrics, liveness on /health.")
            line("metrics_port = 9090")
        case .foreman:
            line("# Built in memory by `mothership run --procfile \(source)`.")
            line("[mothership]")
        }
        if let envFile {
            line("# Read like foreman does; [mothership.env] and each ship's own env win over it.")
            line("env_file = \(quoted(envFile))")
        }
        let web = entries.first { $0.name == "web" }
        if style == .manifest, web != nil {
            line()
            line("# The address clients use; the catch-all route below sends everything to web.")
            line("[mothership.bind]")
            line("http = \"127.0.0.1:8080\"")
        }
        for entry in entries where entry.name == "release" {
            line()
            line("# Procfile `release`: runs once, and must succeed, before any ship starts.")
            line("[[mothership.prelaunch]]")
            line("name = \"release\"")
            line("command = \"/bin/sh\"")
            line("args = [\"-c\", \(quoted(entry.command))]")
        }
        for (index, entry) in entries.enumerated() where entry.name != "release" {
            let port = Self.port(ofEntryAt: index, base: basePort)
            line()
            if entry.name == "web" && style == .manifest {
                line(
                    "# Procfile `web`: mothership proxies http://127.0.0.1:8080 to it; PORT is set from bind."
                )
                line("[[fleet.web]]")
                line("name = \"web\"")
                line("command = \"/bin/sh\"")
                line("args = [\"-c\", \(quoted(entry.command))]")
                line("bind = \"127.0.0.1:\(port)\"")
                line(
                    "# It reads PORT: a restart starts the new process on the next port before the old one stops."
                )
                line("workers = 1")
                line("routes = [{ bind = \"http\", pattern = \"/.*\" }]")
                line("# Once web answers a cheap GET, a health check gates its dependents and the routes:")
                line("# healthcheck = \"/\"")
                line("tags = [\"web\"]")
                continue
            }
            let group = entry.name == "web" ? "web" : "workers"
            switch style {
            case .manifest:
                line("# Procfile `\(entry.name)`: restarted with backoff if it crashes.")
            case .foreman:
                break
            }
            line("[[fleet.\(group)]]")
            line("name = \(quoted(entry.name))")
            line("command = \"/bin/sh\"")
            line("args = [\"-c\", \(quoted(entry.command))]")
            line("env = { PORT = \"\(port)\" }")
            if style == .manifest {
                line("critical = false")
                line("tags = [\"\(group)\"]")
            }
        }
        return text
    }

    /// A TOML basic string.
    static func quoted(_ value: String) -> String {
        var output = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\t": output += "\\t"
            case "\r": output += "\\r"
            case let other where other.value < 0x20 || other.value == 0x7F:
                output +=
                    "\\u" + String(repeating: "0", count: 4 - String(other.value, radix: 16).count)
                    + String(other.value, radix: 16)
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }

    /// Lines split at LF and CRLF (one `Character` in Swift, so splitting at "\n" alone misses it).
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    }
}
