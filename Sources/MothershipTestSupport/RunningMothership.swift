import Foundation
import Synchronization

/// A `mothership` process started by a test: its output is collected as it comes, and every wait
/// has a deadline. `stop()` makes sure nothing it started is left behind, whatever the test did.
public final class RunningMothership: @unchecked Sendable {
    public let process = Process()
    private let lock = NSLock()
    private var collected = ""
    public let directory: String

    public struct Timeout: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `mothership ARGS` in `directory` (the manifest is usually `directory/ship-manifest.toml`).
    /// With a `launcher` (`["/usr/bin/prlimit", "--nofile=256:4096", "--"]`, `["/usr/bin/setpriv",
    /// ...]`), mothership is started through it: `LAUNCHER... mothership ARGS` (a launcher that
    /// execs keeps the process id).
    public init(
        _ arguments: [String] = [], in directory: String, environment: [String: String] = [:],
        launcher: [String] = []
    ) throws {
        self.directory = directory
        if let tool = launcher.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(launcher.dropFirst()) + [BinaryRunner.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: BinaryRunner.binary)
            process.arguments = arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        process.environment = merged
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read on a thread of its own until end of file. (A `readabilityHandler` is a libdispatch
        // read source that keeps firing at end of file and outlives the test's use of it; when the
        // pipe's handle is freed and its descriptor closed under the live source, libdispatch's
        // event loop can crash the whole test process.) The thread holds the handle until EOF.
        let reader = pipe.fileHandleForReading
        Thread { [weak self] in
            while true {
                let data = reader.availableData
                guard !data.isEmpty, let self else { return }
                self.append(data)
            }
        }.start()
    }

    private func append(_ data: Data) {
        lock.lock()
        collected += String(decoding: data, as: UTF8.self)
        lock.unlock()
    }

    public var pid: Int32 { process.processIdentifier }

    /// Everything printed so far (stdout and stderr together).
    public var output: String {
        lock.lock()
        defer { lock.unlock() }
        return collected
    }

    public var lines: [String] { output.split(separator: "\n").map(String.init) }

    /// Waits until the output contains `text`.
    @discardableResult
    public func waitFor(_ text: String, timeout: Duration = .seconds(20)) async throws -> String {
        try await waitUntil("output containing \(text.debugDescription)", timeout: timeout) {
            self.output.contains(text)
        }
        return output
    }

    /// Waits until `condition` holds, polling every 20 ms.
    public func waitUntil(_ what: String, timeout: Duration = .seconds(20), _ condition: () throws -> Bool)
        async throws
    {
        let deadline = ContinuousClock.now + timeout
        while !(try condition()) {
            if ContinuousClock.now > deadline {
                throw Timeout(description: "timed out waiting for \(what); output so far:\n\(output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for mothership to exit; returns its exit status (128+signal when killed).
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await waitUntil("mothership to exit", timeout: timeout) { !process.isRunning }
        // Let the last output arrive.
        try await Task.sleep(for: .milliseconds(50))
        return process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// Ends mothership if still running and kills whatever it left (never leave a test's processes behind).
    public func stop(killingGroupsOf pids: [Int32] = []) {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        for pid in pids { kill(-pid, SIGKILL) }
    }
}

/// Facts about processes, from /proc.
public enum ProcessInspector {
    /// Whether a process exists and is not a zombie.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Every live process whose process group is `pgid`.
    public static func members(ofGroup pgid: Int32) -> [Int32] {
        allPIDs().filter { pid in
            guard let fields = statFields(pid), fields.count > 2, ProcessInspector.isAlive(pid) else {
                return false
            }
            return Int32(fields[2]) == pgid
        }
    }

    /// Children of `pid` (any state).
    public static func children(of parent: Int32) -> [Int32] {
        allPIDs().filter { pid in
            guard let fields = statFields(pid), fields.count > 1 else { return false }
            return Int32(fields[1]) == parent
        }
    }

    /// Zombie children of `pid`.
    public static func zombies(of parent: Int32) -> [Int32] {
        children(of: parent).filter { statFields($0)?.first == "Z" }
    }

    /// Fields after the command name: state, ppid, pgrp, ...
    static func statFields(_ pid: Int32) -> [String]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").map(String.init)
    }

    static func allPIDs() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    /// A free loopback TCP port from 20000-32767, below the kernel's ephemeral range: a port taken
    /// from that range (bind to port 0, close) can be handed to an outgoing connection or another
    /// test's port-0 listener before mothership binds it. Ports are handed out in turn, each
    /// checked free.
    public static func freePort() -> Int {
        while true {
            let port = nextPort.withLock { value in
                value = value >= 32_000 ? 20_000 : value + 1
                return value
            }
            if canBind(port) { return port }
        }
    }

    /// The first of `count` consecutive free loopback ports (a ship with workers takes a range).
    public static func freePorts(_ count: Int) -> Int {
        while true {
            // The range is value+1 ... value+count; the counter moves past all of it.
            let first = nextPort.withLock { value in
                if value + count >= 32_000 { value = 20_000 }
                defer { value += count }
                return value + 1
            }
            if (first..<first + count).allSatisfy(canBind) { return first }
        }
    }

    private static let nextPort = Mutex(Int.random(in: 20_000..<30_000))

    private static func canBind(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
