import CMothershipSystem
import Supervision

#if canImport(Glibc)
    import Glibc
#endif

/// The queue in front of the long-lived spawn threads. Everything blocking about a spawn (stat,
/// pipes, fork, waiting for the exec) happens on those threads, off the cooperative pool.
final class Spawner: Sendable {
    /// How many threads take jobs from the queue.
    static let threads = 2

    struct Job: Sendable {
        var request: LaunchRequest
        var continuation: CheckedContinuation<Result<SpawnedProcess, SpawnError>, Never>
    }

    typealias Outcome = Result<SpawnedProcess, SpawnFailure>

    private let jobs = Monitor([Job]())

    func submit(_ job: Job) {
        jobs.withLock { $0.append(job) }
        jobs.broadcast()
    }

    /// A spawn thread's body; never returns (the thread must outlive every child it forks).
    func run(engine: ProcessEngine) {
        while true {
            let job = jobs.withLock(when: { !$0.isEmpty }) { queue in queue.removeFirst() }
            let request = job.request
            let result = spawnRetryingBusyText(request, engine: engine)
            job.continuation.resume(
                returning: result.mapError {
                    SpawnError(name: request.name, command: request.command, reason: $0.reason)
                })
        }
    }

    /// ETXTBSY from execve means some process still holds the file open for writing; typically a
    /// child forked elsewhere while the file was being written, which lets go when it execs. Worth
    /// a few short retries (about 150 ms in all) before giving up.
    private func spawnRetryingBusyText(_ request: LaunchRequest, engine: ProcessEngine) -> Outcome {
        var delay: UInt32 = 5_000
        while true {
            let result = spawn(request, engine: engine)
            guard case .failure(let failure) = result, failure.textBusy, delay <= 80_000 else {
                return result
            }
            usleep(delay)
            delay *= 2
        }
    }

    private func spawn(_ request: LaunchRequest, engine: ProcessEngine) -> Outcome {
        let directory = request.workingDirectory
        guard CommandResolver.isDirectory(directory) else {
            return .failure(SpawnFailure(.badWorkingDirectory(directory)))
        }
        return CommandResolver.resolve(
            request.command, searchPath: request.environment["PATH"], workingDirectory: directory
        ).flatMap { path in
            OutputPipes.make().flatMap { pipes in start(path, request, pipes, engine: engine) }
        }
    }

    /// Forks and execs `path`; on success the child is registered with the reaper and its pipes
    /// with the output thread. Either way the write ends are closed here.
    private func start(_ path: String, _ request: LaunchRequest, _ pipes: OutputPipes, engine: ProcessEngine)
        -> Outcome
    {
        let argv = CStringArray([request.command] + request.arguments)
        let envp = CStringArray(
            request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        let cell: String?
        switch engine.containment.makeCell(for: request.name) {
        case .success(let made): cell = made
        case .failure(let failure):
            pipes.closeWriteEnds()
            pipes.closeReadEnds()
            return .failure(failure)
        }
        var pid: pid_t = 0
        var step: Int32 = 0
        engine.beginSpawn()
        let error = path.withCString { cPath in
            request.workingDirectory.withCString { cDirectory in
                withOptionalCString(cell) { cCell in
                    ms_spawn(
                        cPath, argv.pointers, envp.pointers, cDirectory, pipes.stdout[1], pipes.stderr[1],
                        cCell,
                        &pid, &step)
                }
            }
        }
        pipes.closeWriteEnds()
        guard error == 0 else {
            engine.endSpawn(registering: nil, forked: step != MS_SPAWN_STEP_FORK)
            pipes.closeReadEnds()
            if let cell { rmdir(cell) }
            var failure = SpawnFailure(Self.reason(error, step: step, directory: request.workingDirectory))
            failure.textBusy = step == MS_SPAWN_STEP_EXEC && error == ETXTBSY
            return .failure(failure)
        }
        let child = SpawnedProcess(pid: pid, name: request.name, cell: cell)
        engine.containment.track(pid, true)
        engine.endSpawn(registering: child, forked: true)
        engine.output.watch([
            OutputPump.Source(fd: pipes.stdout[0], stream: .stdout, process: child, output: request.output),
            OutputPump.Source(fd: pipes.stderr[0], stream: .stderr, process: child, output: request.output),
        ])
        return .success(child)
    }

    private static func reason(_ error: Int32, step: Int32, directory: String) -> SpawnError.Reason {
        switch (Int(step), error) {
        case (MS_SPAWN_STEP_CHDIR, ENOENT), (MS_SPAWN_STEP_CHDIR, ENOTDIR): .badWorkingDirectory(directory)
        case (MS_SPAWN_STEP_CHDIR, _):
            .system("cannot enter working directory '\(directory)': \(SystemError.text(error))")
        case (MS_SPAWN_STEP_EXEC, EACCES), (MS_SPAWN_STEP_EXEC, EPERM): .permissionDenied
        case (MS_SPAWN_STEP_EXEC, ENOENT):
            // The file itself was there a moment ago: what is missing is its #! interpreter (or loader).
            .system("\(SystemError.text(error)) (is the interpreter on its #! line installed?)")
        case (MS_SPAWN_STEP_FORK, _): .system("fork: \(SystemError.text(error))")
        case (MS_SPAWN_STEP_SETUP, _): .system("preparing the child: \(SystemError.text(error))")
        case (MS_SPAWN_STEP_CGROUP, _): .system("joining its cgroup: \(SystemError.text(error))")
        default: .system(SystemError.text(error))
        }
    }
}

/// `body` with `string` as a C string, or with NULL.
func withOptionalCString<Result>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// A NULL-terminated array of C strings (argv, envp) that lives until it is deinitialized; built
/// before fork so the child allocates nothing.
final class CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: count + 1)
        for (index, string) in strings.enumerated() { pointers[index] = strdup(string) }
        pointers[count] = nil
    }

    deinit {
        for index in 0..<count { free(pointers[index]) }
        pointers.deallocate()
    }
}

/// A child's stdout and stderr pipes: close-on-exec, read ends non-blocking.
struct OutputPipes {
    var stdout: [Int32] = [-1, -1]
    var stderr: [Int32] = [-1, -1]

    static func make() -> Result<OutputPipes, SpawnFailure> {
        var pipes = OutputPipes()
        var error = ms_pipe(&pipes.stdout, 1)
        if error == 0 {
            error = ms_pipe(&pipes.stderr, 1)
            if error != 0 { pipes.stdout.forEach { close($0) } }
        }
        guard error == 0 else {
            return .failure(SpawnFailure(.system("cannot create a pipe: \(SystemError.text(error))")))
        }
        return .success(pipes)
    }

    func closeWriteEnds() {
        close(stdout[1])
        close(stderr[1])
    }

    func closeReadEnds() {
        close(stdout[0])
        close(stderr[0])
    }
}
