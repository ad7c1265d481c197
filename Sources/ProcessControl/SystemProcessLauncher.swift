import Supervision

/// Starts real OS processes for Supervision: each child leads its own process group, gets SIGTERM if
/// mothership dies (PR_SET_PDEATHSIG), starts with default signal dispositions, an empty signal
/// mask, stdin from /dev/null and no other inherited descriptor, and has its stdout and stderr read
/// line by line. All instances share one `ProcessEngine`: two spawn threads, one reaper, one cells
/// thread and one output thread.
public final class SystemProcessLauncher: ProcessLauncher {
    public static let shared = SystemProcessLauncher()

    public init() {}

    public func launch(_ request: LaunchRequest) async throws(SpawnError) -> any RunningProcess {
        let engine = ProcessEngine.shared
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<SpawnedProcess, SpawnError>, Never>) in
            engine.spawner.submit(Spawner.Job(request: request, continuation: continuation))
        }
        return try result.get()
    }
}
