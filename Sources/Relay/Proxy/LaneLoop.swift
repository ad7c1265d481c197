import CMothershipSystem
import NIOCore
import NIOHTTP1
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// The lane's thread (`ProxyLane`): its client connections, its ship connections and their pools,
/// confined to it. Every socket has a slot; a slot's index is its epoll token.
///
/// The rules are the event loops' (`RelayServerHandler`, `Exchange`, `UpstreamHandler`): the same
/// head parser and writer, route table, breakers, metrics, retries and timeouts. Timeouts are
/// checked every `sweepInterval`, so they fire up to that much late.
final class LaneLoop {
    static let sweepInterval = TimeAmount.milliseconds(100)
    /// The largest read from a client (a head, or pipelined heads) and from a ship.
    static let clientReadSize = 16 * 1024
    static let shipReadSize = 64 * 1024

    private enum Slot {
        case client(LaneClient)
        case ship(LaneShip)
    }

    private let lane: ProxyLane
    private let epoll: CInt
    private var slots: [Slot?] = []
    private var freeSlots: [Int] = []
    /// Slots freed while a batch of events is handled: reused only after it, so that an event of
    /// a closed socket still in the batch never reaches a new one.
    private var retiredSlots: [Int] = []
    private var clients = 0
    /// Idle keep-alive connections by ship index.
    private var pools: [[LaneShip]] = []
    private var requestIDs = RequestIDGenerator()
    private let allocator = ByteBufferAllocator()
    /// Every read lands here first; only what is left over (a partial head) is copied out.
    private var readBuffer: ByteBuffer
    /// What goes to a client after one read from its ship: the rewritten head and body slices.
    private var parts: [ByteBuffer] = []
    private var vectors: [iovec] = []
    private var responseHead: ByteBuffer
    private var draining = false
    private var drainDeadline = NIODeadline.distantFuture
    private var nextSweep = NIODeadline.now()

    init(lane: ProxyLane) {
        self.lane = lane
        self.epoll = lane.epoll
        readBuffer = allocator.buffer(capacity: Self.shipReadSize)
        responseHead = allocator.buffer(capacity: 1024)
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
                if tokens[index] == ProxyLane.wakeupToken {
                    woken = true
                } else {
                    handle(slot: Int(tokens[index]), events: events[index])
                }
            }
            if woken {
                ms_eventfd_drain(lane.wakeup)
                let (arrivals, stopping, deadline) = lane.takeArrivals()
                for arrival in arrivals { add(arrival) }
                if stopping && !draining { startDraining(until: deadline) }
            }
            if NIODeadline.now() >= nextSweep { sweep() }
            freeSlots.append(contentsOf: retiredSlots)
            retiredSlots.removeAll(keepingCapacity: true)
            if draining && clients == 0 {
                closeAll()
                return
            }
        }
    }

    private func handle(slot index: Int, events: UInt32) {
        guard index < slots.count, let slot = slots[index] else { return }  // closed earlier in the batch
        switch slot {
        case .client(let client):
            if client.interest == 0 {
                park(client)
                return
            }
            if events & UInt32(MS_EPOLL_OUT) != 0 { clientWritable(client) }
            if client.fd >= 0, events & UInt32(MS_EPOLL_IN | MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 {
                clientReadable(client)
            }
        case .ship(let ship):
            if ship.connecting {
                if events & UInt32(MS_EPOLL_OUT | MS_EPOLL_ERR | MS_EPOLL_HUP) != 0 { connected(ship) }
                return
            }
            if ship.interest == 0 {
                park(ship)
                return
            }
            if events & UInt32(MS_EPOLL_OUT) != 0 { shipWritable(ship) }
            if ship.fd >= 0, events & UInt32(MS_EPOLL_IN | MS_EPOLL_HUP | MS_EPOLL_ERR) != 0 {
                shipReadable(ship)
            }
        }
    }

    private func add(_ arrival: ProxyLane.Arrival) {
        if arrival.ship >= 0 {
            pool(ship: arrival.ship, index: arrival.shipIndex, board: arrival.settings.breakers)
        }
        let client = LaneClient(arrival: arrival)
        client.slot = take(.client(client))
        clients += 1
        guard ms_epoll_set(epoll, arrival.fd, UInt64(client.slot), UInt32(MS_EPOLL_IN), 1) == 0 else {
            close(client)
            return
        }
        client.interest = UInt32(MS_EPOLL_IN)
        if draining {
            close(client)
            return
        }
        becomeIdle(client)
    }

    /// An idle connection to a ship, from an event loop, for the pool.
    private func pool(ship fd: CInt, index: Int, board: BreakerBoard) {
        guard !draining, index >= 0 else {
            Glibc.close(fd)
            return
        }
        let allowance = board.idleAllowance(index)
        guard allowance.take() else {
            Glibc.close(fd)
            return
        }
        let ship = LaneShip(fd: fd, shipIndex: index)
        ship.parked = true  // not in epoll yet: `keepIdle` adds it
        ship.slot = take(.ship(ship))
        keepIdle(ship, allowance: allowance)
    }

    /// An idle connection (nothing unsent) in its ship's pool, read only to notice it closing;
    /// `allowance` is the ship's, with a place already taken for it.
    private func keepIdle(_ ship: LaneShip, allowance: IdleAllowance) {
        ship.allowance = allowance
        ship.client = nil
        setInterest(ship, UInt32(MS_EPOLL_IN))
        while pools.count <= ship.shipIndex { pools.append([]) }
        pools[ship.shipIndex].append(ship)
    }

    private func take(_ slot: Slot) -> Int {
        if let index = freeSlots.popLast() {
            slots[index] = slot
            return index
        }
        slots.append(slot)
        return slots.count - 1
    }

    private func release(slot index: Int) {
        slots[index] = nil
        retiredSlots.append(index)
    }

    // MARK: Clients

    private func clientReadable(_ client: LaneClient) {
        guard wantsToRead(client) else {
            updateInterest(client)
            return
        }
        startRead(after: &client.pending)
        let count = receive(client.fd, Self.clientReadSize)
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            close(client)  // gone; an exchange in progress is abandoned
            return
        }
        if client.exchange == nil || client.exchange?.bodyRemaining ?? 0 > 0 || client.discard > 0 {
            process(client)
        } else {
            // A response on its way holds further requests (pipelined) until it is out.
            keepPending(client)
            updateInterest(client)
        }
    }

    /// Whether the client is read now: not while its socket holds back our bytes; during an
    /// exchange, its body while the ship takes it (one read's worth may wait), or pipelined
    /// requests up to one read's worth.
    private func wantsToRead(_ client: LaneClient) -> Bool {
        guard client.unsent == nil else { return false }
        guard let exchange = client.exchange else { return true }
        if exchange.bodyRemaining > 0 && client.discard == 0 {
            if let ship = exchange.ship, !ship.connecting { return ship.unsent == nil }
            return (exchange.bodyWaiting?.readableBytes ?? 0) < Self.shipReadSize
        }
        return (client.pending?.readableBytes ?? 0) < Self.clientReadSize
    }

    /// Reads while `wantsToRead`; writes while something waits for the socket.
    private func updateInterest(_ client: LaneClient) {
        guard client.fd >= 0 else { return }
        let wanted =
            (wantsToRead(client) ? UInt32(MS_EPOLL_IN) : 0)
            | (client.unsent != nil ? UInt32(MS_EPOLL_OUT) : 0)
        setInterest(client, wanted)
    }

    /// Connecting: until writable. Then reads, unless its client's socket holds back what was
    /// read; writes while request bytes wait.
    private func updateInterest(_ ship: LaneShip) {
        guard ship.fd >= 0 else { return }
        if ship.connecting {
            setInterest(ship, UInt32(MS_EPOLL_OUT))
            return
        }
        let held = ship.client?.unsent != nil
        setInterest(ship, (held ? 0 : UInt32(MS_EPOLL_IN)) | (ship.unsent != nil ? UInt32(MS_EPOLL_OUT) : 0))
    }

    /// Sends `bytes` (then `more`) to a ship; what its socket does not take waits for it to be
    /// writable, and the client's body is not read meanwhile.
    private func send(_ bytes: ByteBuffer, then more: ByteBuffer? = nil, toShip ship: LaneShip) {
        let sent = more.map { send([bytes, $0], on: ship) } ?? send(bytes, on: ship)
        guard sent else {
            shipClosed(ship, error: errno)
            return
        }
        updateInterest(ship)
        if ship.unsent != nil, let client = ship.client { updateInterest(client) }
    }

    /// Requests from `readBuffer`, one after another while each is answered at once.
    private func process(_ client: LaneClient) {
        client.processing = true
        defer { client.processing = false }
        while client.fd >= 0, readBuffer.readableBytes > 0 {
            if client.discard > 0 {
                let dropped = min(client.discard, readBuffer.readableBytes)
                readBuffer.moveReaderIndex(forwardBy: dropped)
                client.discard -= dropped
                continue
            }
            if let exchange = client.exchange {
                if exchange.bodyRemaining > 0 { takeBody(client, exchange) }
                break
            }
            guard client.unsent == nil, !client.closeAfterWrites else { break }
            let start = readBuffer.readerIndex
            var head = MessageHead(bytes: readBuffer)
            swap(&head.fields, &client.fields)
            var scanned = 0
            let status = HeadParser.next(
                from: &readBuffer, kind: .request, limits: client.limits, scanned: &scanned, into: &head)
            switch status {
            case .incomplete:
                swap(&head.fields, &client.fields)
                keepPending(client)
                updateInterest(client)
                return
            case .failure:
                // The event loop answers it (400, 414, 431) as it answers any.
                swap(&head.fields, &client.fields)
                readBuffer.moveReaderIndex(to: start)
                handBack(client)
                return
            case .complete:
                let handled = received(head, client: client)
                swap(&head.fields, &client.fields)
                if !handled {
                    readBuffer.moveReaderIndex(to: start)
                    handBack(client)
                    return
                }
            }
        }
        if client.fd >= 0 { keepPending(client) }
        updateInterest(client)
    }

    /// Request body bytes from `readBuffer`, on their way to the ship (or waiting for it).
    private func takeBody(_ client: LaneClient, _ exchange: LaneExchange) {
        let slice = readBuffer.readSlice(length: min(exchange.bodyRemaining, readBuffer.readableBytes))!
        exchange.bodyRemaining -= slice.readableBytes
        if let ship = exchange.ship, !ship.connecting {
            exchange.bodySent = true
            send(slice, toShip: ship)
        } else {
            Self.append(slice, to: &exchange.bodyWaiting, allocator)
        }
    }

    /// Keeps what is left of `readBuffer` for the socket's next turn.
    private func keepPending(_ socket: LaneSocket) {
        guard readBuffer.readableBytes > 0 else { return }
        Self.append(readBuffer.readSlice(length: readBuffer.readableBytes)!, to: &socket.pending, allocator)
    }

    /// `bytes` after what `buffer` holds, copied (never a slice of a buffer that is reused).
    private static func append(
        _ bytes: ByteBuffer, to buffer: inout ByteBuffer?, _ allocator: ByteBufferAllocator
    ) {
        if buffer == nil { buffer = allocator.buffer(capacity: bytes.readableBytes) }
        buffer!.writeImmutableBuffer(bytes)
    }

    /// One request head: answered here, or proxied. False: the event loop takes the connection.
    private func received(_ head: MessageHead, client: LaneClient) -> Bool {
        guard !head.isUpgrade, !head.method.isConnect, !head.expectsContinue, !head.hasTransferEncoding
        else { return false }
        let close = !head.isKeepAlive || draining
        // A target that does not parse: the event loop answers it (400).
        guard let target = try? RequestTarget.parse(head.targetString, method: head.method) else {
            return false
        }
        let path = target.path
        let entry: RouteEntry
        let breaker: ShipBreaker
        let isTrial: Bool
        switch ShipRouting.decide(path: path, head: head, settings: client.settings).routing {
        case .answer(let response, let counted):
            answer(client, response, head: head, close: close, entry: counted)
            return true
        case .bay:
            return false
        case .ship(let shipEntry, let shipBreaker, let trial):
            (entry, breaker, isTrial) = (shipEntry, shipBreaker, trial)
        }
        client.requestHead.clear()
        ShipRouting.writeShipHead(
            head, target: target, entry: entry,
            client: HeadWriter.Client(addressBytes: client.addressBytes, secure: false),
            requestIDs: &requestIDs, into: &client.requestHead)
        let exchange = LaneExchange(
            entry: entry, breaker: breaker, isTrial: isTrial, method: head.method, target: target.forwarded,
            clientVersion: head.version, closeClient: close)
        exchange.bodyRemaining = head.contentLength ?? 0
        client.exchange = exchange
        if entry.shipIndex < pools.count, let ship = pools[entry.shipIndex].popLast() {
            ship.leavePool()
            attach(ship, to: client, exchange, reused: true)
        } else {
            connect(client, exchange)
        }
        return true
    }

    private func answer(
        _ client: LaneClient, _ response: LocalResponse, head: MessageHead, close: Bool, entry: RouteEntry?
    ) {
        entry?.requests.increment()
        var bytes = allocator.buffer(capacity: 256)
        HeadWriter.local(
            response, version: head.version, close: close, isHead: head.method.isHead, into: &bytes)
        // The request's body, if any, is read and dropped; then the next request.
        client.discard = head.contentLength ?? 0
        if close { client.closeAfterWrites = true }
        write([bytes], to: client)
        if client.fd >= 0 && client.unsent == nil && close { self.close(client) }
    }

    private func becomeIdle(_ client: LaneClient) {
        client.deadline = .now() + client.settings.limits.idleTimeout
    }

    /// Sends `buffers` to the client; what its socket does not take waits for it to be writable,
    /// and the ship is not read meanwhile.
    private func write(_ buffers: [ByteBuffer], to client: LaneClient) {
        guard client.fd >= 0, !buffers.isEmpty else { return }
        let waited = client.unsent != nil
        guard send(buffers, on: client) else {
            close(client)
            return
        }
        guard !waited, client.unsent != nil else { return }
        updateInterest(client)
        if let ship = client.exchange?.ship { updateInterest(ship) }
    }

    private func clientWritable(_ client: LaneClient) {
        guard sendUnsent(client) else {
            close(client)
            return
        }
        guard client.unsent == nil else { return }
        if client.closeAfterWrites && client.exchange == nil {
            close(client)
            return
        }
        updateInterest(client)
        if let ship = client.exchange?.ship {
            updateInterest(ship)
        } else if client.pending != nil {
            startRead(after: &client.pending)
            process(client)
        }
    }

    /// Gives the connection to an event loop with `readBuffer`'s bytes (from the head it did not take).
    private func handBack(_ client: LaneClient) {
        var bytes = allocator.buffer(capacity: readBuffer.readableBytes)
        bytes.writeBuffer(&readBuffer)
        detach(client)
        clients -= 1
        lane.handBack(client.arrival, bytes)
    }

    private func close(_ client: LaneClient) {
        guard client.fd >= 0 else { return }
        if let exchange = client.exchange {
            client.exchange = nil
            if exchange.isTrial && !exchange.finished { exchange.breaker.abandonTrial() }
            if let ship = exchange.ship { close(ship) }
        }
        closeSocket(client)
        client.unsent = nil
        client.pending = nil
        clients -= 1
    }

    // MARK: Ships

    private func connect(_ client: LaneClient, _ exchange: LaneExchange) {
        let address: BindAddress
        guard case .ship(_, let shipAddress, _) = exchange.entry.target else { return }
        address = shipAddress
        let fd: CInt
        switch address {
        case .tcp(let host, let port):
            fd = ms_connect_stream(host, CInt(port), nil, CInt(exchange.attempts - 1))
        case .unix(let path): fd = ms_connect_stream(nil, 0, path, 0)
        }
        guard fd >= 0 else {
            connectFailed(client, exchange, error: -fd)
            return
        }
        let ship = LaneShip(fd: fd, shipIndex: exchange.entry.shipIndex)
        ship.slot = take(.ship(ship))
        ship.connecting = true
        ship.client = client
        exchange.ship = ship
        guard ms_epoll_set(epoll, fd, UInt64(ship.slot), UInt32(MS_EPOLL_OUT), 1) == 0 else {
            exchange.ship = nil
            close(ship)
            connectFailed(client, exchange, error: ENOMEM)
            return
        }
        ship.interest = UInt32(MS_EPOLL_OUT)
        client.deadline = .now() + client.settings.limits.connectTimeout
    }

    private func connected(_ ship: LaneShip) {
        let error = ms_socket_error(ship.fd)
        guard let client = ship.client, let exchange = client.exchange, exchange.ship === ship else {
            close(ship)
            return
        }
        exchange.ship = nil
        guard error == 0 else {
            close(ship)
            connectFailed(client, exchange, error: error)
            return
        }
        ship.connecting = false
        attach(ship, to: client, exchange, reused: false)
    }

    /// As the event loops: retried on a fresh connection while attempts remain, then 502.
    private func connectFailed(_ client: LaneClient, _ exchange: LaneExchange, error: CInt) {
        let limits = client.settings.limits
        if RelayResources.isExhaustion(error) {
            // The relay's own failure (no descriptors, no memory): not the ship's (SPEC §4).
            fail(
                client, exchange, .relayExhausted(ship: exchange.entry.ship, code: error), shipAtFault: false)
        } else if exchange.attempts <= limits.retries {
            exchange.attempts += 1
            connect(client, exchange)
        } else {
            fail(
                client, exchange,
                .badGateway(ship: exchange.entry.ship, reason: String(cString: strerror(error)).lowercased()))
        }
    }

    private func attach(_ ship: LaneShip, to client: LaneClient, _ exchange: LaneExchange, reused: Bool) {
        exchange.ship = ship
        exchange.reused = reused
        ship.client = client
        ship.phase = .head
        client.deadline = (reused ? exchange.started : .now()) + client.settings.limits.firstByteTimeout
        // The head, with the body bytes that came before the connection was ready.
        let waiting = exchange.bodyWaiting
        if waiting != nil {
            exchange.bodyWaiting = nil
            exchange.bodySent = true
        }
        send(client.requestHead, then: waiting, toShip: ship)
        if client.fd >= 0 { updateInterest(client) }
    }

    private func shipWritable(_ ship: LaneShip) {
        guard sendUnsent(ship) else {
            shipClosed(ship, error: errno)
            return
        }
        guard ship.unsent == nil else { return }
        updateInterest(ship)
        if let client = ship.client { updateInterest(client) }  // its body may go on
    }

    private func shipReadable(_ ship: LaneShip) {
        guard let client = ship.client, let exchange = client.exchange, exchange.ship === ship else {
            // An idle pooled connection: the ship closed it (or sent what nobody asked for).
            removeFromPool(ship)
            close(ship)
            return
        }
        startRead(after: &ship.pending)
        let count = receive(ship.fd, Self.shipReadSize)
        if count == 0 {
            shipClosed(ship, error: nil)
            return
        }
        if count < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { shipClosed(ship, error: errno) }
            return
        }
        parts.removeAll(keepingCapacity: true)
        let outcome = takeResponse(from: ship, client: client, exchange)
        write(parts, to: client)
        parts.removeAll(keepingCapacity: true)
        // A client that failed to take the bytes is closed, with its exchange and this connection.
        guard client.fd >= 0 else { return }
        switch outcome {
        case .more:
            keepPending(ship)
        case .ended(let reusable):
            finish(client, exchange, ship: ship, reusable: reusable && readBuffer.readableBytes == 0)
        case .malformed(let reason):
            exchange.ship = nil
            close(ship)
            if exchange.responseStarted {
                broke(client, exchange)
            } else {
                fail(
                    client, exchange,
                    .badGateway(ship: exchange.entry.ship, reason: "invalid response: \(reason)"))
            }
        }
    }

    private enum ResponseProgress {
        case more
        case ended(reusable: Bool)
        case malformed(String)
    }

    /// Reads the response off `readBuffer` into `parts`.
    private func takeResponse(from ship: LaneShip, client: LaneClient, _ exchange: LaneExchange)
        -> ResponseProgress
    {
        while true {
            switch ship.phase {
            case .head:
                var head = MessageHead(bytes: readBuffer)
                swap(&head.fields, &ship.fields)
                var scanned = 0
                let status = HeadParser.next(
                    from: &readBuffer, kind: .response, limits: .response, scanned: &scanned, into: &head)
                defer { swap(&head.fields, &ship.fields) }
                switch status {
                case .incomplete:
                    return .more
                case .failure(let failure):
                    switch failure {
                    case .malformed(let reason): return .malformed(reason)
                    case .uriTooLong, .headersTooLarge: return .malformed("response head too large")
                    }
                case .complete:
                    if head.status >= 100 && head.status < 200 {
                        if head.status == 101 {
                            return .malformed("101 Switching Protocols to a request that did not ask")
                        }
                        continue  // informational: the final head follows
                    }
                    startResponse(head, client: client, exchange, ship: ship)
                    if case .head = ship.phase { return .ended(reusable: true) }  // no body
                }
            case .body(var framing, let reframing):
                if readBuffer.readableBytes == 0 { return .more }
                let ended: Bool
                do {
                    if reframing == .dechunk {
                        ended = try framing.takeDechunked(from: &readBuffer) { parts.append($0) }
                    } else {
                        let (slice, done) = try framing.take(from: &readBuffer)
                        if let slice { emit(slice, reframing: reframing) }
                        ended = done
                    }
                } catch {
                    return .malformed("invalid chunked body")
                }
                if ended {
                    if reframing == .chunk { parts.append(ByteBuffer(staticString: "0\r\n\r\n")) }
                    ship.phase = .head
                    return .ended(reusable: true)
                }
                ship.phase = .body(framing, reframing)
            }
        }
    }

    private func emit(_ body: ByteBuffer, reframing: HeadWriter.Reframing) {
        if reframing == .chunk {
            var size = allocator.buffer(capacity: 12)
            HeadWriter.writeChunkSize(body.readableBytes, into: &size)
            parts.append(size)
            parts.append(body)
            parts.append(ByteBuffer(staticString: "\r\n"))
        } else {
            parts.append(body)
        }
    }

    /// The final response head: rewritten for the client into `parts`; the ship's phase says how
    /// its body is read (still `.head` when there is none).
    private func startResponse(
        _ response: MessageHead, client: LaneClient, _ exchange: LaneExchange, ship: LaneShip
    ) {
        exchange.responseStarted = true
        client.deadline = nil
        exchange.shipKeepAlive = response.isKeepAlive
        if draining { exchange.closeClient = true }
        let framing = BodyFraming.response(response, answeringHEAD: exchange.isHead)
        if exchange.clientVersion == .http1_0 && response.contentLength == nil && !framing.isNone {
            exchange.closeClient = true
        }
        var reframing = HeadWriter.Reframing.none
        if case .untilClose = framing, exchange.clientVersion == .http1_1 {
            reframing = .chunk
        } else if case .chunked = framing, exchange.clientVersion == .http1_0 {
            reframing = .dechunk
        }
        responseHead.clear()
        HeadWriter.clientResponse(
            response, clientVersion: exchange.clientVersion, closeAfter: exchange.closeClient,
            reframing: reframing, into: &responseHead)
        parts.append(responseHead)
        if !framing.isNone { ship.phase = .body(framing, reframing) }
    }

    /// The ship's connection ended (or failed) while `ship` served an exchange.
    private func shipClosed(_ ship: LaneShip, error: CInt?) {
        guard let client = ship.client, let exchange = client.exchange, exchange.ship === ship else {
            removeFromPool(ship)
            close(ship)
            return
        }
        exchange.ship = nil
        let phase = ship.phase
        close(ship)
        if case .body(.untilClose, let reframing) = phase {
            // The body that ends with the connection has ended.
            parts.removeAll(keepingCapacity: true)
            if reframing == .chunk { parts.append(ByteBuffer(staticString: "0\r\n\r\n")) }
            write(parts, to: client)
            parts.removeAll(keepingCapacity: true)
            guard client.fd >= 0 else { return }
            finish(client, exchange, ship: nil, reusable: false)
        } else if exchange.responseStarted {
            broke(client, exchange)
        } else if exchange.reused && !exchange.bodySent && exchange.method.isIdempotent
            && exchange.attempts <= client.settings.limits.retries
        {
            // A pooled connection the ship had closed while idle (as the event loops decide).
            exchange.attempts += 1
            connect(client, exchange)
        } else {
            fail(
                client, exchange,
                .badGateway(
                    ship: exchange.entry.ship,
                    reason: error.map { String(cString: strerror($0)).lowercased() }
                        ?? "connection closed before a response"))
        }
    }

    private func close(_ ship: LaneShip) {
        guard ship.fd >= 0 else { return }
        closeSocket(ship)
        ship.client = nil
    }

    private func removeFromPool(_ ship: LaneShip) {
        guard ship.shipIndex < pools.count,
            let index = pools[ship.shipIndex].firstIndex(where: { $0 === ship })
        else { return }
        pools[ship.shipIndex].remove(at: index)
        ship.leavePool()
    }

    // MARK: Endings

    private func finish(_ client: LaneClient, _ exchange: LaneExchange, ship: LaneShip?, reusable: Bool) {
        record(exchange, success: true)
        client.exchange = nil
        if let ship {
            exchange.ship = nil
            if exchange.shipKeepAlive && reusable && ship.unsent == nil && exchange.bodyRemaining == 0
                && exchange.bodyWaiting == nil && !draining,
                case let allowance = client.settings.breakers.idleAllowance(ship.shipIndex), allowance.take()
            {
                keepIdle(ship, allowance: allowance)
            } else {
                close(ship)
            }
        }
        // A ship that answered before the body's end: the rest is read and dropped (the event
        // loops do the same), then the next request.
        client.discard = exchange.bodyRemaining
        settle(client, close: exchange.closeClient || draining)
    }

    /// After a response: the connection closes once it is out, or takes its next request.
    private func settle(_ client: LaneClient, close: Bool) {
        guard client.fd >= 0 else { return }
        if close {
            client.closeAfterWrites = true
            if client.unsent == nil { self.close(client) }
            return
        }
        becomeIdle(client)
        // Inside `process` (an answer given while taking a request) the loop there goes on.
        guard !client.processing, client.unsent == nil else { return }
        updateInterest(client)
        if client.pending != nil {
            startRead(after: &client.pending)
            process(client)
        }
    }

    /// The response started and cannot finish: what was read goes out, then the client closes.
    private func broke(_ client: LaneClient, _ exchange: LaneExchange) {
        record(exchange, success: false)
        client.exchange = nil
        settle(client, close: true)
    }

    private func fail(
        _ client: LaneClient, _ exchange: LaneExchange, _ response: LocalResponse, shipAtFault: Bool = true
    ) {
        record(exchange, success: shipAtFault ? false : nil)
        client.exchange = nil
        client.settings.logger.warning(
            "\(response.status.code) for \(exchange.method) \(exchange.target): \(response.message)")
        // With its body still coming, the connection closes after the answer (as on the loops).
        let close = exchange.closeClient || exchange.bodyRemaining > 0
        var bytes = allocator.buffer(capacity: 256)
        HeadWriter.local(
            response, version: exchange.clientVersion, close: close, isHead: exchange.isHead, into: &bytes)
        write([bytes], to: client)
        settle(client, close: close)
    }

    /// As `Exchange.record`: nil is a failure of the relay's own, kept out of the ship's breaker.
    private func record(_ exchange: LaneExchange, success: Bool?) {
        exchange.finished = true
        exchange.entry.requests.increment()
        exchange.entry.duration.record(
            nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds - exchange.started.uptimeNanoseconds))
        switch success {
        case true?: exchange.breaker.recordSuccess()
        case false?: exchange.breaker.recordFailure()
        case nil: if exchange.isTrial { exchange.breaker.abandonTrial() }
        }
    }

    // MARK: Timeouts and landing

    /// Idle connections past their idle timeout close; exchanges without a connection or a first
    /// byte in time get 504.
    private func sweep() {
        let now = NIODeadline.now()
        nextSweep = now + Self.sweepInterval
        let landed = draining && now >= drainDeadline
        for slot in slots {
            guard case .client(let client) = slot, client.fd >= 0 else { continue }
            if landed {
                close(client)
                continue
            }
            let limits = client.settings.limits
            if client.unsent != nil && now - client.stalledSince >= limits.sendTimeout {
                // SPEC §4: a client that takes nothing of a response is closed, freeing its ship.
                client.settings.logger.info(
                    "closing a client that took nothing of its response for \(DurationText.format(.nanoseconds(limits.sendTimeout.nanoseconds)))",
                    metadata: ["client": "\(client.arrival.address ?? "-")"])
                // A reset, as on the event loops: the unsent bytes go with the socket.
                var reset = linger(l_onoff: 1, l_linger: 0)
                _ = setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
                close(client)
                continue
            }
            guard let deadline = client.deadline, now >= deadline else { continue }
            client.deadline = nil
            guard let exchange = client.exchange else {
                close(client)
                continue
            }
            guard !exchange.responseStarted, let ship = exchange.ship else { continue }
            let reason =
                ship.connecting
                ? "no connection within \(DurationText.format(.nanoseconds(limits.connectTimeout.nanoseconds)))"
                : "no response within \(DurationText.format(.nanoseconds(limits.firstByteTimeout.nanoseconds)))"
            exchange.ship = nil
            close(ship)
            fail(client, exchange, .gatewayTimeout(ship: exchange.entry.ship, reason: reason))
        }
    }

    private func startDraining(until deadline: NIODeadline) {
        draining = true
        drainDeadline = deadline
        for slot in slots {
            guard case .client(let client) = slot, client.fd >= 0 else { continue }
            if client.exchange == nil && client.unsent == nil {
                close(client)
            } else if client.exchange == nil {
                client.closeAfterWrites = true  // once its last response is out
            } else if let exchange = client.exchange, !exchange.responseStarted {
                exchange.closeClient = true
            }
        }
    }

    private func closeAll() {
        for slot in slots {
            switch slot {
            case .client(let client): close(client)
            case .ship(let ship): close(ship)
            case nil: break
            }
        }
        for pool in pools { for ship in pool { ship.leavePool() } }
        pools.removeAll()
    }

    // MARK: System calls

    private func setInterest(_ socket: LaneSocket, _ interest: UInt32) {
        guard socket.fd >= 0, socket.interest != interest else { return }
        socket.interest = interest
        if socket.parked {
            guard interest != 0 else { return }
            socket.parked = false
            _ = ms_epoll_set(epoll, socket.fd, UInt64(socket.slot), interest, 1)
        } else {
            _ = ms_epoll_set(epoll, socket.fd, UInt64(socket.slot), interest, 0)
        }
    }

    /// A hang-up (or error) reported while nothing is wanted from the socket: out of epoll until
    /// something is, so that it is not reported again on every wait.
    private func park(_ socket: LaneSocket) {
        guard socket.fd >= 0, !socket.parked else { return }
        socket.parked = true
        _ = ms_epoll_remove(epoll, socket.fd)
    }

    /// Out of epoll and out of its slot; the descriptor is the caller's.
    private func detach(_ socket: LaneSocket) {
        if !socket.parked { _ = ms_epoll_remove(epoll, socket.fd) }
        socket.fd = -1
        release(slot: socket.slot)
    }

    private func closeSocket(_ socket: LaneSocket) {
        let fd = socket.fd
        detach(socket)
        Glibc.close(fd)
    }

    /// Sends `bytes` on `socket` after whatever already waits there; what it does not take waits
    /// in `unsent`. False: the socket failed (`errno` says why).
    private func send(_ bytes: ByteBuffer, on socket: LaneSocket) -> Bool {
        if socket.unsent != nil {
            Self.append(bytes, to: &socket.unsent, allocator)
            return true
        }
        let sent = bytes.withUnsafeReadableBytes { ms_send(socket.fd, $0.baseAddress, $0.count) }
        if sent == bytes.readableBytes { return true }
        if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return false }
        socket.stalledSince = .now()
        Self.append(
            bytes.getSlice(at: bytes.readerIndex + max(sent, 0), length: bytes.readableBytes - max(sent, 0))!,
            to: &socket.unsent, allocator)
        return true
    }

    /// The same for several buffers, in one `sendmsg`.
    private func send(_ buffers: [ByteBuffer], on socket: LaneSocket) -> Bool {
        if socket.unsent != nil {
            for buffer in buffers { Self.append(buffer, to: &socket.unsent, allocator) }
            return true
        }
        let sent =
            buffers.count == 1
            ? buffers[0].withUnsafeReadableBytes { ms_send(socket.fd, $0.baseAddress, $0.count) }
            : SocketWriter.send(buffers, to: socket.fd, vectors: &vectors)
        var total = 0
        for index in buffers.indices { total += buffers[index].readableBytes }
        if sent == total { return true }
        if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return false }
        socket.stalledSince = .now()
        var skip = max(sent, 0)
        for var buffer in buffers {
            if skip >= buffer.readableBytes {
                skip -= buffer.readableBytes
                continue
            }
            buffer.moveReaderIndex(forwardBy: skip)
            skip = 0
            Self.append(buffer, to: &socket.unsent, allocator)
        }
        return true
    }

    /// Sends what waits in `unsent` (nil once all of it is out). False: the socket failed.
    private func sendUnsent(_ socket: LaneSocket) -> Bool {
        guard var unsent = socket.unsent else { return true }
        let sent = unsent.withUnsafeReadableBytes { ms_send(socket.fd, $0.baseAddress, $0.count) }
        if sent < 0 { return errno == EAGAIN || errno == EWOULDBLOCK }
        unsent.moveReaderIndex(forwardBy: sent)
        socket.unsent = unsent.readableBytes > 0 ? unsent : nil
        if sent > 0 { socket.stalledSince = .now() }  // it took some: the send timeout starts over
        return true
    }

    /// Empties `readBuffer` for a read, with what was left over from the last one first.
    private func startRead(after pending: inout ByteBuffer?) {
        readBuffer.clear()
        if var bytes = pending {
            pending = nil
            readBuffer.writeBuffer(&bytes)
        }
    }

    /// One `recv` into `readBuffer` after what it holds.
    private func receive(_ fd: CInt, _ size: Int) -> Int {
        readBuffer.reserveCapacity(minimumWritableBytes: size)
        let count = readBuffer.withUnsafeMutableWritableBytes {
            ms_recv(fd, $0.baseAddress, min(size, $0.count))
        }
        if count > 0 { readBuffer.moveWriterIndex(forwardBy: count) }
        return count
    }
}

/// What the lane keeps of each of its sockets (a client's or a ship's).
class LaneSocket {
    var fd: CInt
    /// Its index in the lane's table, and its epoll token.
    var slot = -1
    /// The epoll interest registered now.
    var interest: UInt32 = 0
    /// Out of epoll: hung up while nothing was wanted from it (epoll reports a hang-up whatever
    /// the interest); added again when something is.
    var parked = false
    /// Bytes read and not yet taken (a partial head; a client's requests waiting their turn).
    var pending: ByteBuffer?
    /// Bytes the socket has not taken yet.
    var unsent: ByteBuffer?
    /// Since when the socket has taken none of `unsent` (the send timeout).
    var stalledSince = NIODeadline.distantPast
    /// The last head's field list, for the next head to parse into.
    var fields: [HeaderField] = []

    init(fd: CInt) { self.fd = fd }
}

/// A client connection on the lane.
final class LaneClient: LaneSocket {
    let arrival: ProxyLane.Arrival
    let settings: ListenerSettings
    let addressBytes: [UInt8]?
    let limits: HeadParser.Limits
    /// The head sent to the ship (kept for a retry).
    var requestHead = ByteBuffer()
    var exchange: LaneExchange?
    var closeAfterWrites = false
    /// Idle: the connection closes then; in an exchange: 504.
    var deadline: NIODeadline?
    /// Inside `process`: what it calls must not start it again.
    var processing = false
    /// Body bytes of an answered request still to come, dropped (the ship answered early).
    var discard = 0

    init(arrival: ProxyLane.Arrival) {
        self.arrival = arrival
        self.settings = arrival.settings
        self.addressBytes = arrival.address.map { Array($0.utf8) }
        self.limits = HeadParser.Limits(arrival.settings.limits)
        super.init(fd: arrival.fd)
    }
}

/// A connection to a ship, serving one exchange or idle in its pool.
final class LaneShip: LaneSocket {
    enum Phase {
        case head
        case body(BodyFraming, HeadWriter.Reframing)
    }

    let shipIndex: Int
    /// The ship's idle allowance while this connection is in its pool (a place taken in it).
    var allowance: IdleAllowance?
    var connecting = false
    var phase = Phase.head
    var client: LaneClient?

    init(fd: CInt, shipIndex: Int) {
        self.shipIndex = shipIndex
        super.init(fd: fd)
    }

    /// Out of its pool: its place in the ship's idle allowance is free again.
    func leavePool() {
        allowance?.give()
        allowance = nil
    }
}

/// One proxied request on the lane.
final class LaneExchange {
    let entry: RouteEntry
    let breaker: ShipBreaker
    let isTrial: Bool
    let method: HTTPMethod
    let target: String
    let clientVersion: HTTPVersion
    var closeClient: Bool
    let started = NIODeadline.now()
    var ship: LaneShip?
    var attempts = 1
    var reused = false
    var responseStarted = false
    var shipKeepAlive = true
    var finished = false
    /// Request body bytes (Content-Length) still to come from the client.
    var bodyRemaining = 0
    /// Body bytes read before a ship connection was ready for them.
    var bodyWaiting: ByteBuffer?
    /// Some body bytes went to a ship: the request is not retried from here.
    var bodySent = false

    init(
        entry: RouteEntry, breaker: ShipBreaker, isTrial: Bool, method: HTTPMethod, target: String,
        clientVersion: HTTPVersion, closeClient: Bool
    ) {
        self.entry = entry
        self.breaker = breaker
        self.isTrial = isTrial
        self.method = method
        self.isHead = method.isHead
        self.target = target
        self.clientVersion = clientVersion
        self.closeClient = closeClient
    }

    /// Stored: reading it from `method` copies the enum (a retain for a non-standard method).
    let isHead: Bool
}
