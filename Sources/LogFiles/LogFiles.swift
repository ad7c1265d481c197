import Dispatch
import Metrics
import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Log files (SPEC §12.5): one file per source (`dir/NAME.log`), a timestamp on every line, rotated
/// at `maxSize` keeping `keep` older files (`NAME.log.1` the newest), reopened on request (after
/// logrotate moved them). Writing never blocks the caller: lines are queued for one writer queue,
/// and when the disk is slow or full they are dropped and counted
/// (`mothership_log_dropped_lines_total{vessel}`), never written in part or across two files.
public final class LogFiles: Sendable {
    public enum Format: Sendable {
        case text
        case json
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// What the writer says about drops (once when a burst starts, once when it ends).
    public enum Notice: Sendable, Equatable {
        case dropping(source: String, reason: String)
        case dropped(source: String, count: Int)
    }

    /// A line of a source, or (source nil) the point where the files are reopened: lines queued
    /// before it go to the old files.
    private struct Entry {
        let source: String?
        let line: [UInt8]
    }

    private struct Pending {
        var entries: [Entry] = []
        var bytes = 0
        var scheduled = false
    }

    /// One file of one source, touched only on the writer queue.
    private final class File: @unchecked Sendable {
        let path: String
        var descriptor: Int32 = -1
        var size = 0
        var droppedInBurst = 0

        init(path: String) { self.path = path }
    }

    /// The files, touched only on the writer queue (and in `init`).
    private final class Store: @unchecked Sendable {
        var files: [String: File] = [:]
    }

    public let directory: String
    private let format: Format
    private let maxSize: Int
    private let keep: Int
    /// Queued bytes beyond which new lines are dropped.
    private let queueLimit: Int
    private let store = Store()
    /// `mothership_log_dropped_lines_total{vessel}` and the totals, per source.
    private let dropped = Mutex<[String: (counter: Counter, total: Int)]>([:])
    private let pending = Mutex(Pending())
    private let queue = DispatchQueue(label: "mothership.log-files")
    private let notice: @Sendable (Notice) -> Void

    /// Creates `directory` if needed and opens a file for each source; a directory or file that
    /// cannot be written is a failure that names it (the run does not start).
    public init(
        directory: String, sources: [String], format: Format, maxSize: Int, keep: Int,
        queueLimit: Int = 16 * 1024 * 1024, notice: @escaping @Sendable (Notice) -> Void = { _ in }
    ) throws(Failure) {
        self.directory = directory
        self.format = format
        self.maxSize = maxSize
        self.keep = keep
        self.queueLimit = queueLimit
        self.notice = notice
        try Self.makeDirectory(directory)
        for source in sources where store.files[source] == nil {
            let file = File(path: directory + "/" + source + ".log")
            guard Self.open(file) else {
                let reason = String(cString: strerror(errno))
                for opened in store.files.values { Glibc.close(opened.descriptor) }
                throw Failure(description: "cannot write the log file \(file.path): \(reason)")
            }
            store.files[source] = file
            counter(for: source)
        }
    }

    /// The source's drop counter, made (at 0) the first time.
    @discardableResult
    private func counter(for source: String) -> Counter {
        dropped.withLock { dropped in
            if let existing = dropped[source] { return existing.counter }
            let counter = Counter(
                label: "mothership_log_dropped_lines_total", dimensions: [("vessel", source)])
            counter.increment(by: 0)
            dropped[source] = (counter, 0)
            return counter
        }
    }

    /// Queues one line of `source` (a line without its newline). Never blocks.
    public func write(source: String, stream: String, text: String) {
        let line = Array(render(source: source, stream: stream, text: text).utf8)
        let accepted = pending.withLock { pending -> (Bool, Bool) in
            guard pending.bytes + line.count <= queueLimit else { return (false, false) }
            pending.entries.append(Entry(source: source, line: line))
            pending.bytes += line.count
            let schedule = !pending.scheduled
            pending.scheduled = true
            return (true, schedule)
        }
        if !accepted.0 {
            drop(source, reason: "the log writer is behind (over \(queueLimit / (1024 * 1024)) MiB queued)")
            return
        }
        if accepted.1 { queue.async { self.drain() } }
    }

    /// Closes and opens every file again by its path (after logrotate moved them).
    public func reopen() {
        let schedule = pending.withLock { pending -> Bool in
            pending.entries.append(Entry(source: nil, line: []))
            let schedule = !pending.scheduled
            pending.scheduled = true
            return schedule
        }
        if schedule { queue.async { self.drain() } }
    }

    /// Writes what is queued, then closes the files.
    public func close() {
        queue.sync {
            self.drain()
            for file in self.store.files.values where file.descriptor >= 0 {
                Glibc.close(file.descriptor)
                file.descriptor = -1
            }
        }
    }

    /// Waits until everything queued so far is written (tests).
    public func flush() { queue.sync { self.drain() } }

    /// Lines of `source` dropped so far.
    public func droppedLines(of source: String) -> Int { dropped.withLock { $0[source]?.total ?? 0 } }

    // MARK: The writer queue

    private func drain() {
        while true {
            let entries = pending.withLock { pending -> [Entry] in
                let taken = pending.entries
                pending.entries = []
                pending.bytes = 0
                if taken.isEmpty { pending.scheduled = false }
                return taken
            }
            if entries.isEmpty { return }
            for entry in entries {
                if entry.source == nil {
                    for file in store.files.values {
                        if file.descriptor >= 0 { Glibc.close(file.descriptor) }
                        file.descriptor = -1
                        _ = Self.open(file)
                    }
                } else {
                    append(entry)
                }
            }
        }
    }

    private func append(_ entry: Entry) {
        guard let source = entry.source else { return }
        // A source first seen now (a vessel a reload added) gets its file now.
        let file = store.files[source] ?? newFile(source)
        var line = entry.line
        // A line longer than a whole file is cut to fit one (never split across two).
        if line.count > maxSize {
            line = Array(line.prefix(maxSize - 1)) + [UInt8(ascii: "\n")]
        }
        if file.size > 0 && file.size + line.count > maxSize { rotate(file) }
        if file.descriptor < 0 && !Self.open(file) {
            drop(
                source, reason: "cannot open \(file.path): \(String(cString: strerror(errno)))", onQueue: true
            )
            return
        }
        var offset = 0
        while offset < line.count {
            let written = line.withUnsafeBytes {
                Glibc.write(file.descriptor, $0.baseAddress! + offset, $0.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                if offset > 0 {
                    // Never leave half a line: cut the file back to where the line began.
                    _ = ftruncate(file.descriptor, off_t(file.size))
                }
                drop(source, reason: "cannot write \(file.path): \(reason)", onQueue: true)
                return
            }
            offset += written
        }
        file.size += line.count
        if file.droppedInBurst > 0 {
            notice(.dropped(source: source, count: file.droppedInBurst))
            file.droppedInBurst = 0
        }
    }

    private func newFile(_ source: String) -> File {
        let file = File(path: directory + "/" + source + ".log")
        store.files[source] = file
        counter(for: source)
        _ = Self.open(file)
        return file
    }

    /// `NAME.log` → `NAME.log.1` → … → `NAME.log.KEEP` (the oldest goes), then a new `NAME.log`.
    private func rotate(_ file: File) {
        if file.descriptor >= 0 { Glibc.close(file.descriptor) }
        file.descriptor = -1
        unlink("\(file.path).\(keep)")
        if keep > 1 {
            for index in stride(from: keep - 1, through: 1, by: -1) {
                rename("\(file.path).\(index)", "\(file.path).\(index + 1)")
            }
        }
        rename(file.path, "\(file.path).1")
        _ = Self.open(file)
    }

    /// Counts a dropped line; `onQueue`: called by the writer itself.
    private func drop(_ source: String, reason: String, onQueue: Bool = false) {
        counter(for: source).increment()
        dropped.withLock { $0[source]?.total += 1 }
        // The burst's first drop is told; the writer tells its end (`append`).
        let count: @Sendable () -> Void = {
            let file = self.store.files[source] ?? self.newFile(source)
            if file.droppedInBurst == 0 { self.notice(.dropping(source: source, reason: reason)) }
            file.droppedInBurst += 1
        }
        if onQueue { count() } else { queue.async(execute: count) }
    }

    private static func open(_ file: File) -> Bool {
        let descriptor = Glibc.open(file.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        var info = stat()
        file.size = fstat(descriptor, &info) == 0 ? Int(info.st_size) : 0
        file.descriptor = descriptor
        return true
    }

    private static func makeDirectory(_ path: String) throws(Failure) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw Failure(
                    description:
                        "cannot create the log directory \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw Failure(description: "the log directory \(path) is not a directory")
        }
        guard access(path, W_OK) == 0 else {
            throw Failure(
                description: "cannot write in the log directory \(path): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Lines

    private func render(source: String, stream: String, text: String) -> String {
        let time = Self.timestamp()
        switch format {
        case .text:
            return "\(time) \(stream) \(text)\n"
        case .json:
            return #"{"time":"# + JSONText.quote(time) + #","vessel":"# + JSONText.quote(source)
                + #","stream":"#
                + JSONText.quote(stream) + #","line":"# + JSONText.quote(text) + "}\n"
        }
    }

    /// RFC 3339 UTC with milliseconds (mothership's own log lines use it too).
    public static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        let milliText = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(milliText)Z"
    }
}
