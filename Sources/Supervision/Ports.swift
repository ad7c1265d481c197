import ShipManifest

// The capabilities Supervision needs from the operating system and the network, declared here (the
// side that needs them) and implemented elsewhere: `ProcessControl` spawns and reaps, `Probes` checks
// uplinks and health. Tests substitute fakes from `MothershipTestSupport`.

// MARK: Processes

/// Starts OS processes for vessels and prelaunch jobs.
public protocol ProcessLauncher: Sendable {
    /// Spawns the process in its own process group, with the parent-death signal set, signals reset,
    /// no inherited descriptors beyond stdin (/dev/null), stdout and stderr (pipes read line by line).
    /// Throws `SpawnError` when the command cannot be started (not found, not executable, bad cwd).
    func launch(_ request: LaunchRequest) async throws(SpawnError) -> any RunningProcess
}

/// What to start.
public struct LaunchRequest: Sendable {
    /// The vessel or job name; output lines carry it.
    public var name: String
    /// As written in the manifest: a bare name is searched on `environment["PATH"]`; a path with `/`
    /// is resolved against `workingDirectory`.
    public var command: String
    public var arguments: [String]
    /// The complete environment of the child (nothing else is inherited).
    public var environment: [String: String]
    /// Absolute.
    public var workingDirectory: String
    /// Called once per line of the child's stdout or stderr (without the newline), in order per stream.
    /// A final line without a newline is delivered at end of stream. Lines longer than 64 KiB are split.
    public var output: @Sendable (OutputLine) -> Void

    public init(
        name: String, command: String, arguments: [String], environment: [String: String],
        workingDirectory: String,
        output: @escaping @Sendable (OutputLine) -> Void
    ) {
        self.name = name
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.output = output
    }
}

/// One line a child printed.
public struct OutputLine: Sendable, Hashable {
    public enum Stream: String, Sendable, Hashable {
        case stdout
        case stderr
    }

    public var source: String
    public var stream: Stream
    public var text: String

    public init(source: String, stream: Stream, text: String) {
        self.source = source
        self.stream = stream
        self.text = text
    }
}

/// A spawned process (the leader of its own process group).
public protocol RunningProcess: Sendable {
    var pid: Int32 { get }
    /// Suspends until the process has exited and been reaped, whatever it left behind has been
    /// killed, and its output has been delivered (end of both pipes, or at most 100 ms after exit if
    /// a process outside its containment keeps them open).
    /// May be awaited by several tasks; all get the same result.
    func exitStatus() async -> ProcessExit
    /// Sends `signal` to the whole process group (grandchildren included); SIGKILL also reaches
    /// everything else the process started where it is contained (its cgroup: setsid and
    /// double-forked descendants). Harmless after exit.
    func signalGroup(_ signal: Int32)
    /// Resident and virtual memory summed over the process group, from /proc; nil once gone.
    func memory() -> MemoryUsage?
}

/// How a process ended.
public enum ProcessExit: Sendable, Hashable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32)

    public var isSuccess: Bool { self == .exited(code: 0) }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)\(SignalName.suffix(signal))"
        }
    }
}

enum SignalName {
    static func suffix(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            1: "HUP", 2: "INT", 3: "QUIT", 6: "ABRT", 9: "KILL", 11: "SEGV", 13: "PIPE", 15: "TERM",
        ]
        return names[signal].map { " (SIG\($0))" } ?? ""
    }
}

public struct MemoryUsage: Sendable, Hashable {
    public var residentBytes: UInt64
    public var virtualBytes: UInt64

    public init(residentBytes: UInt64, virtualBytes: UInt64) {
        self.residentBytes = residentBytes
        self.virtualBytes = virtualBytes
    }
}

/// Why a command could not be started; the description names the vessel and the command.
public struct SpawnError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// Not found on PATH, or the path does not exist.
        case notFound
        case permissionDenied
        case badWorkingDirectory(String)
        /// Any other errno from fork/exec, with its text.
        case system(String)
    }

    public var name: String
    public var command: String
    public var reason: Reason

    public init(name: String, command: String, reason: Reason) {
        self.name = name
        self.command = command
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .notFound:
            "cannot start '\(name)': command '\(command)': no such file or directory (not found on PATH)"
        case .permissionDenied:
            "cannot start '\(name)': command '\(command)': permission denied"
        case .badWorkingDirectory(let directory):
            "cannot start '\(name)': working directory '\(directory)' does not exist"
        case .system(let text):
            "cannot start '\(name)': command '\(command)': \(text)"
        }
    }
}

// MARK: Probes

/// The relay's view of a ship's traffic, as phased restarts need it.
public protocol ShipTraffic: Sendable {
    /// Requests (and tunnels) instance `id` of `ship` serves now.
    func inFlight(ship: String, instance id: Int) -> Int
    /// The instance stopped: the relay may drop what it counted for it.
    func forget(ship: String, instance id: Int)
}

/// Health and readiness probes against a ship's bind.
public protocol HealthCheck: Sendable {
    /// One HTTP GET of `path` on `address` (TCP or Unix socket) with `timeout`; true for 2xx/3xx.
    func probe(_ address: BindAddress, path: String, timeout: Duration) async -> Bool
    /// Whether `address` accepts a connection (TCP connect or Unix connect) within `timeout`.
    func accepts(_ address: BindAddress, timeout: Duration) async -> Bool
}

/// Checks uplinks before launch (and for `mothership preflight`).
public protocol UplinkCheck: Sendable {
    /// Checks every uplink in parallel; the same host:port is checked once and its result shared.
    /// Reports come back in the order of `uplinks`.
    func check(_ uplinks: [Uplink], environment: [String: String]) async -> [UplinkReport]
}

public struct UplinkReport: Sendable {
    public var name: String
    /// `host:port`, or the URL with its password redacted when it could not be parsed.
    public var address: String
    /// Nil when the uplink answered.
    public var error: String?
    public var latency: Duration

    public var isUp: Bool { error == nil }

    public init(name: String, address: String, error: String?, latency: Duration) {
        self.name = name
        self.address = address
        self.error = error
        self.latency = latency
    }
}
