import Logging

extension Logger {
    /// A logger that drops everything: unit tests assert on state, not on log text,
    /// and keep the test output readable.
    public static let quiet = Logger(label: "mothership.test") { _ in SwiftLogNoOpLogHandler() }
}
