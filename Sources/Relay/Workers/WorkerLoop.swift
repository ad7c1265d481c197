import CMothershipSystem
import Logging
import Metrics
import NIOCore
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// One worker's epoll loop: accepts on its listening sockets, reads and writes its client and ship
/// sockets with `recv` and `send`/`sendmsg`, keeps the connections' deadlines (checked every
/// `sweepInterval`) and runs what its connections ask for later. Client and ship sockets are
/// edge-triggered (`WorkerSocket.register`), listening sockets and the wake-up level-triggered; a
/// socket is watched for reading while its connection reads and for writing while bytes wait for
/// it.
final class WorkerLoop {
    static let sweepInterval = TimeAmount.milliseconds(100)
    /// The largest read from a client (a head, or pipelined heads) and from a ship.
    static let clientReadSize = 16 * 1024
    static let shipReadSize = 64 * 1024
    /// Like SwiftNIO's write water marks: past `highWater` bytes waiting, a socket is not writable
    /// (the peer feeding it stops being read) until they drop below `lowWater`.
    static let highWater = 32 * 1024
    static let lowWater = 16 * 1024

    /// A client or ship socket of the loop. `slots` owns them; epoll knows each by its address
    /// (`WorkerSocket.token`), a listener by its index in `listening` (`listenerToken`).
    enum Slot {
        case client(WorkerClient)
        case ship(WorkerShip)
    }

    let index: Int
    let epoll: CInt
    private let wakeup: CInt
    let shared: RelayWorkers.Shared
    private let handle: WorkerHandle
    let context = LoopContext()
    private var slots: [Slot?] = []
    private var freeSlots: [Int] = []
    /// Slots freed while a batch of events is handled, reused after it.
    private var retiredSlots: [Int] = []
    /// The sockets of `retiredSlots`, kept alive until the batch ends: an event is handed to its
    /// socket without a retain, so a socket closed by an earlier event of the batch (or by its own
    /// handler) must still be there, closed, when a later event names it, and its address (its
    /// token) cannot be a new socket's meanwhile.
    private var retiring: [Slot] = []
    private(set) var clientCount = 0
    /// Connections that asked to process what they hold after the current event.
    private var later: [WorkerClient] = []
    /// Work that must not run inside the call that set it off (a connect's completion).
    private var deferred: [() -> Void] = []
    /// Whether `later` or `deferred` holds anything: the one check each event pays.
    private var hasLaterWork = false
    let allocator = ByteBufferAllocator()
    /// Where a spliced tunnel's reads land before they are sent on (`WorkerSocket.readAvailable`):
    /// the loop's own, for as long as it runs.
    let spliceScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: shipReadSize, alignment: 16)
    var vectors: [iovec] = []
    private var landing: NIODeadline?
    private var nextSweep = NIODeadline.now()

    private struct ListeningSocket {
        let fd: CInt
        var listener: RelayWorkers.Listener
        /// A reload removed the bind: the socket is no longer watched (the relay closes it).
        var removed = false
        let connections: RelayMetrics.Connections
        /// Accepting stopped (the relay ran out of descriptors or memory) until then.
        var pausedUntil: NIODeadline?
        var lastLogged = NIODeadline.distantPast
    }
    private var listening: [ListeningSocket] = []
    private var peerAddress = [CChar](repeating: 0, count: 64)
    /// Rotates ship connects over a name's addresses.
    var connectRotation = 0

    init(index: Int, epoll: CInt, wakeup: CInt, shared: RelayWorkers.Shared, handle: WorkerHandle) throws {
        self.index = index
        self.epoll = epoll
        self.wakeup = wakeup
        self.shared = shared
        self.handle = handle
        if let hooks = shared.hooks { _ = try context.hooks(for: hooks) }
        context.requests = RelayMetrics.workerRequests(index)
        for listener in shared.listeners { try watch(listener) }
    }

    /// Starts accepting on `listener`'s socket of this worker.
    private func watch(_ listener: RelayWorkers.Listener) throws {
        let fd = listener.shared ? listener.sockets[0] : listener.sockets[index]
        let socket = ListeningSocket(
            fd: fd, listener: listener, connections: shared.metrics.connections(listener.source.name))
        let interest = UInt32(MS_EPOLL_IN) | (listener.shared ? UInt32(MS_EPOLL_EXCLUSIVE) : 0)
        let status = ms_epoll_set(epoll, fd, Self.listenerToken(listening.count), interest, 1)
        guard status == 0 else {
            throw RelayError.workers(
                reason:
                    "worker \(index) cannot watch bind '\(listener.source.name)': \(RelayResources.describe(status))"
            )
        }
        listening.append(socket)
    }

    /// A reload's changes to the binds (`ListenerChange`).
    private func apply(_ changes: [ListenerChange]) {
        for change in changes {
            switch change {
            case .add(let listener):
                do {
                    try watch(listener)
                } catch {
                    shared.logger.error("\(error)")
                }
            case .update(let listener):
                for index in listening.indices
                where !listening[index].removed
                    && listening[index].listener.source.name == listener.source.name
                {
                    listening[index].listener = listener
                }
            case .remove(let name):
                for index in listening.indices
                where !listening[index].removed
                    && listening[index].listener.source.name == name
                {
                    listening[index].removed = true
                    _ = ms_epoll_remove(epoll, listening[index].fd)
                    let source = listening[index].listener.source
                    for slot in slots {
                        if case .client(let client)? = slot, client.connection.source === source {
                            client.connection.drain()
                        }
                    }
                }
            }
        }
    }

    // MARK: The loop

    func run() {
        // Every read lands here first, lent to the socket that reads; what a connection keeps of
        // it stays its own by copy-on-write.
        var readBuffer = allocator.buffer(capacity: Self.shipReadSize)
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        nextSweep = .now() + Self.sweepInterval
        while true {
            let wait = Int32(max(0, (nextSweep - .now()).nanoseconds / 1_000_000 + 1))
            let count = ms_epoll_wait(epoll, &tokens, &events, Int32(tokens.count), wait)
            var woken = false
            for index in 0..<Int(max(count, 0)) {
                let token = tokens[index]
                if token == WorkerHandle.wakeupToken {
                    woken = true
                } else if token & 1 == 1 {
                    accept(on: Int(token >> 1))
                } else {
                    // Without a retain: the loop's table holds the socket until after the batch.
                    WorkerSocket.named(by: token)._withUnsafeGuaranteedRef { socket in
                        // (Not open: closed earlier in the batch.)
                        if socket.isOpen { socket.handle(events: events[index], readBuffer: &readBuffer) }
                    }
                }
                if hasLaterWork { runLater() }
            }
            if woken {
                ms_eventfd_drain(wakeup)
                let (changes, batches) = handle.takeChanges()
                if landing == nil { apply(changes) }
                handle.acknowledge(upTo: batches)
                if landing == nil, let deadline = handle.landing() { startLanding(until: deadline) }
            }
            if NIODeadline.now() >= nextSweep { sweep() }
            if hasLaterWork { runLater() }
            if !retiredSlots.isEmpty { reuseRetiredSlots() }
            if landing != nil && clientCount == 0 {
                finish()
                return
            }
        }
    }

    deinit { spliceScratch.deallocate() }

    /// The epoll token of the listening socket at `index` of `listening`: odd, unlike a socket's
    /// address (`WorkerSocket.token`).
    static func listenerToken(_ index: Int) -> UInt64 { UInt64(index) << 1 | 1 }

    /// Processes what `client` holds after the current event (`ClientTransport.processLater`).
    func processLater(_ client: WorkerClient) {
        later.append(client)
        hasLaterWork = true
    }

    /// Runs `work` after the current event, outside the call that set it off.
    func afterEvent(_ work: @escaping () -> Void) {
        deferred.append(work)
        hasLaterWork = true
    }

    /// What connections asked for during the last event (a pipelined request; a connect's outcome).
    private func runLater() {
        var rounds = 0
        while hasLaterWork && rounds < 16 {
            rounds += 1
            hasLaterWork = false
            let clients = later
            later = []
            for client in clients where client.isOpen { client.connection.processInbound() }
            let work = deferred
            deferred = []
            for item in work { item() }
        }
    }

    /// The slots freed by the batch just handled can take new sockets; their old ones go.
    private func reuseRetiredSlots() {
        freeSlots.append(contentsOf: retiredSlots)
        retiredSlots.removeAll(keepingCapacity: true)
        retiring.removeAll(keepingCapacity: true)
    }

    // MARK: Slots

    func take(_ slot: Slot) -> Int {
        if let index = freeSlots.popLast() {
            slots[index] = slot
            return index
        }
        slots.append(slot)
        return slots.count - 1
    }

    func release(slot index: Int) {
        guard index >= 0 else { return }
        if let slot = slots[index] { retiring.append(slot) }
        slots[index] = nil
        retiredSlots.append(index)
    }

    // MARK: Accepting

    private func accept(on index: Int) {
        guard !listening[index].removed else { return }  // removed earlier in the batch
        let listener = listening[index].listener
        for _ in 0..<64 {
            var port: CInt = 0
            let fd = peerAddress.withUnsafeMutableBufferPointer {
                ms_accept_stream(listening[index].fd, $0.baseAddress, $0.count, &port)
            }
            if fd < 0 {
                let code = -fd
                if code == EAGAIN || code == EWOULDBLOCK { return }
                if code == ECONNABORTED || code == EINTR || code == EPROTO { continue }
                if RelayResources.isExhaustion(code) { pauseAccepting(index, code: code) }
                return
            }
            let address =
                peerAddress[0] == 0
                ? nil : peerAddress.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if landing != nil {
                Glibc.close(fd)
                continue
            }
            let client = WorkerClient(
                fd: fd, loop: self, source: listener.source, connections: listening[index].connections,
                peerPort: port == 0 ? nil : Int(port))
            client.slot = take(.client(client))
            guard client.register() else {
                release(slot: client.slot)
                Glibc.close(fd)
                continue
            }
            clientCount += 1
            listening[index].connections.opened()
            client.start(
                address: address,
                proxyProtocol: listener.proxyProtocol
                    ? WorkerClient.ProxyHeaderCheck(trusted: listener.trustedProxies) : nil)
        }
    }

    /// Out of descriptors or memory: accepting stops for 100 ms (the error logged at most once a
    /// second), and the connections already open go on.
    private func pauseAccepting(_ index: Int, code: CInt) {
        let now = NIODeadline.now()
        if now - listening[index].lastLogged >= .seconds(1) {
            listening[index].lastLogged = now
            shared.logger.error(
                "relay '\(listening[index].listener.source.name)' cannot accept connections: \(RelayResources.describe(code)); retrying in 100ms"
            )
        }
        _ = ms_epoll_remove(epoll, listening[index].fd)
        listening[index].pausedUntil = now + .milliseconds(100)
    }

    // MARK: Deadlines

    /// Every connection's deadline, connects in progress and streams stalled past their send timeout.
    private func sweep() {
        let now = NIODeadline.now()
        nextSweep = now + Self.sweepInterval
        for index in listening.indices {
            if let until = listening[index].pausedUntil, now >= until, landing == nil,
                !listening[index].removed
            {
                listening[index].pausedUntil = nil
                let interest =
                    UInt32(MS_EPOLL_IN) | (listening[index].listener.shared ? UInt32(MS_EPOLL_EXCLUSIVE) : 0)
                _ = ms_epoll_set(epoll, listening[index].fd, Self.listenerToken(index), interest, 1)
            }
        }
        context.refreshShips()
        for slot in slots {
            switch slot {
            case .client(let client)?: client.sweep(now: now)
            case .ship(let ship)?: ship.sweep(now: now)
            default: break
            }
        }
        if let landing, now >= landing {
            for slot in slots {
                if case .client(let client)? = slot { client.close() }
            }
        }
    }

    // MARK: Landing

    private func startLanding(until deadline: NIODeadline) {
        landing = deadline
        // The relay closes the sockets once every worker stopped watching them.
        for socket in listening where !socket.removed { _ = ms_epoll_remove(epoll, socket.fd) }
        for slot in slots {
            if case .client(let client)? = slot { client.connection.drain() }
        }
    }

    /// Every client has gone: the idle ship connections close too.
    private func finish() {
        for slot in slots {
            switch slot {
            case .ship(let ship)?: ship.close()
            case .client(let client)?: client.close()
            default: break
            }
        }
        context.closeIdleConnections()
        // The sockets hold their loop: the closed ones let go of it now.
        reuseRetiredSlots()
    }

    /// A client connection closed or left for a bay.
    func clientLeft() {
        clientCount -= 1
    }
}
