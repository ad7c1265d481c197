import Foundation

/// Prometheus' own lint, `promtool check metrics`, when it is installed (`apt-get install
/// prometheus`; CI installs it). Tests skip it with a printed reason when it is missing, except
/// under `CI=true`, where a missing promtool is a failure.
public enum Promtool {
    public struct Verdict: Sendable {
        public var status: Int32
        /// stdout and stderr: promtool prints one line per problem, nothing when the text passes.
        public var output: String
        public var passed: Bool { status == 0 && output.isEmpty }
    }

    /// The `promtool` on PATH, or nil.
    public static let path: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(
            separator: ":")
        return directories.map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Whether a missing promtool fails the test rather than skipping its check.
    public static var isRequired: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// `promtool check metrics` on `text`; nil when promtool is not installed.
    public static func checkMetrics(_ text: String) throws -> Verdict? {
        guard let path else { return nil }
        let input = try TemporaryDirectory(prefix: "mothership-promtool")
        defer { input.remove() }
        try input.write("metrics.prom", text)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        process.standardInput = try FileHandle(
            forReadingFrom: URL(fileURLWithPath: input.file("metrics.prom")))
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Verdict(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }
}
