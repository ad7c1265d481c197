import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child started by `SystemProcessLauncher`: the leader of its own process group. The reaper
/// reports its exit, the output thread the end of its two pipes; `exitStatus()` answers once both
/// are known, or 100 ms after the exit if a grandchild keeps the pipes open.
final class SpawnedProcess: RunningProcess {
    /// How long `exitStatus()` waits for the pipes to close once the process has been reaped.
    static let outputGrace = Duration.milliseconds(100)

    let pid: Int32
    let name: String

    private struct State {
        var exit: ProcessExit?
        var openStreams = 2
        var finished = false
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    private let state = Mutex(State())

    init(pid: Int32, name: String) {
        self.pid = pid
        self.name = name
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
