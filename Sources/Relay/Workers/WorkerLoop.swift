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
/// `sweepInterval`) and runs what its connections ask for later. Level-triggered; a socket is
/// watched for reading while its connection reads and for writing while bytes wait for it.
final class WorkerLoop {
    static let sweepInterval = TimeAmount.milliseconds(100)
    /// The largest read from a client (a head, or pipelined heads) and from a ship.
    static let clientReadSize = 16 * 1024
    static let shipReadSize = 64 * 1024
    /// Like SwiftNIO's write water marks: past `highWater` bytes waiting, a socket is not writable
    /// (the peer feeding it stops being read) until they drop below `lowWater`.
    static let highWater = 32 * 1024
    static let lowWater = 16 * 1024

    enum Slot {
        case listener(Int)
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
    /// Slots freed while a batch of events is handled: reused only after it, so that an event of a
    /// closed socket still in the batch never reaches a new one.
    private var retiredSlots: [Int] = []
    private(set) var clientCount = 0
    /// Connections that asked to process what they hold after the current event.
    var later: [WorkerClient] = []
    /// Work that must not run inside the call that set it off (a connect's completion).
    var deferred: [() -> Void] = []
    let allocator = ByteBufferAllocator()
    /// Every read lands here first; what a connection keeps of it is copied on the next write.
    var readBuffer: ByteBuffer
    var vectors: [iovec] = []
    private var landing: NIODeadline?
    private var nextSweep = NIODeadline.now()

    private struct ListeningSocket {
        let fd: CInt
        var listener: RelayWorkers.Listener
        /// A reload removed the bind: the socket is no longer watched (the relay closes it).
        var removed = false
        let connections: RelayMetrics.Connections
        var slot = -1
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
        readBuffer = allocator.buffer(capacity: Self.shipReadSize)
        if let hooks = shared.hooks { _ = try context.hooks(for: hooks) }
        context.requests = RelayMetrics.workerRequests(index)
        for listener in shared.listeners { try watch(listener) }
    }

    /// Starts accepting on `listener`'s socket of this worker.
    private func watch(_ listener: RelayWorkers.Listener) throws {
        let fd = listener.shared ? listener.sockets[0] : listener.sockets[index]
        var socket = ListeningSocket(
            fd: fd, listener: listener, connections: shared.metrics.connections(listener.source.name))
        socket.slot = take(.listener(listening.count))
        let interest = UInt32(MS_EPOLL_IN) | (listener.shared ? UInt32(MS_EPOLL_EXCLUSIVE) : 0)
        let status = ms_epoll_set(epoll, fd, UInt64(socket.slot), interest, 1)
        guard status == 0 else {
            release(slot: socket.slot)
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
                    release(slot: listening[index].slot)
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
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        nextSweep = .now() + Self.sweepInterval
        while true {
            let wait = Int32(max(0, (nextSweep - .now()).nanoseconds / 1_000_000 + 1))
            let count = ms_epoll_wait(epoll, &tokens, &events, Int32(tokens.count), wait)
            var woken = false
            for index in 0..<Int(max(count, 0)) {
                if tokens[index] == WorkerHandle.wakeupToken {
                    woken = true
                } else {
                    handle(slot: Int(tokens[index]), events: events[index])
                }
                runLater()
            }
            if woken {
                ms_eventfd_drain(wakeup)
                let (changes, batches) = handle.takeChanges()
                if landing == nil { apply(changes) }
                handle.acknowledge(upTo: batches)
                if landing == nil, let deadline = handle.landing() { startLanding(until: deadline) }
            }
            if NIODeadline.now() >= nextSweep { sweep() }
            runLater()
            freeSlots.append(contentsOf: retiredSlots)
            retiredSlots.removeAll(keepingCapacity: true)
            if landing != nil && clientCount == 0 {
                finish()
                return
            }
        }
    }

    private func handle(slot index: Int, events: UInt32) {
        guard index < slots.count, let slot = slots[index] else { return }  // closed earlier in the batch
        switch slot {
        case .listener(let listener):
            accept(on: listener)
        case .client(let client):
            client.handle(events: events)
        case .ship(let ship):
            ship.handle(events: events)
        }
    }

    /// What connections asked for during the last event (a pipelined request; a connect's outcome).
    private func runLater() {
        var rounds = 0
        while (!later.isEmpty || !deferred.isEmpty) && rounds < 16 {
            rounds += 1
            let clients = later
            later.removeAll(keepingCapacity: true)
            for client in clients where client.isOpen { client.connection.processInbound() }
            let work = deferred
            deferred.removeAll(keepingCapacity: true)
            for item in work { item() }
        }
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
        slots[index] = nil
        retiredSlots.append(index)
    }

    // MARK: Accepting

    private func accept(on index: Int) {
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
                _ = ms_epoll_set(epoll, listening[index].fd, UInt64(listening[index].slot), interest, 1)
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
    }

    /// A client connection closed or left for a bay.
    func clientLeft() {
        clientCount -= 1
    }
}
