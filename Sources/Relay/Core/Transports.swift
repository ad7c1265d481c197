import DockingProtocol
import NIOCore

// The relay's data plane is one model of a connection (`ClientConnection`, `Exchange`,
// `ShipLink`: parsing, framing, routing, retries, timeouts, local answers, edge features, metrics,
// draining) and drivers that only do I/O. The core never touches a socket, an event loop or a
// timer: it asks its driver through these protocols, and the driver tells it what happened (bytes
// read, a deadline passed, a connection opened or closed). Tests drive the core with recording
// transports (`Tests/RelayTests/ConnectionCoreTests.swift`); SwiftNIO's handlers
// (`NIODriver/`) drive it in the relay.
//
// Every call is made on the connection's own thread, and every callback into the core too.

/// What the core of a client connection asks of its driver.
protocol ClientTransport: AnyObject {
    /// The allocator for the buffers the core writes.
    var allocator: ByteBufferAllocator { get }
    /// The client's port when the peer is a TCP socket (a bay's Boarding reports it).
    var peerPort: Int? { get }

    /// Queues bytes for the client until `flush`.
    func write(_ bytes: ByteBuffer)
    /// Sends what was queued. Returns true when bytes remain held by the driver (the core then
    /// checks `isWritable` for backpressure).
    @discardableResult func flush() -> Bool
    /// Whether the client's socket takes more now; the driver calls `writabilityChanged` on changes.
    var isWritable: Bool { get }
    /// The bytes written and not yet taken by the client's socket.
    var heldBytes: Int { get }

    /// Turns reading from the client off (backpressure, a pipelined request waiting) or on.
    func setReading(_ on: Bool)
    /// Closes now; queued bytes are dropped.
    func close()
    /// Closes once everything written so far has gone out.
    func closeAfterWrites()
    /// Closes with a reset: the bytes the client never took are dropped with the socket.
    func reset()

    /// The connection's one deadline: the driver calls `deadlinePassed` on the core once `deadline`
    /// has passed (the latest call wins; a later deadline may fire early and is checked by the core).
    func watch(until deadline: NIODeadline)
    /// No deadline any more (timers already set may still fire: the core ignores them).
    func clearWatch()
    /// Processes the bytes the core holds later, outside the current call (a pipelined request,
    /// never from inside the write that ends a response): the driver calls `processInbound`.
    func processLater()

    /// Opens a connection to a ship; `completion` runs on this connection's thread.
    func connect(
        to address: SocketAddressOrPath, timeout: TimeAmount,
        completion: @escaping (Result<ShipLink, ConnectFailure>) -> Void)
    /// Sends `range` of the open file `descriptor` (owned by the driver from here) after what was
    /// written; the driver calls `staticFinished` when it is out or failed. `coding`: compressed on
    /// the way (chunked when `chunked`).
    func sendFile(
        descriptor: CInt, range: ClosedRange<Int>, path: String, coding: ContentCoding?, chunked: Bool)
    /// Gives the connection to a bay's WebSocket handling, with the bytes read after the upgrade.
    func handOver(to berth: BayBerth, boarding: BayBoarding, rest: ByteBuffer)
    /// The connection is a tunnel to `ship` from here: a driver whose sockets allow it passes what
    /// each end reads from now on straight to the other's socket, a byte splice, instead of through
    /// `received` and `write`, and sends it behind any bytes the core wrote that still wait (what
    /// the ship sent with its 101 is written just after this call). The core still hears of every
    /// read's end (`readComplete`, where it decides backpressure by `flush`), of writability and of
    /// closes.
    func joinTunnel(to ship: ShipLink)

}

/// What a ship connection's core (`ShipLink`) asks of its driver.
protocol ShipTransport: AnyObject {
    func write(_ bytes: ByteBuffer)
    /// Sends what was queued; true when bytes remain held by the driver.
    @discardableResult func flush() -> Bool
    var isWritable: Bool { get }
    func setReading(_ on: Bool)
    func close()
    /// Closes once everything written so far has gone out, or once the socket has taken none of it
    /// for `limit`; reads stop now.
    func closeAfterWrites(within limit: TimeAmount)
}

/// Why a connection to a ship could not be opened.
enum ConnectFailure: Error {
    /// The connect timeout passed.
    case timedOut
    /// The relay's own resources ran out (descriptors, memory): the errno.
    case exhausted(CInt)
    /// Refused, unreachable, reset: a description for the 502's text.
    case failed(String)
}

/// What a bay's client handler needs of the upgrade the core accepted.
struct BayBoarding {
    let boarding: Boarding
    let generation: UInt32
    /// Whether the bay's link carries typed Cargo (`DockingFeature.typedCargo`).
    let typedCargo: Bool
    /// permessage-deflate as agreed in the 101 (nil: not offered, declined, or off for the bay).
    var deflate: PerMessageDeflate? = nil
}
