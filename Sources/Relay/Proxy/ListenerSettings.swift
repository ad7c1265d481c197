import Logging
import NIOCore
import Synchronization

/// What every connection of one listener shares: its routes, scheme and limits. Immutable: a
/// reload makes new settings and hands them over through the bind's `ListenerSource`.
final class ListenerSettings: Sendable {
    let name: String
    let routes: RouteTable
    /// `https` for TLS binds, otherwise `http`.
    let scheme: String
    let limits: RelayLimits
    let logger: Logger
    /// Request and response modules; nil when the manifest has none.
    let hooks: (any RelayHooks)?
    /// Static files, compression, CORS cache, rate limits (SPEC §5).
    let edge: EdgeFeatures

    init(
        name: String, routes: RouteTable, scheme: String, limits: RelayLimits,
        logger: Logger, hooks: (any RelayHooks)? = nil, edge: EdgeFeatures = .none
    ) {
        self.name = name
        self.routes = routes
        self.scheme = scheme
        self.limits = limits
        self.logger = logger
        self.hooks = hooks
        self.edge = edge
    }
}

/// The current settings of one bind (SPEC §12.3): a reload replaces them, and every connection
/// takes the new ones when its next request begins — one atomic load per request when nothing
/// changed, the lock only once per change and connection. A request in progress finishes on the
/// settings it began with; nothing is closed. A bind the reload removed is retired: its
/// connections close after their current response.
final class ListenerSource: Sendable {
    let name: String
    private let version = Atomic<Int>(0)
    private let current: Mutex<(settings: ListenerSettings, retired: Bool)>

    init(_ settings: ListenerSettings) {
        name = settings.name
        current = Mutex((settings, false))
    }

    /// Moves on every change; a connection reads the settings again when it differs from the one it saw.
    var changes: Int { version.load(ordering: .acquiring) }

    func snapshot() -> (changes: Int, settings: ListenerSettings, retired: Bool) {
        current.withLock { (version.load(ordering: .relaxed), $0.settings, $0.retired) }
    }

    func replace(_ settings: ListenerSettings) {
        current.withLock {
            $0.settings = settings
            version.add(1, ordering: .releasing)
        }
    }

    /// The bind is gone: no connection of it takes another request.
    func retire() {
        current.withLock {
            $0.retired = true
            version.add(1, ordering: .releasing)
        }
    }

    var isRetired: Bool { current.withLock { $0.retired } }
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
