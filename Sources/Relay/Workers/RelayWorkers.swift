import CMothershipSystem
import Logging
import NIOCore
import NIOPosix
import ShipManifest
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The threads that serve plain HTTP/1 connections (no TLS), each from accept to close: every
/// worker has its own listening socket per bind (`SO_REUSEPORT`: the kernel spreads connections
/// over them; a Unix socket is shared, one worker woken per connection), its own epoll loop, ship
/// connection pools, request-id generator and module instances. A connection never changes thread,
/// except a WebSocket accepted for a bay, which goes to SwiftNIO's bay handling (counted in
/// `mothership_relay_driver_moves_total{reason="bay"}`). The rules are `ClientConnection`'s;
/// `WorkerLoop` only does the I/O.
final class RelayWorkers: Sendable {
    /// A plain bind as the workers serve it.
    struct Listener: Sendable {
        let source: ListenerSource
        /// One listening socket per worker (the same one for all on a Unix socket).
        let sockets: [CInt]
        let shared: Bool
        let proxyProtocol: Bool
        let trustedProxies: [CIDRRange]?
    }

    /// What every worker shares.
    struct Shared: Sendable {
        let listeners: [Listener]
        let hooks: (any RelayHooks)?
        let addresses: ShipAddressBook
        /// SwiftNIO's group, for the bays' WebSocket handling.
        let group: any EventLoopGroup
        let connections: ConnectionRegistry
        let metrics: RelayMetrics
        let logger: Logger
    }

    let count: Int
    private let handles: [WorkerHandle]

    init(count: Int) {
        self.count = count
        handles = (0..<count).map { WorkerHandle(index: $0) }
    }

    /// The default: one worker per core.
    static var defaultCount: Int { max(1, System.coreCount) }

    /// Starts every worker; throws (with every worker stopped again) when one cannot set up
    /// (its epoll instance, its modules).
    func start(_ shared: Shared) async throws {
        var failure: (any Error)?
        for handle in handles {
            do {
                try await handle.start(shared)
            } catch {
                failure = error
                break
            }
        }
        if let failure {
            await drain(until: .now())
            throw failure
        }
    }

    /// A reload's changes to the plain binds, applied by every worker between two batches of
    /// events; returns once each has (or has ended).
    func apply(_ changes: [ListenerChange]) async {
        guard !changes.isEmpty else { return }
        for handle in handles { handle.post(changes) }
        for handle in handles { await handle.applied() }
    }

    /// Landing: no new connections; idle ones close now, busy ones after their response; at
    /// `deadline` the rest close. Returns once every worker has ended.
    func drain(until deadline: NIODeadline) async {
        for handle in handles { handle.stop(until: deadline) }
        for handle in handles { await handle.ended() }
    }
}

/// What a reload changes of a worker's listening sockets.
enum ListenerChange: Sendable {
    /// A new bind: watch its socket.
    case add(RelayWorkers.Listener)
    /// The same bind on the same sockets with other PROXY protocol settings.
    case update(RelayWorkers.Listener)
    /// A removed bind (or one that moved to another address): stop watching its socket (the relay
    /// closes it once every worker has) and close its connections after their current response.
    case remove(name: String)
}

/// One worker's thread and what other threads may touch of it (its wake-up and its inbox).
final class WorkerHandle: Sendable {
    static let wakeupToken = UInt64.max

    let index: Int
    private struct Inbox {
        var stopping = false
        var deadline = NIODeadline.distantFuture
        var started = false
        var changes: [ListenerChange] = []
        /// Batches of changes posted, and taken by the worker.
        var posted = 0
        var taken = 0
    }
    private let inbox = Mutex(Inbox())
    private let finished = Atomic<Bool>(false)
    private let thread = NIOThreadPool(numberOfThreads: 1)
    /// The epoll instance and its wake-up eventfd (-1 until started).
    private let descriptors = Mutex<(epoll: CInt, wakeup: CInt)>((-1, -1))

    init(index: Int) { self.index = index }

    func start(_ shared: RelayWorkers.Shared) async throws {
        var wakeup: CInt = -1
        let epoll = ms_epoll_create_with_wakeup(Self.wakeupToken, &wakeup)
        guard epoll >= 0 else {
            throw RelayError.workers(
                reason: "cannot create an epoll instance: \(String(cString: strerror(errno)))")
        }
        let wakeupFD = wakeup
        descriptors.withLock { $0 = (epoll, wakeupFD) }
        inbox.withLock { $0.started = true }
        thread.start()
        let index = self.index
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            thread.submit { [self] _ in
                ms_prepare_helper_thread("mothership-w\(index)")
                let loop: WorkerLoop
                do {
                    loop = try WorkerLoop(
                        index: index, epoll: epoll, wakeup: wakeupFD, shared: shared, handle: self)
                } catch {
                    finished.store(true, ordering: .releasing)
                    ready.resume(throwing: error)
                    return
                }
                ready.resume()
                loop.run()
                finished.store(true, ordering: .releasing)
            }
        }
    }

    func stop(until deadline: NIODeadline) {
        inbox.withLock {
            $0.stopping = true
            $0.deadline = min($0.deadline, deadline)
        }
        let wakeup = descriptors.withLock { $0.wakeup }
        if wakeup >= 0 { ms_eventfd_signal(wakeup) }
    }

    func post(_ changes: [ListenerChange]) {
        inbox.withLock {
            $0.changes.append(contentsOf: changes)
            $0.posted += 1
        }
        let wakeup = descriptors.withLock { $0.wakeup }
        if wakeup >= 0 { ms_eventfd_signal(wakeup) }
    }

    /// For the worker's thread: the listener changes posted since it last looked, and the count
    /// of batches they make up to (given back to `acknowledge` once they are applied).
    func takeChanges() -> (changes: [ListenerChange], upTo: Int) {
        inbox.withLock { inbox in
            defer { inbox.changes.removeAll() }
            return (inbox.changes, inbox.posted)
        }
    }

    func acknowledge(upTo batches: Int) {
        inbox.withLock { $0.taken = max($0.taken, batches) }
    }

    /// Returns once the worker took (and applied) every change posted, or ended.
    func applied() async {
        guard inbox.withLock({ $0.started }) else { return }
        while inbox.withLock({ $0.taken < $0.posted }) && !finished.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// For the worker's thread: whether it lands, and until when.
    func landing() -> NIODeadline? {
        inbox.withLock { $0.stopping ? $0.deadline : nil }
    }

    func ended() async {
        guard inbox.withLock({ $0.started }) else { return }
        while !finished.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? await thread.shutdownGracefully()
        let (epoll, wakeup) = descriptors.withLock { value in
            defer { value = (-1, -1) }
            return value
        }
        if epoll >= 0 { Glibc.close(epoll) }
        if wakeup >= 0 { Glibc.close(wakeup) }
    }
}
