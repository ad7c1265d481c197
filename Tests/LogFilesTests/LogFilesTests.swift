import Foundation
import LogFiles
import Testing

/// Log files with real files and the real writer queue.
@Suite("Log files")
struct LogFilesTests {
    static func directory() -> String {
        let path = NSTemporaryDirectory() + "mothership-logs-" + UUID().uuidString
        return path
    }

    static func lines(_ path: String) throws -> [Substring] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.isEmpty || text.hasSuffix("\n"), "\(path) ends mid-line")
        return text.split(separator: "\n")
    }

    @Test(.timeLimit(.minutes(2)))
    func fiftyMegabytesRotateAtTheSizeKeepingThreeFilesWithNoLineSplit() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let files = try LogFiles(directory: path, sources: ["web"], format: .text, maxSize: 1 << 20, keep: 3)
        let payload = String(repeating: "x", count: 90)
        let count = 50 * 1024 * 1024 / 128
        for index in 0..<count {
            files.write(source: "web", stream: "stdout", text: "line \(index) \(payload)")
            // Keep the queue within its limit: the writer must not drop in this test.
            if index % 20_000 == 0 { files.flush() }
        }
        files.close()
        #expect(files.droppedLines(of: "web") == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        #expect(names == ["web.log", "web.log.1", "web.log.2", "web.log.3"], "\(names)")
        var numbers: [Int] = []
        for name in ["web.log.3", "web.log.2", "web.log.1", "web.log"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path + "/" + name)
            #expect((attributes[.size] as? Int ?? .max) <= 1 << 20, "\(name) is over the size")
            for line in try Self.lines(path + "/" + name) {
                // `TIMESTAMP stdout line N xxx…`, whole.
                let parts = line.split(separator: " ")
                #expect(parts.count == 5 && parts[1] == "stdout" && parts[4].count == 90, "\(line)")
                numbers.append(Int(parts[3]) ?? -1)
            }
        }
        // The newest lines, in order, the last one last.
        #expect(numbers.last == count - 1)
        #expect(numbers == Array((count - numbers.count)..<count))
    }

    @Test func reopenAfterAMoveWritesANewFileAndJSONLinesAreJSON() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let files = try LogFiles(
            directory: path, sources: ["worker"], format: .json, maxSize: 1 << 20, keep: 2)
        files.write(source: "worker", stream: "stderr", text: "before \"quoted\"")
        files.flush()
        try FileManager.default.moveItem(atPath: path + "/worker.log", toPath: path + "/worker.log.old")
        files.write(source: "worker", stream: "stdout", text: "still the old file")
        files.reopen()
        files.write(source: "worker", stream: "stdout", text: "after")
        // A source first seen later (a vessel a reload added) gets its file.
        files.write(source: "late", stream: "stdout", text: "hello")
        files.close()
        let old = try Self.lines(path + "/worker.log.old")
        #expect(old.count == 2 && old[1].contains("still the old file"))
        let first = try JSONSerialization.jsonObject(with: Data(old[0].utf8)) as? [String: String]
        #expect(
            first?["vessel"] == "worker" && first?["stream"] == "stderr"
                && first?["line"] == "before \"quoted\"")
        #expect(first?["time"]?.hasSuffix("Z") == true)
        let new = try Self.lines(path + "/worker.log")
        #expect(new.count == 1 && new[0].contains("\"after\""))
        #expect(try Self.lines(path + "/late.log").count == 1)
    }

    @Test func aFullDiskDropsAndCountsLinesWithoutBlockingOrWritingHalfLines() throws {
        let path = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // /dev/full: every write fails with ENOSPC, as on a full disk.
        try FileManager.default.createSymbolicLink(
            atPath: path + "/web.log", withDestinationPath: "/dev/full")
        let notices = NoticeBox()
        let files = try LogFiles(
            directory: path, sources: ["web"], format: .text, maxSize: 1 << 20, keep: 2,
            notice: { notices.append($0) })
        for index in 0..<1000 { files.write(source: "web", stream: "stdout", text: "line \(index)") }
        files.close()
        #expect(files.droppedLines(of: "web") == 1000)
        // One notice for the whole burst.
        #expect(
            notices.all == [
                .dropping(source: "web", reason: "cannot write \(path)/web.log: No space left on device")
            ])
    }

    @Test func aDirectoryThatCannotBeMadeOrWrittenIsAFailureThatNamesIt() {
        #expect(throws: LogFiles.Failure.self) {
            try LogFiles(
                directory: "/proc/mothership-logs", sources: ["web"], format: .text, maxSize: 4096, keep: 1)
        }
        do {
            _ = try LogFiles(
                directory: "/proc/mothership-logs", sources: ["web"], format: .text, maxSize: 4096, keep: 1)
        } catch {
            #expect(
                error.description.hasPrefix("cannot create the log directory /proc/mothership-logs: "),
                "\(error)")
        }
    }
}

final class NoticeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var notices: [LogFiles.Notice] = []

    func append(_ notice: LogFiles.Notice) {
        lock.lock()
        notices.append(notice)
        lock.unlock()
    }

    var all: [LogFiles.Notice] {
        lock.lock()
        defer { lock.unlock() }
        return notices
    }
}
