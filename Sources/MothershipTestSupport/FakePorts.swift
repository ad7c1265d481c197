import ShipManifest
import Supervision
import Synchronization

/// A process that exits when the test says so (or when signalled, unless told to ignore a signal).
public final class FakeProcess: RunningProcess, Sendable {
    public let pid: Int32
    public let request: LaunchRequest
    /// Position among all launches of its launcher (0-based).
    public let sequence: Int
    private struct State {
        var exit: ProcessExit?
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
        var signals: [Int32] = []
        var ignored: Set<Int32> = []
    }
    private let state = Mutex(State())
    private let journal: Journal

    init(pid: Int32, request: LaunchRequest, sequence: Int, journal: Journal) {
        self.pid = pid
        self.request = request
        self.sequence = sequence
        self.journal = journal
    }

    public var name: String { request.name }

    public func exitStatus() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done: ProcessExit? = state.withLock { state in
                if let exit = state.exit { return exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Ends the process with `exit`.
    public func finish(_ exit: ProcessExit) {
        let waiters: [CheckedContinuation<ProcessExit, Never>] = state.withLock { state in
            guard state.exit == nil else { return [] }
            state.exit = exit
            defer { state.waiters = [] }
            return state.waiters
        }
        if !waiters.isEmpty || state.withLock({ $0.exit == exit }) { journal.record("exit \(name) \(exit)") }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    public func signalGroup(_ signal: Int32) {
        let (ignored, running) = state.withLock { state -> (Bool, Bool) in
            state.signals.append(signal)
            return (state.ignored.contains(signal), state.exit == nil)
        }
        guard running else { return }
        journal.record("signal \(name) \(signal)")
        if !ignored { finish(.signaled(signal: signal)) }
    }

    /// Makes the process survive `signal` (like a child that traps SIGTERM).
    public func ignore(_ signal: Int32) {
        state.withLock { _ = $0.ignored.insert(signal) }
    }

    public var signals: [Int32] { state.withLock { $0.signals } }
    public var hasExited: Bool { state.withLock { $0.exit != nil } }

    public func memory() -> MemoryUsage? {
        hasExited ? nil : MemoryUsage(residentBytes: 4096 * UInt64(pid), virtualBytes: 8192 * UInt64(pid))
    }

    /// Prints a line as the child would.
    public func emit(_ text: String, stream: OutputLine.Stream = .stdout) {
        request.output(OutputLine(source: name, stream: stream, text: text))
    }
}

/// An ordered record of what happened (launches, signals, exits), for order assertions.
public final class Journal: Sendable {
    private let entries = Mutex<[String]>([])
    public init() {}
    public func record(_ entry: String) { entries.withLock { $0.append(entry) } }
    public var all: [String] { entries.withLock { $0 } }
}

/// Launches `FakeProcess`es and lets tests find them.
public final class FakeLauncher: ProcessLauncher, Sendable {
    private struct State {
        var processes: [FakeProcess] = []
        var failures: [String: SpawnError.Reason] = [:]
        var nextPID: Int32 = 1000
    }
    private let state = Mutex(State())
    public let journal: Journal

    public init(journal: Journal = Journal()) {
        self.journal = journal
    }

    /// Launches of `command` will fail with `reason`.
    public func failLaunches(of command: String, with reason: SpawnError.Reason) {
        state.withLock { $0.failures[command] = reason }
    }

    public func launch(_ request: LaunchRequest) async throws(SpawnError) -> any RunningProcess {
        let result: Result<FakeProcess, SpawnError> = state.withLock { state in
            if let reason = state.failures[request.command] {
                return .failure(SpawnError(name: request.name, command: request.command, reason: reason))
            }
            state.nextPID += 1
            let process = FakeProcess(
                pid: state.nextPID, request: request, sequence: state.processes.count, journal: journal)
            state.processes.append(process)
            return .success(process)
        }
        switch result {
        case .success(let process):
            journal.record("launch \(request.name)")
            return process
        case .failure(let error):
            journal.record("failed \(request.name)")
            throw error
        }
    }

    public var processes: [FakeProcess] { state.withLock { $0.processes } }

    public func processes(named name: String) -> [FakeProcess] { processes.filter { $0.name == name } }

    /// The latest process of `name`, if launched.
    public func latest(_ name: String) -> FakeProcess? { processes(named: name).last }

    public var launchedNames: [String] { processes.map(\.name) }
}

/// Health and readiness answers set by the test, per address.
public final class FakeHealth: HealthCheck, Sendable {
    private let answers = Mutex<[BindAddress: Bool]>([:])
    private let probes = Mutex(0)

    public init() {}

    public func set(_ address: BindAddress, healthy: Bool) {
        answers.withLock { $0[address] = healthy }
    }

    public var probeCount: Int { probes.withLock { $0 } }

    public func probe(_ address: BindAddress, path: String, timeout: Duration) async -> Bool {
        probes.withLock { $0 += 1 }
        return answers.withLock { $0[address] ?? false }
    }

    public func accepts(_ address: BindAddress, timeout: Duration) async -> Bool {
        answers.withLock { $0[address] ?? false }
    }
}

/// Uplink results set by the test.
public struct FakeUplinks: UplinkCheck {
    public var failing: [String: String]

    public init(failing: [String: String] = [:]) {
        self.failing = failing
    }

    public func check(_ uplinks: [Uplink], environment: [String: String]) async -> [UplinkReport] {
        uplinks.map {
            UplinkReport(name: $0.name, address: $0.url, error: failing[$0.name], latency: .milliseconds(1))
        }
    }
}

/// A value shared between a test and the tasks it watches.
public final class Locked<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    public init(_ value: Value) { storage = Mutex(value) }
    public var value: Value { storage.withLock { $0 } }
    public func mutate<T: Sendable>(_ body: (inout Value) -> T) -> T { storage.withLock { body(&$0) } }
}
