import CMothershipSystem
import Supervision
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The process table as /proc shows it, and the process-wide duties of a supervisor: becoming a
/// child subreaper at start-up and killing whatever is left at final shutdown.
public enum ProcessTable {
    /// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): orphaned descendants of our
    /// children are reparented to us instead of PID 1 (which does not reap on this machine), and the
    /// reaper thread reaps them. Call once at start-up, before launching anything, and only in a
    /// process that spawns children through nothing else (the reaper then reaps every child).
    /// Returns false when the kernel refused.
    @discardableResult
    public static func becomeSubreaper() -> Bool {
        guard ms_set_child_subreaper() == 0 else { return false }
        ProcessEngine.shared.adoptOrphans()
        return true
    }

    /// The living (not zombie) children of `pid`.
    public static func children(of pid: Int32) -> [Int32] {
        ProcStat.all().filter { $0.parent == pid && !$0.isZombie }.map(\.pid)
    }

    /// Sends `signal` to every living child of `parent`; returns the pids signalled.
    @discardableResult
    public static func signalChildren(of parent: Int32, _ signal: Int32 = SIGKILL) -> [Int32] {
        children(of: parent).filter { kill($0, signal) == 0 }
    }

    /// Waits (polling /proc every 5 ms, blocking the calling thread) until `parent` has no child at
    /// all but the keeper, zombies included, or `timeout` has passed. True when none is left.
    public static func waitForNoChildren(of parent: Int32, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let keeper = ProcessEngine.shared.containment.keeperPID
            if !ProcStat.all().contains(where: { $0.parent == parent && $0.pid != keeper }) { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(5_000)
        }
    }

    /// Final shutdown: SIGKILLs every child of this process still alive (vessels that would not stop,
    /// orphaned grandchildren reparented to us) until none is left, and waits up to `timeout` for all
    /// of them to be reaped. Blocks the calling thread. Returns how many processes it killed.
    @discardableResult
    public static func killRemainingChildren(timeout: Duration) -> Int {
        let me = getpid()
        let deadline = ContinuousClock.now + timeout
        var killed = Set<Int32>()
        while true {
            // Not the keeper: it outlives us on purpose, to clear the run's cgroups when we are gone.
            let keeper = ProcessEngine.shared.containment.keeperPID
            let children = ProcStat.all().filter { $0.parent == me && $0.pid != keeper }
            if children.isEmpty { break }
            for child in children where !child.isZombie && kill(child.pid, SIGKILL) == 0 {
                killed.insert(child.pid)
            }
            // Killing a child reparents its own children to us: the loop comes back for them.
            ProcessEngine.shared.reapStrays(children.filter(\.isZombie).map(\.pid))
            if ContinuousClock.now >= deadline { break }
            usleep(5_000)
        }
        return killed.count
    }

    /// Waits (polling /proc every 2 ms) until no living process is in group `group`, or `timeout`.
    static func waitForEmptyGroup(_ group: Int32, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if !ProcStat.all().contains(where: { $0.group == group && !$0.isZombie }) { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(2_000)
        }
    }

    /// How this process contains its vessels (set up on first use: the run's cgroup and the keeper).
    public static func containment() -> (summary: String, complete: Bool, staleRemoved: Int) {
        let containment = ProcessEngine.shared.containment
        return (containment.summary, containment.isComplete, containment.staleRemoved)
    }

    // MARK: Memory

    private struct UsageSnapshot: Sendable {
        /// Bumped whenever a child is spawned or reaped: a snapshot taken before is stale.
        var generation: UInt64 = 0
        var takenAtGeneration: UInt64 = .max
        var takenAt = ContinuousClock.now
        var groups: [Int32: MemoryUsage] = [:]
        var pids: Set<Int32> = []
    }

    private static let usage = Mutex(UsageSnapshot())

    /// Snapshots older than this are re-read. Supervision polls every vessel within a few
    /// milliseconds every 5 s; one scan of /proc serves the whole sweep.
    private static let usageLifetime = Duration.seconds(1)

    /// Resident and virtual memory summed over the living members of process group `group`; nil when
    /// it has none. With `leaderGone`, also nil when a process now holds the leader's pid (pid reuse:
    /// a pid cannot be reused while it still names a group, so such a group is not ours any more).
    static func memory(ofGroup group: Int32, leaderGone: Bool) -> MemoryUsage? {
        usage.withLock { snapshot in
            let now = ContinuousClock.now
            if snapshot.takenAtGeneration != snapshot.generation || now - snapshot.takenAt > usageLifetime {
                var groups: [Int32: MemoryUsage] = [:]
                var pids = Set<Int32>()
                for process in ProcStat.all() where !process.isZombie {
                    pids.insert(process.pid)
                    groups[process.group, default: MemoryUsage(residentBytes: 0, virtualBytes: 0)].add(
                        process)
                }
                snapshot.groups = groups
                snapshot.pids = pids
                snapshot.takenAt = now
                snapshot.takenAtGeneration = snapshot.generation
            }
            if leaderGone && snapshot.pids.contains(group) { return nil }
            return snapshot.groups[group]
        }
    }

    /// Invalidates the memory snapshot (a child was spawned or reaped).
    static func processesChanged() {
        usage.withLock { $0.generation &+= 1 }
    }

    /// Whether process group `group` still has members although its leader has been reaped, and the
    /// leader's pid has not been reused meanwhile. Reads /proc afresh.
    static func groupOutlivesLeader(_ group: Int32) -> Bool {
        var hasMembers = false
        for process in ProcStat.all() {
            if process.pid == group { return false }
            if process.group == group { hasMembers = true }
        }
        return hasMembers
    }
}

extension MemoryUsage {
    fileprivate mutating func add(_ process: ProcStat) {
        residentBytes += process.residentPages * ProcStat.pageSize
        virtualBytes += process.virtualBytes
    }
}
