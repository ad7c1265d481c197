import CMothershipSystem
import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child started by `SystemProcessLauncher`: the leader of its own process group, and the first
/// member of its own cgroup (`cell`) when the machine allows one. The reaper reports its exit, the
/// cells thread that whatever it left behind is dead, the output thread the end of its two pipes;
/// `exitStatus()` answers once all are known, or 100 ms after the exit if the pipes stay open.
final class SpawnedProcess: RunningProcess {
    /// How long `exitStatus()` waits for the pipes to close once the process has been reaped.
    static let outputGrace = Duration.milliseconds(100)

    let pid: Int32
    let name: String
    /// Its cgroup directory (nil: process groups only); removed once it is empty after the exit.
    let cell: String?

    private struct State {
        var exit: ProcessExit?
        var openStreams = 2
        var finished = false
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    private let state = Mutex(State())

    init(pid: Int32, name: String, cell: String?) {
        self.pid = pid
        self.name = name
        self.cell = cell
    }

    func exitStatus() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done: ProcessExit? = state.withLock { state in
                if state.finished { return state.exit }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    func signalGroup(_ signal: Int32) {
        // SIGKILL (landing after stop_timeout, a second Ctrl-C, restarts) takes the whole contained
        // set: descendants that left the group are in the cell.
        if signal == SIGKILL, let cell { _ = ms_cgroup_kill(cell) }
        let reaped = state.withLock { $0.exit != nil }
        // Until the reaper has collected the leader its pid cannot be reused, so the group is ours.
        // Afterwards only signal members that remain (a pid naming a group is never reused).
        if reaped && !ProcessTable.groupOutlivesLeader(pid) { return }
        _ = kill(-pid, signal)  // ESRCH: the group is gone, which is fine
    }

    func memory() -> MemoryUsage? {
        ProcessTable.memory(ofGroup: pid, leaderGone: state.withLock { $0.exit != nil })
    }

    // MARK: Events from the engine's threads

    /// Kills whatever the process left behind (its cell, or the rest of its process group) and waits
    /// up to `timeout` for all of it to be gone; called on the cells thread once it was reaped.
    /// Returns false when some are still there after `timeout`.
    func killLeftovers(timeout: Duration) -> Bool {
        if let cell {
            let result = ms_cgroup_clear(cell, 1, Int32(timeout.components.seconds * 1000))
            return result == 0
        }
        guard ProcessTable.groupOutlivesLeader(pid) else { return true }
        _ = kill(-pid, SIGKILL)
        return ProcessTable.waitForEmptyGroup(pid, timeout: timeout)
    }

    /// The reaper collected the process. Returns true when its output is still open, so the caller
    /// arms the `outputGrace` deadline.
    func reaped(_ exit: ProcessExit) -> Bool {
        let (waiters, outputOpen) = state.withLock { state in
            state.exit = exit
            guard state.openStreams == 0 else { return ([CheckedContinuation<ProcessExit, Never>](), true) }
            return (finish(&state), false)
        }
        for waiter in waiters { waiter.resume(returning: exit) }
        return outputOpen
    }

    /// One of the two pipes reached end of stream (every line of it has been delivered).
    func streamClosed() {
        let (waiters, exit) = state.withLock { state in
            state.openStreams -= 1
            guard state.openStreams == 0, state.exit != nil else {
                return ([CheckedContinuation<ProcessExit, Never>](), state.exit)
            }
            return (finish(&state), state.exit)
        }
        if let exit { for waiter in waiters { waiter.resume(returning: exit) } }
    }

    /// `outputGrace` has passed since the reap: answer even though a pipe is still open.
    func outputGraceExpired() {
        let (waiters, exit) = state.withLock { state in
            guard state.exit != nil else { return ([CheckedContinuation<ProcessExit, Never>](), state.exit) }
            return (finish(&state), state.exit)
        }
        if let exit { for waiter in waiters { waiter.resume(returning: exit) } }
    }

    private func finish(_ state: inout State) -> [CheckedContinuation<ProcessExit, Never>] {
        guard !state.finished else { return [] }
        state.finished = true
        defer { state.waiters = [] }
        return state.waiters
    }
}

extension ProcessExit {
    /// Decodes a wait status (WIFEXITED / WTERMSIG by hand: the macros do not import).
    init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal == 0 ? .exited(code: (status >> 8) & 0xff) : .signaled(signal: signal)
    }
}
