import CMothershipSystem
import Logging
import Supervision

#if canImport(Glibc)
    import Glibc
#endif

/// The process-wide machinery behind `SystemProcessLauncher`, started on first use: the containment
/// (the run's cgroup and the keeper), two spawn threads (every fork happens there, so
/// PR_SET_PDEATHSIG stays armed), one reaper thread, one cells thread (kills what an exited child
/// left behind) and one output thread (epoll over every child's pipes). Five threads however many
/// children.
final class ProcessEngine: Sendable {
    static let shared = ProcessEngine()

    /// Children spawned and not yet reaped, and what the reaper needs to know about spawns.
    struct Registry: Sendable {
        var children: [Int32: SpawnedProcess] = [:]
        /// Spawns between just before their fork and the registration of their child (or the
        /// handling of their failure): an unknown zombie seen meanwhile may be such a child.
        var spawnsInFlight = 0
        /// Bumped after every fork, so a reaper that found no children knows when to look again.
        var spawnGeneration: UInt64 = 0
        /// Set by `ProcessTable.becomeSubreaper()`: unknown children are orphans adopted from our
        /// vessels and are reaped too. Otherwise they belong to someone else in this process (a
        /// test runner's Foundation.Process, say) and are left to their owner.
        var adoptsOrphans = false
    }

    let registry = Monitor(Registry())
    let output = OutputPump()
    let spawner = Spawner()
    let logger = Logger(label: "mothership.processes")
    let containment = Containment.setUp()
    /// Reaped children whose leftovers are still to be killed, with their exit.
    private let exited = Monitor([(SpawnedProcess, ProcessExit)]())

    /// How long the cells thread waits for a child's leftovers to die after SIGKILL.
    static let leftoverTimeout = Duration.seconds(5)

    private init() {
        HelperThread.start(name: "ms-reaper") { [self] in reapForever() }
        HelperThread.start(name: "ms-cells") { [self] in clearLeftoversForever() }
        HelperThread.start(name: "ms-output") { [output] in output.run() }
        // Two spawn threads: each waits for its child's exec (CLONE_VFORK), so two overlap that wait.
        // They live as long as the process (PR_SET_PDEATHSIG fires when the spawning thread ends).
        for index in 1...Spawner.threads {
            HelperThread.start(name: "ms-spawn-\(index)") { [self] in spawner.run(engine: self) }
        }
    }

    func adoptOrphans() {
        registry.withLock { $0.adoptsOrphans = true }
        registry.broadcast()
    }

    // MARK: Reaper

    private enum Owner {
        case ours(SpawnedProcess)
        case orphan
        case foreign
    }

    /// Waits for any child to exit (without reaping it), then reaps it if it is ours or an adopted
    /// orphan. Peeking first (WNOWAIT) keeps us from stealing another component's child.
    private func reapForever() {
        var foreignBackoff: UInt32 = 0
        while true {
            let generation = registry.withLock { $0.spawnGeneration }
            var pid: pid_t = 0
            let error = ms_wait_any_exited(&pid)
            if error == ECHILD {
                // No children at all: sleep until the next fork.
                registry.withLock(when: { $0.spawnGeneration != generation }) { _ in }
                continue
            }
            guard error == 0 else {
                logger.error("waitid failed: \(SystemError.text(error))")
                usleep(100_000)
                continue
            }
            let owner = registry.withLock(when: { $0.spawnsInFlight == 0 || $0.children[pid] != nil }) {
                state -> Owner in
                if let child = state.children[pid] { return .ours(child) }
                return state.adoptsOrphans || pid == containment.keeperPID ? .orphan : .foreign
            }
            switch owner {
            case .ours(let child):
                foreignBackoff = 0
                reap(child)
            case .orphan:
                foreignBackoff = 0
                var status: Int32 = 0
                if ms_reap(pid, &status) == 1 {
                    logger.debug(
                        "reaped orphaned process",
                        metadata: ["pid": "\(pid)", "status": "\(ProcessExit(waitStatus: status))"])
                }
            case .foreign:
                // Someone else's zombie stays first in line until its owner collects it; meanwhile
                // collect ours one by one.
                reapRegisteredChildren()
                foreignBackoff = min(max(foreignBackoff * 2, 1_000), 20_000)
                usleep(foreignBackoff)
            }
        }
    }

    /// Reaps `child` if it has exited and reports its status.
    @discardableResult
    private func reap(_ child: SpawnedProcess) -> Bool {
        var status: Int32 = 0
        guard ms_reap(child.pid, &status) == 1 else { return false }
        registry.withLock { state in
            if state.children[child.pid] === child { state.children[child.pid] = nil }
        }
        ProcessTable.processesChanged()
        exited.withLock { $0.append((child, ProcessExit(waitStatus: status))) }
        exited.broadcast()
        return true
    }

    /// The cells thread: what a reaped child left behind (setsid daemons, double forks, members of
    /// its group) is killed before its exit is reported, so a restart never meets its predecessor's
    /// leftovers (a port still bound, a second copy of a daemon).
    private func clearLeftoversForever() {
        while true {
            let (child, exit) = exited.withLock(when: { !$0.isEmpty }) { $0.removeFirst() }
            if !child.killLeftovers(timeout: Self.leftoverTimeout) {
                logger.warning(
                    "processes left by '\(child.name)' (pid \(child.pid)) survived SIGKILL for \(Self.leftoverTimeout)"
                )
            }
            containment.track(child.pid, false)
            if child.reaped(exit) {
                output.armGrace(for: child, deadline: ContinuousClock.now + SpawnedProcess.outputGrace)
            }
        }
    }

    private func reapRegisteredChildren() {
        for child in registry.withLock({ Array($0.children.values) }) { reap(child) }
    }

    /// Reaps zombie children that no `SpawnedProcess` is waiting for (final shutdown). Registered ones
    /// are left to the reaper so their waiters get the status.
    func reapStrays(_ pids: [Int32]) {
        let strays = registry.withLock { state in pids.filter { state.children[$0] == nil } }
        for pid in strays {
            var status: Int32 = 0
            _ = ms_reap(pid, &status)
        }
    }

    // MARK: Spawning (called on the spawn thread)

    func beginSpawn() {
        registry.withLock { $0.spawnsInFlight += 1 }
    }

    func endSpawn(registering child: SpawnedProcess?, forked: Bool) {
        registry.withLock { state in
            state.spawnsInFlight -= 1
            if let child { state.children[child.pid] = child }
            if forked { state.spawnGeneration &+= 1 }
        }
        registry.broadcast()
        if child != nil { ProcessTable.processesChanged() }
    }
}
