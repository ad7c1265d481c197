import Foundation
import ProcessControl
import Supervision
import Synchronization

/// Collects a child's output lines and lets a test wait for one.
final class OutputRecorder: Sendable {
    private let lines = Mutex<[OutputLine]>([])
    private let stream: AsyncStream<OutputLine>
    private let continuation: AsyncStream<OutputLine>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: OutputLine.self)
    }

    var handler: @Sendable (OutputLine) -> Void {
        { [self] line in
            lines.withLock { $0.append(line) }
            continuation.yield(line)
        }
    }

    var all: [OutputLine] { lines.withLock { $0 } }

    func texts(_ stream: OutputLine.Stream) -> [String] {
        all.filter { $0.stream == stream }.map(\.text)
    }

    /// The first line (from the start) that matches; only one task may call this per recorder.
    func first(where matches: (OutputLine) -> Bool) async -> OutputLine? {
        for await line in stream where matches(line) { return line }
        return nil
    }
}

let testPath = "/usr/local/bin:/usr/bin:/bin"

func request(
    _ command: String, _ arguments: [String] = [], name: String = "probe",
    environment: [String: String] = ["PATH": testPath], in directory: String = "/tmp",
    recorder: OutputRecorder = OutputRecorder()
) -> LaunchRequest {
    LaunchRequest(
        name: name, command: command, arguments: arguments, environment: environment,
        workingDirectory: directory, output: recorder.handler)
}

func shell(_ script: String, recorder: OutputRecorder = OutputRecorder()) -> LaunchRequest {
    request("/bin/sh", ["-c", script], recorder: recorder)
}

func launch(_ request: LaunchRequest) async throws -> any RunningProcess {
    try await SystemProcessLauncher.shared.launch(request)
}

/// The spawn error `request` fails with (nil if it started).
func spawnError(_ request: LaunchRequest) async -> SpawnError? {
    do {
        let process = try await SystemProcessLauncher.shared.launch(request)
        process.signalGroup(SIGKILL)
        _ = await process.exitStatus()
        return nil
    } catch {
        return error
    }
}

/// Fields 3 (state), 4 (ppid) and 5 (pgrp) of /proc/<pid>/stat; nil when the process is gone.
struct StatFields {
    var state: String
    var parent: Int32
    var group: Int32

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let parent = Int32(fields[1]), let group = Int32(fields[2]) else {
            return nil
        }
        state = String(fields[0])
        self.parent = parent
        self.group = group
    }
}

/// True when `pid` no longer runs (gone, or a zombie nobody reaps).
func isDead(_ pid: Int32) -> Bool {
    guard let fields = StatFields(pid: pid) else { return true }
    return fields.state == "Z" || fields.state == "X"
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; returns its last value.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

/// A scratch directory removed at the end of the test.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "process-control-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String, permissions: Int) throws -> String {
        let file = path + "/" + name
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: file)
        return file
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
