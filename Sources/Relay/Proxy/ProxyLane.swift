import CMothershipSystem
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Kept-alive client connections of plain listeners, after their first response: they leave
/// SwiftNIO and one thread of their own serves their requests with `epoll_wait`, `recv` and `send`,
/// with its own keep-alive connections to ships. SwiftNIO spends about 4,000 instructions per read
/// event on its own bookkeeping (two per proxied request) and, with one event loop per core, each
/// loop sleeps and wakes more often than one busy thread; the lane does neither.
///
/// The lane takes the common request: no body, no upgrade, no `Expect`, routed to a ship. It
/// answers 404, 503 (not ready, circuit open), 502 and 504 itself as the event loops do. Anything
/// else (a body, an upgrade, a bay, a malformed head) sends the connection back to an event loop
/// with the bytes read so far (`handBack`), where it stays.
///
/// Listeners take part only without TLS, request modules and edge features (static files,
/// compression, CORS cache, rate limits), and when requests are not logged at debug level (the
/// lane does not log each request). Off with `MOTHERSHIP_LANE=0`.
final class ProxyLane: Sendable {
    /// A client connection as it arrives: its socket (a duplicate, the lane's alone) and what it
    /// needs of its listener.
    struct Arrival: Sendable {
        let fd: CInt
        let settings: ListenerSettings
        let address: String?
        let port: Int?
        /// The idle ship connection that served the connection's last request (-1: none), and the
        /// index of its ship: it joins the lane's pool.
        var ship: CInt = -1
        var shipIndex = -1
    }

    /// Gives a connection back to an event loop: its socket and the bytes read and not yet taken.
    typealias HandBack = @Sendable (Arrival, ByteBuffer) -> Void

    private struct Inbox {
        var arrivals: [Arrival] = []
        var started = false
        var stopping = false
        var deadline = NIODeadline.distantFuture
    }

    static let enabled: Bool = {
        guard let value = getenv("MOTHERSHIP_LANE") else { return true }
        return String(cString: value) != "0"
    }()

    static let wakeupToken = UInt64.max

    private let inbox = Mutex(Inbox())
    private let ended = Atomic<Bool>(false)
    let epoll: CInt
    let wakeup: CInt
    let handBack: HandBack
    private let thread = NIOThreadPool(numberOfThreads: 1)

    init?(handBack: @escaping HandBack) {
        var wakeup: CInt = -1
        let epoll = ms_epoll_create_with_wakeup(Self.wakeupToken, &wakeup)
        guard epoll >= 0 else { return nil }
        self.epoll = epoll
        self.wakeup = wakeup
        self.handBack = handBack
    }

    deinit {
        close(epoll)
        close(wakeup)
    }

    /// Takes over a connected, non-blocking client socket that nothing else reads or writes any
    /// more, between two requests. False (nothing taken) once the lane is draining.
    func adopt(_ arrival: Arrival) -> Bool {
        let startThread = inbox.withLock { inbox -> Bool? in
            guard !inbox.stopping else { return nil }
            inbox.arrivals.append(arrival)
            defer { inbox.started = true }
            return !inbox.started
        }
        guard let startThread else { return false }
        if startThread {
            thread.start()
            thread.submit { [self] _ in
                ms_prepare_helper_thread("mothership-lane")
                LaneLoop(lane: self).run()
                ended.store(true, ordering: .releasing)
            }
        }
        ms_eventfd_signal(wakeup)
        return true
    }

    /// Landing: idle connections close now, busy ones after their response; at `deadline` the
    /// rest close. Later `adopt` calls are refused.
    func startDraining(until deadline: NIODeadline) {
        inbox.withLock {
            $0.stopping = true
            $0.deadline = deadline
        }
        ms_eventfd_signal(wakeup)
    }

    /// Waits until every connection has closed (or the drain deadline closed them) and the thread
    /// has ended.
    func drained() async {
        let started = inbox.withLock { $0.started }
        guard started else { return }
        while !ended.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? await thread.shutdownGracefully()
    }

    /// For the lane's thread: the arrivals since the last call, whether it is draining, and until when.
    func takeArrivals() -> (arrivals: [Arrival], stopping: Bool, deadline: NIODeadline) {
        inbox.withLock { inbox in
            defer { inbox.arrivals.removeAll() }
            return (inbox.arrivals, inbox.stopping, inbox.deadline)
        }
    }
}
