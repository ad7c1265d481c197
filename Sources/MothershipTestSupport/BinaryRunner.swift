import Foundation

/// Runs the built `mothership` binary as a user would, with a deadline, and captures what it printed.
public enum BinaryRunner {
    public struct Outcome: Sendable {
        public var status: Int32
        public var standardOutput: String
        public var standardError: String
        /// Both streams, stdout first.
        public var output: String { standardOutput + standardError }
    }

    public struct TimedOut: Error, CustomStringConvertible {
        public var arguments: [String]
        public var description: String {
            "mothership \(arguments.joined(separator: " ")) did not exit in time"
        }
    }

    /// The binary under test: `$MOTHERSHIP_BIN`, else `mothership` beside the test bundle.
    public static let binary: String = {
        if let explicit = ProcessInfo.processInfo.environment["MOTHERSHIP_BIN"] { return explicit }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("mothership").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return Repository.path(".build/debug/mothership")
    }()

    public static func run(
        _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe, each on a
        // thread of its own: blocking reads on the cooperative pool (two threads on a 2-core
        // machine) would stall every other task of the test until the command exits.
        async let standardOutput = readToEnd(output.fileHandleForReading)
        async let standardError = readToEnd(error.fileHandleForReading)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw TimedOut(arguments: arguments)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return Outcome(
            status: process.terminationStatus,
            standardOutput: String(decoding: await standardOutput, as: UTF8.self),
            standardError: String(decoding: await standardError, as: UTF8.self))
    }

    private static func readToEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: handle.readDataToEndOfFile()) }.start()
        }
    }
}
