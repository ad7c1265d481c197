import Logging
import NIOCore

/// What every connection of one listener shares: its routes, scheme and limits. Immutable.
final class ListenerSettings: Sendable {
    let name: String
    let routes: RouteTable
    /// `https` for TLS binds, otherwise `http`.
    let scheme: String
    let limits: RelayLimits
    let breakers: BreakerBoard
    let logger: Logger
    /// Request and response modules; nil when the manifest has none.
    let hooks: (any RelayHooks)?
    /// Static files, compression, CORS cache, rate limits (SPEC §5).
    let edge: EdgeFeatures

    init(
        name: String, routes: RouteTable, scheme: String, limits: RelayLimits, breakers: BreakerBoard,
        logger: Logger, hooks: (any RelayHooks)? = nil, edge: EdgeFeatures = .none
    ) {
        self.name = name
        self.routes = routes
        self.scheme = scheme
        self.limits = limits
        self.breakers = breakers
        self.logger = logger
        self.hooks = hooks
        self.edge = edge
    }
}

/// The limits and timeouts of SPEC §4.
public struct RelayLimits: Sendable {
    public var maxRequestLineBytes = 8 * 1024
    public var maxHeaderBytes = 64 * 1024
    public var maxHeaderCount = 100
    public var headerReadTimeout: TimeAmount = .seconds(30)
    public var idleTimeout: TimeAmount = .seconds(60)
    public var connectTimeout: TimeAmount = .seconds(5)
    public var firstByteTimeout: TimeAmount = .seconds(60)
    /// A client that takes nothing of a response for this long is closed (its ship connection with it).
    public var sendTimeout: TimeAmount = .seconds(60)
    /// Attempts after the first when nothing reached the ship.
    public var retries = 2
    public var drainTimeout: TimeAmount = .seconds(10)

    public init() {}

    /// Reads of at most 16 KiB per call: a body streams through in small buffers (several reads,
    /// still one write per batch) instead of each connection holding 64 KiB ones, which kept
    /// 64 busy client connections at over 40 MB.
    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(
        minimum: 512, initial: 2048, maximum: 16 * 1024)

    /// Reads from ships grow to 32 KiB: a large response comes in a few reads (each one a system
    /// call), and the buffer is written on and released at once.
    static let upstreamReceiveBuffers = AdaptiveRecvByteBufferAllocator(
        minimum: 1024, initial: 4096, maximum: 32 * 1024)

    /// Backpressure starts once 32 KiB wait to be written to a peer (NIO's default is 64 KiB).
    static let writeWaterMarks = ChannelOptions.Types.WriteBufferWaterMark(low: 16 * 1024, high: 32 * 1024)
}
