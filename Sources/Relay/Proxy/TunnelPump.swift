import CMothershipSystem
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The byte tunnels of accepted upgrades (WebSocket to a ship, or any other protocol a ship
/// switches to) on plain connections, after the 101: both sockets leave SwiftNIO and one thread of
/// their own moves the bytes with `epoll_wait`, `recv` and `send`, the way nginx's worker does.
/// Through NIO every message cost two read events of about 4,000 instructions each on two event
/// loops that took turns sleeping; here it costs a `recv` and a `send`.
///
/// Each tunnel's descriptors are duplicates made before the relay closed its NIO channels (closing
/// a duplicate neither sends a FIN nor touches the other), so the pump owns them alone. Reading
/// from one end stops while the other end has not taken the last bytes (backpressure: at most one
/// read's worth waits per end); when one end reaches end of stream or fails, the other gets what
/// is still waiting for it and both close (what nginx does with an upgraded connection).
///
/// One per relay server; the thread starts with the first tunnel and ends at `drain`. Off with
/// `MOTHERSHIP_TUNNEL_THREAD=0` (tunnels then stay on their event loops).
final class TunnelPump: Sendable {
    private struct Inbox {
        var arrivals: [(client: CInt, ship: CInt)] = []
        var started = false
        var stopping = false
        /// Tunnels adopted and not yet closed.
        var open = 0
    }

    /// Whether upgraded connections may leave their event loops.
    static let enabled: Bool = {
        guard let value = getenv("MOTHERSHIP_TUNNEL_THREAD") else { return true }
        return String(cString: value) != "0"
    }()

    static let wakeupToken = UInt64.max
    /// The largest read: a tunnel's bulk transfers move in reads of this size.
    static let readSize = 64 * 1024

    private let inbox = Mutex(Inbox())
    private let epoll: CInt
    private let wakeup: CInt
    private let thread = NIOThreadPool(numberOfThreads: 1)

    init?() {
        var wakeup: CInt = -1
        let epoll = ms_epoll_create_with_wakeup(Self.wakeupToken, &wakeup)
        guard epoll >= 0 else { return nil }
        self.epoll = epoll
        self.wakeup = wakeup
    }

    deinit {
        // Only reached when the thread never ran or has ended (it holds the pump while it runs).
        close(epoll)
        close(wakeup)
    }

    /// The tunnels open now.
    var openTunnels: Int { inbox.withLock { $0.open } }

    /// Takes over a tunnel between two connected, non-blocking sockets that nothing else reads or
    /// writes any more. False (and nothing taken) once the pump is stopping.
    func adopt(client: CInt, ship: CInt) -> Bool {
        let startThread = inbox.withLock { inbox -> Bool? in
            guard !inbox.stopping else { return nil }
            inbox.arrivals.append((client, ship))
            inbox.open += 1
            defer { inbox.started = true }
            return !inbox.started
        }
        guard let startThread else { return false }
        if startThread {
            thread.start()
            thread.submit { [self] _ in run() }
        }
        ms_eventfd_signal(wakeup)
        return true
    }

    /// Waits until every tunnel has closed or `deadline` has passed, then closes the rest and ends
    /// the thread. Later `adopt` calls are refused.
    func drain(until deadline: NIODeadline) async {
        while openTunnels > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let started = inbox.withLock { inbox -> Bool in
            inbox.stopping = true
            return inbox.started
        }
        ms_eventfd_signal(wakeup)
        if started { try? await thread.shutdownGracefully() }
    }

    // MARK: The pump's thread

    private func run() {
        let tunnels = TunnelTable(epoll: epoll)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readSize, alignment: 16)
        defer { scratch.deallocate() }
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let count = ms_epoll_wait(epoll, &tokens, &events, Int32(tokens.count), -1)
            var woken = false
            for index in 0..<Int(max(count, 0)) {
                if tokens[index] == Self.wakeupToken {
                    woken = true
                } else {
                    tunnels.handle(end: Int(tokens[index]), events: events[index], scratch: scratch)
                }
            }
            if tunnels.closedSinceLastCount > 0 {
                let closed = tunnels.closedSinceLastCount
                tunnels.closedSinceLastCount = 0
                inbox.withLock { $0.open -= closed }
            }
            guard woken else { continue }
            ms_eventfd_drain(wakeup)
            let (arrivals, stopping) = inbox.withLock { inbox in
                defer { inbox.arrivals.removeAll() }
                return (inbox.arrivals, inbox.stopping)
            }
            for arrival in arrivals { tunnels.add(client: arrival.client, ship: arrival.ship) }
            if stopping {
                tunnels.closeAll()
                inbox.withLock { $0.open = 0 }
                return
            }
        }
    }
}

/// The pump's tunnels, confined to its thread. Tunnel `n` has the ends `2n` (the client) and
/// `2n + 1` (the ship); an end's epoll token is its index, its peer is `index ^ 1`.
private final class TunnelTable {
    private struct End {
        var fd: CInt = -1
        /// Bytes read from the peer that this socket has not taken yet (from `pendingStart`).
        var pending: [UInt8] = []
        var pendingStart = 0
        /// This socket reached end of stream: the tunnel closes once its peer has what waits for it.
        var ended = false
        /// The interest registered with epoll now.
        var interest: UInt32 = 0
        /// Hung up while its reads were held: out of epoll (which reports a hang-up whatever the
        /// interest) until they may go on, then its last bytes and its end are read.
        var hungUp = false
        var registered = true

        var hasPending: Bool { pendingStart < pending.count }
    }

    private var ends: [End] = []
    private var free: [Int] = []
    private let epoll: CInt
    /// Tunnels closed since the pump last took this count.
    var closedSinceLastCount = 0

    init(epoll: CInt) { self.epoll = epoll }

    func add(client: CInt, ship: CInt) {
        let tunnel: Int
        if let reused = free.popLast() {
            tunnel = reused
        } else {
            tunnel = ends.count / 2
            ends.append(End())
            ends.append(End())
        }
        let first = 2 * tunnel
        ends[first] = End(fd: client, interest: UInt32(MS_EPOLL_IN))
        ends[first + 1] = End(fd: ship, interest: UInt32(MS_EPOLL_IN))
        for end in first...first + 1 {
            if ms_epoll_set(epoll, ends[end].fd, UInt64(end), UInt32(MS_EPOLL_IN), 1) != 0 {
                close(tunnelOf: end)
                return
            }
        }
    }

    func handle(end: Int, events: UInt32, scratch: UnsafeMutableRawBufferPointer) {
        // A tunnel closed earlier in the same batch leaves stale events behind.
        guard end < ends.count, ends[end].fd >= 0 else { return }
        if events & UInt32(MS_EPOLL_ERR) != 0 {
            close(tunnelOf: end)
            return
        }
        if events & UInt32(MS_EPOLL_OUT) != 0 {
            sendPending(to: end)
            guard ends[end].fd >= 0 else { return }
        }
        if events & UInt32(MS_EPOLL_IN | MS_EPOLL_HUP) != 0 {
            if ends[end].interest & UInt32(MS_EPOLL_IN) != 0 {
                receive(from: end, scratch: scratch)
            } else if events & UInt32(MS_EPOLL_HUP) != 0 {
                ends[end].hungUp = true
                if ends[end].hasPending {
                    sendPending(to: end)  // fails (nothing more reaches it) and closes the tunnel
                } else {
                    updateInterest(end)
                }
            }
        }
    }

    /// One read from `end`, sent on to its peer at once; what the peer does not take waits in its
    /// `pending`, and reading from `end` stops until it is out.
    private func receive(from end: Int, scratch: UnsafeMutableRawBufferPointer) {
        let peer = end ^ 1
        let count = ms_recv(ends[end].fd, scratch.baseAddress, scratch.count)
        if count > 0 {
            let sent = ms_send(ends[peer].fd, scratch.baseAddress!, count)
            if sent == count { return }
            if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                close(tunnelOf: end)
                return
            }
            let taken = max(sent, 0)
            ends[peer].pending = Array(UnsafeRawBufferPointer(rebasing: scratch[taken..<count]))
            ends[peer].pendingStart = 0
            updateInterest(end)
            updateInterest(peer)
        } else if count == 0 {
            ends[end].ended = true
            if ends[peer].hasPending {
                updateInterest(end)
            } else {
                close(tunnelOf: end)
            }
        } else if errno != EAGAIN && errno != EWOULDBLOCK {
            close(tunnelOf: end)
        }
    }

    /// Sends what waits for `end`; once it is all out its peer is read again (or, if the peer has
    /// ended, the tunnel closes).
    private func sendPending(to end: Int) {
        guard ends[end].hasPending else { return }
        let start = ends[end].pendingStart
        let fd = ends[end].fd
        let sent = ends[end].pending.withUnsafeBytes { bytes in
            ms_send(fd, bytes.baseAddress! + start, bytes.count - start)
        }
        if sent < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { close(tunnelOf: end) }
            return
        }
        ends[end].pendingStart += sent
        guard !ends[end].hasPending else { return }
        ends[end].pending = []
        ends[end].pendingStart = 0
        let peer = end ^ 1
        if ends[peer].ended {
            close(tunnelOf: end)
            return
        }
        updateInterest(end)
        updateInterest(peer)
    }

    /// Reads from `end` while its peer has nothing waiting and it has not ended; writes to it
    /// while something waits for it.
    private func updateInterest(_ end: Int) {
        let reading = !ends[end].ended && !ends[end ^ 1].hasPending
        let wanted = (reading ? UInt32(MS_EPOLL_IN) : 0) | (ends[end].hasPending ? UInt32(MS_EPOLL_OUT) : 0)
        if wanted == 0 && ends[end].hungUp {
            if ends[end].registered {
                ends[end].registered = false
                _ = ms_epoll_remove(epoll, ends[end].fd)
            }
            ends[end].interest = 0
            return
        }
        guard wanted != ends[end].interest || !ends[end].registered else { return }
        let add = !ends[end].registered
        ends[end].interest = wanted
        ends[end].registered = true
        if ms_epoll_set(epoll, ends[end].fd, UInt64(end), wanted, add ? 1 : 0) != 0 { close(tunnelOf: end) }
    }

    private func close(tunnelOf end: Int) {
        let first = end & ~1
        guard ends[first].fd >= 0 || ends[first + 1].fd >= 0 else { return }
        for index in first...first + 1 where ends[index].fd >= 0 {
            if ends[index].registered { _ = ms_epoll_remove(epoll, ends[index].fd) }
            Glibc.close(ends[index].fd)
            ends[index] = End()
        }
        free.append(first / 2)
        closedSinceLastCount += 1
    }

    func closeAll() {
        for end in stride(from: 0, to: ends.count, by: 2) { close(tunnelOf: end) }
    }
}
