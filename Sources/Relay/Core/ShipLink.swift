import NIOCore
import NIOHTTP1
import ShipManifest

/// The relay's end of one keep-alive connection to a ship, as a model without I/O. It lives on its
/// client's thread; while leased it parses the ship's response (head, then body framing) and hands
/// both to its `owner`, and it holds back reads while the client cannot take more data
/// (backpressure). After an accepted upgrade it is one end of a byte tunnel to the client's
/// connection. Everything it does to the world goes through its `ShipTransport`.
final class ShipLink {
    /// The driver; nil once it let go of the connection. Not counted, as `ClientConnection`'s: the
    /// driver owns the link and clears this (`detach`) before it goes.
    private(set) unowned(unsafe) var transport: (any ShipTransport)?
    /// The exchange using this connection now; nil while idle in the pool. Strong (a weak
    /// reference costs an allocation per exchange): every way an exchange lets go of its
    /// connection clears it, and so does the connection closing.
    var owner: Exchange?
    /// Strong, like `tunnelPeer`: a weak reference would move the object's reference counts to a
    /// side table and make every retain of it slower. Pools live as long as their thread; both are
    /// cleared when the connection closes.
    var pool: UpstreamPool?
    /// The client's connection once this connection is a tunnel.
    private var tunnelPeer: ClientConnection? {
        didSet { peerEnd = tunnelPeer.map { Unmanaged.passUnretained($0) } }
    }
    /// `tunnelPeer`, unretained, for the two calls each tunnelled read makes through it
    /// (`writeToClient`, `flushClient`): `tunnelPeer` holds it meanwhile, and its driver too.
    private var peerEnd: Unmanaged<ClientConnection>?
    /// Set by the owner while the client's socket is full (reading is off).
    private var readsPaused = false
    /// A tunnel counts as in flight on its instance until it closes.
    private var tunnelLoad: InstanceLoad?

    private enum Phase {
        case idle
        case head
        case body(BodyFraming, dechunk: Bool)
        case tunnel
    }
    private var phase = Phase.idle
    private var inbound: ByteBuffer?
    private var scanned = 0
    /// The last head's field list, for the next head to parse into.
    private var spareFields: [HeaderField] = []

    /// The socket's writability, kept from the driver's change events.
    private(set) var isWritable = false
    /// Open: set when the driver says the connection is up, cleared when it closes (cheaper than
    /// asking the driver on every lease).
    private(set) var isActive = false

    init() {}

    // MARK: Events from the driver

    /// The driver is ready (`active`: the socket is connected).
    func start(transport: any ShipTransport, active: Bool) {
        self.transport = transport
        isActive = active
        isWritable = transport.isWritable
    }

    func becameActive() { isActive = true }

    /// The driver lets go: nothing is done through it any more.
    func detach() { transport = nil }

    /// A request head is about to go out: the next bytes from the ship start its response.
    func expectResponse() {
        phase = .head
        inbound = nil
        scanned = 0
    }

    /// Bytes read from the ship.
    func received(_ bytes: ByteBuffer) {
        if case .tunnel = phase {
            peerEnd?._withUnsafeGuaranteedRef { $0.writeToClient(bytes) }
            return
        }
        guard owner != nil else {
            // An idle connection that talks out of turn cannot be trusted with the next request.
            close()
            return
        }
        if var buffered = inbound, buffered.readableBytes > 0 {
            inbound = nil
            var more = bytes
            buffered.writeBuffer(&more)
            process(buffered)
        } else {
            process(bytes)
        }
    }

    private func process(_ bytes: ByteBuffer) {
        var buffer = bytes
        loop: while let owner {
            switch phase {
            case .idle:
                // Bytes beyond the end of a response: the connection is out of step.
                owner.upstreamMalformed(self, reason: "bytes after the end of a response")
                buffer.moveReaderIndex(to: buffer.writerIndex)
                break loop
            case .head:
                // As in the client's connection: parsed into a local with the last head's field list.
                var head = MessageHead(bytes: buffer)
                swap(&head.fields, &spareFields)
                // `scanned` goes through a local: no access to the property spans the parse.
                var scanned = self.scanned
                let parsed = HeadParser.next(
                    from: &buffer, kind: .response, limits: .response, scanned: &scanned, into: &head)
                self.scanned = scanned
                switch parsed {
                case .incomplete:
                    swap(&head.fields, &spareFields)
                    break loop
                case .failure(let failure):
                    owner.upstreamMalformed(self, reason: Self.describe(failure))
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                case .complete:
                    if head.status >= 100 && head.status < 200 && head.status != 101 {
                        swap(&head.fields, &spareFields)
                        continue loop  // informational: the final head follows
                    }
                    let action = owner.responseHead(head, from: self)
                    swap(&head.fields, &spareFields)
                    switch action {
                    case .read(let framing, let dechunk):
                        if framing.isNone {
                            endResponse(for: owner, leftover: buffer.readableBytes)
                            break loop
                        }
                        phase = .body(framing, dechunk: dechunk)
                    case .tunnel:
                        break loop
                    case .close:
                        buffer.moveReaderIndex(to: buffer.writerIndex)
                        break loop
                    }
                }
            case .body(var framing, let dechunk):
                if buffer.readableBytes == 0 { break loop }
                let ended: Bool
                do {
                    if dechunk {
                        ended = try framing.takeDechunked(from: &buffer) {
                            owner.responseBody($0, from: self)
                        }
                    } else {
                        let (slice, done) = try framing.take(from: &buffer)
                        if let slice { owner.responseBody(slice, from: self) }
                        ended = done
                    }
                } catch {
                    owner.upstreamMalformed(self, reason: "invalid chunked body")
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    break loop
                }
                if ended {
                    endResponse(for: owner, leftover: buffer.readableBytes)
                    break loop
                }
                phase = .body(framing, dechunk: dechunk)
            case .tunnel:
                break loop
            }
        }
        if case .tunnel = phase, let peer = tunnelPeer, buffer.readableBytes > 0 {
            // What the ship sent right after its 101 belongs to the new protocol.
            peer.writeToClient(buffer)
            peer.flushClient()
            buffer.moveReaderIndex(to: buffer.writerIndex)
        }
        if buffer.readableBytes > 0, owner != nil {
            inbound = buffer
        }
    }

    /// The response is complete; bytes after it mean the connection is out of step.
    private func endResponse(for owner: Exchange, leftover: Int) {
        phase = .idle
        owner.responseEnded(from: self, reusable: leftover == 0)
    }

    private static func describe(_ failure: HeadParser.Failure) -> String {
        switch failure {
        case .malformed(let reason): reason
        case .uriTooLong, .headersTooLarge: "response head too large"
        }
    }

    /// The end of a read.
    func readComplete() {
        if case .tunnel = phase {
            peerEnd?._withUnsafeGuaranteedRef { $0.flushClient() }
        } else {
            owner?.upstreamReadComplete(from: self)
        }
    }

    /// The connection closed (`error`: what the driver saw, for the 502's text).
    func closed(error: String? = nil) {
        isActive = false
        isWritable = false
        pool?.remove(self)
        pool = nil
        switch phase {
        case .tunnel:
            tunnelLoad?.end()
            tunnelLoad = nil
            // What the ship sent before it went still reaches the client, then the client closes.
            tunnelPeer?.closeAfterWrites()
            tunnelPeer = nil
        case .body(.untilClose, _) where error == nil:
            // The ship's close ends a body without a length.
            phase = .idle
            owner?.responseEnded(from: self, reusable: false)
        default:
            owner?.upstreamClosed(self, error: error)
        }
        owner = nil
    }

    func writabilityChanged(_ writable: Bool) {
        isWritable = writable
        guard writable else { return }
        if case .tunnel = phase {
            tunnelPeer?.resumeClientReads()
        } else {
            owner?.upstreamBecameWritable(self)
        }
    }

    // MARK: Used by the owner (same thread)

    func send(_ bytes: ByteBuffer) {
        transport?.write(bytes)
    }

    /// Sends what `send` queued. Returns true when the socket is full: the caller holds its reads
    /// until `writabilityChanged`.
    @discardableResult
    func flush() -> Bool {
        guard let transport else { return false }
        return transport.flush() && !isWritable
    }

    /// Turns this connection into the ship's end of a tunnel to `peer`.
    func enterTunnel(peer: ClientConnection, load: InstanceLoad?) {
        tunnelPeer = peer
        tunnelLoad = load
        phase = .tunnel
    }

    func pauseReads() {
        guard !readsPaused else { return }
        readsPaused = true
        transport?.setReading(false)
    }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        transport?.setReading(true)
    }

    func close() { transport?.close() }

    /// Closes once what was written has gone out, or when the socket has taken none of it for
    /// `limit` (the tunnel's client went away).
    func closeAfterWrites(within limit: TimeAmount) { transport?.closeAfterWrites(within: limit) }
}

/// Idle keep-alive connections to one ship instance on one thread (most recently used first).
final class UpstreamPool {
    let address: SocketAddressOrPath
    /// Unchecked for exclusivity: a pool lives on one thread, only its own four methods touch this,
    /// and none of them calls out while it holds an access (they pop, append and filter with the
    /// standard library; what they release runs no code of the relay's). Checked, the array's
    /// growth and shrinking inside those calls kept a runtime check on every lease and release.
    @exclusivity(unchecked) private var idle: [ShipLink] = []
    /// The ship's idle connections over all pools (every thread's, every instance's) stay within it.
    private let allowance: IdleAllowance
    /// The instance left its ship's set: nothing new goes to it, and connections coming back close.
    private(set) var retired = false
    /// The ship's pools on this thread, asked on each release whether the instance set moved.
    private unowned(unsafe) let ship: ShipPools?

    /// The instance's id in its ship's set, and its requests in flight over every thread.
    let instance: Int
    let load: InstanceLoad

    init(
        address: SocketAddressOrPath, allowance: IdleAllowance, ship: ShipPools? = nil, instance: Int = 0,
        load: InstanceLoad = InstanceLoad()
    ) {
        self.address = address
        self.allowance = allowance
        self.ship = ship
        self.instance = instance
        self.load = load
    }

    /// An idle, still open connection, or nil.
    func lease() -> ShipLink? {
        while let handler = idle.popLast() {
            allowance.give()
            if handler.isActive { return handler }
        }
        return nil
    }

    /// Returns a connection whose exchange finished cleanly.
    func release(_ handler: ShipLink) {
        handler.owner = nil
        handler.resumeReads()
        guard handler.isActive else { return }
        ship?.refresh()
        if !retired && allowance.take() {
            idle.append(handler)
        } else {
            handler.close()
        }
    }

    func remove(_ handler: ShipLink) {
        let before = idle.count
        idle.removeAll { $0 === handler }
        for _ in idle.count..<before { allowance.give() }
    }

    /// The instance is gone: its idle connections close, and so will the busy ones once released.
    func retire() {
        retired = true
        closeAll()
    }

    func closeAll() {
        let handlers = idle
        idle.removeAll()
        for handler in handlers {
            allowance.give()
            handler.close()
        }
    }
}

/// A ship's address as the drivers connect to it.
enum SocketAddressOrPath: Equatable {
    case tcp(host: String, port: Int)
    case unix(path: String)

    static func of(_ address: BindAddress) -> SocketAddressOrPath {
        switch address {
        case .tcp(let host, let port): .tcp(host: host, port: port)
        case .unix(let path): .unix(path: path)
        }
    }
}
