import CMothershipSystem

#if canImport(Glibc)
    import Glibc
#endif

/// State behind a pthread mutex with a condition variable, for the helper threads that must block
/// until something changes (`Synchronization.Mutex` has no condition). Never held across a call that
/// can block for long.
final class Monitor<State: Sendable>: @unchecked Sendable {
    // @unchecked: `state` is only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var state: State

    init(_ initial: State) {
        state = initial
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }

    /// Blocks until `ready` holds, then runs `body` under the same lock.
    func withLock<Result>(when ready: (State) -> Bool, _ body: (inout State) throws -> Result) rethrows
        -> Result
    {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready(state) { pthread_cond_wait(condition, mutex) }
        return try body(&state)
    }

    /// Wakes every thread waiting in `withLock(when:_:)`; call after changing the state.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

/// Long-lived helper threads (spawn, reaper, output). Plain pthreads rather than tasks: they block
/// in system calls, and the spawn thread must outlive every child (PR_SET_PDEATHSIG fires when the
/// thread that forked exits).
enum HelperThread {
    /// Starts a detached thread named `name` (at most 15 bytes) with every signal blocked.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(ThreadContext(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let result = pthread_create(
            &thread, &attributes,
            { raw in
                let context = Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue()
                ms_prepare_helper_thread(context.name)
                context.body()
                return nil
            }, context)
        precondition(result == 0, "cannot start the \(name) thread: \(SystemError.text(result))")
    }
}

private final class ThreadContext: Sendable {
    let name: String
    let body: @Sendable () -> Void

    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// errno text without Foundation.
enum SystemError {
    static func text(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "error \(code)" }
        return String(cString: message)
    }
}
