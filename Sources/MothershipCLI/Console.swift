import LogFiles
import Logging
import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Mothership's standard output: children's lines prefixed with their name (coloured per vessel on a
/// terminal, foreman style), mothership's own log lines, and last the final status line. Every line
/// is written with one `write(2)` under a lock, so lines are never interleaved mid-line.
final class Console: Sendable {
    let colored: Bool
    private let nameWidth: Int
    private let colors: [String: String]
    private let lock = Mutex(())
    /// While the dashboard owns the screen: where mothership's own lines go instead (its "mothership"
    /// entry). Children's lines are not echoed then; the supervisor keeps them in the same log.
    private let diversion = Mutex<OutputLog?>(nil)
    /// `[mothership.logs]`: mothership's own lines go to `mothership.log` too.
    private let files = Mutex<LogFiles?>(nil)

    static let palette = ["36", "33", "32", "35", "34", "91", "96", "93", "92", "95"]

    init(colored: Bool, names: [String]) {
        self.colored = colored
        nameWidth = max(names.map(\.count).max() ?? 0, "mothership".count)
        var colors: [String: String] = [:]
        for (index, name) in names.enumerated() { colors[name] = Self.palette[index % Self.palette.count] }
        self.colors = colors
    }

    /// Writes mothership's own log lines to `files` as well (nil: no more).
    func attach(_ files: LogFiles?) { self.files.withLock { $0 = files } }

    /// Mothership's own line, for its log file.
    func file(_ level: Logger.Level, _ message: String) {
        files.withLock { $0 }?.write(source: "mothership", stream: level.rawValue, text: message)
    }

    /// Sends mothership's log lines to `log` (nil: back to stdout) and stops echoing children's lines.
    func divert(to log: OutputLog?) {
        diversion.withLock { $0 = log }
    }

    /// Keeps a log line for the dashboard; false when not diverted.
    func divert(_ level: Logger.Level, _ message: String) -> Bool {
        guard let log = diversion.withLock({ $0 }) else { return false }
        let time = ConsoleLogHandler.timestamp().dropFirst(11).prefix(8)
        log.append(
            OutputLine(
                source: "mothership", stream: level >= .warning ? .stderr : .stdout,
                text: "\(time) \(level.rawValue): \(message)"))
        return true
    }

    /// `web        | Listening on 3000`.
    func echo(_ line: OutputLine) {
        if diversion.withLock({ $0 != nil }) { return }
        let name = line.source.padding(to: nameWidth)
        if colored, let color = colors[line.source] {
            write("\u{1B}[\(color)m\(name) |\u{1B}[0m \(line.text)")
        } else {
            write("\(name) | \(line.text)")
        }
    }

    /// Mothership's own human-readable log line (terminal only).
    func log(_ level: Logger.Level, _ message: String) {
        let name = "mothership".padding(to: nameWidth)
        guard colored else {
            write("\(name) | \(level.rawValue): \(message)")
            return
        }
        let color =
            switch level {
            case .error, .critical: "31"
            case .warning: "33"
            case .trace, .debug: "2"
            default: "1"
            }
        write("\u{1B}[1m\(name) |\u{1B}[0m \u{1B}[\(color)m\(message)\u{1B}[0m")
    }

    func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes {
                    Glibc.write(1, $0.baseAddress! + offset, $0.count - offset)
                }
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// swift-log handler: human text on a terminal, one JSON object per line otherwise.
struct ConsoleLogHandler: LogHandler {
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String

    init(label: String, console: Console, level: Logger.Level) {
        self.label = label
        self.console = console
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        console.file(event.level, event.message.description)
        if console.divert(event.level, event.message.description) { return }
        if console.colored {
            console.log(event.level, event.message.description)
            return
        }
        var json =
            #"{"timestamp":"# + JSONText.quote(Self.timestamp()) + #","level":"#
            + JSONText.quote(event.level.rawValue)
        json +=
            #","target":"# + JSONText.quote(label) + #","message":"#
            + JSONText.quote(event.message.description)
        for key in merged.keys.sorted() {
            json += "," + JSONText.quote(key) + ":" + JSONText.quote("\(merged[key]!)")
        }
        console.write(json + "}")
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp() -> String { LogFiles.timestamp() }
}
