import DockingProtocol
import Logging
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// One bay's end of the relay: the link to the bay's socket and the WebSocket clients multiplexed
/// over it (SPEC §6).
///
/// The link and the table of clients live on one event loop (`loop`); clients on other loops reach
/// them with one task per read batch, and the bay's messages reach them with one task per loop per
/// read of the link. What clients must know without a hop (docked or not, the next conn_id, whether
/// the link takes more) is atomic.
public final class BayBerth: Sendable {
    public let bay: String
    let loop: any EventLoop
    let limits: BayLimits
    let logger: Logger
    private let docked = Atomic<Bool>(false)
    /// The link's generation (high 32 bits) and the last conn_id handed out on it (low 32 bits):
    /// one atomic add gives a client both, consistently.
    private let passengers = Atomic<UInt64>(0)
    private let linkWritable = Atomic<Bool>(true)
    /// Whether the current link carries typed Cargo (set before `docked`).
    private let typedCargo = Atomic<Bool>(false)
    let core: LoopOwned<BerthCore>
    let metrics: BerthMetrics

    init(bay: String, loop: any EventLoop, limits: BayLimits, logger: Logger) {
        self.bay = bay
        self.loop = loop
        self.limits = limits
        self.logger = logger
        self.metrics = BerthMetrics(bay: bay)
        self.core = LoopOwned(BerthCore(bay: bay, logger: logger), loop: loop)
        // Nothing else can reach the core yet.
        core.unchecked.berth = self
    }

    /// Whether the bay is docked now (upgrades are refused with 503 otherwise).
    public var isDocked: Bool { docked.load(ordering: .acquiring) }

    /// Whether the link of `generation` takes more bytes without asking the berth: the current link
    /// while it does (a client of a replaced link asks the berth each time).
    func isLinkWritable(generation: UInt32) -> Bool {
        UInt32(truncatingIfNeeded: passengers.load(ordering: .relaxed) >> 32) == generation
            && linkWritable.load(ordering: .relaxed)
    }

    /// A new client's link generation and conn_id (from 1 on each link), and whether the link
    /// carries typed Cargo (read apart from the generation: a client boarded with a stale pair
    /// belongs to a link that is gone, and the berth drops what it sends).
    func nextPassenger() -> (generation: UInt32, connID: UInt32, typedCargo: Bool) {
        let value = passengers.wrappingAdd(1, ordering: .relaxed).newValue
        return (
            UInt32(truncatingIfNeeded: value >> 32), UInt32(truncatingIfNeeded: value),
            typedCargo.load(ordering: .relaxed)
        )
    }

    // MARK: Called by the link (on `loop`)

    func linkAttached(generation: UInt32, typedCargo: Bool) {
        passengers.store(UInt64(generation) << 32, ordering: .relaxed)
        self.typedCargo.store(typedCargo, ordering: .relaxed)
        linkWritable.store(true, ordering: .relaxed)
        docked.store(true, ordering: .releasing)
    }

    func linkDetached() {
        docked.store(false, ordering: .releasing)
        linkWritable.store(true, ordering: .relaxed)
    }

    func setLinkWritable(_ writable: Bool) { linkWritable.store(writable, ordering: .relaxed) }

    // MARK: Called by clients (on their own loops)

    /// Runs `body` with the berth's state: at once when the caller is on the berth's loop, else as
    /// a task there (in submission order either way, so Boarding always precedes its Cargo).
    @inline(__always)
    func withCore(_ body: @escaping @Sendable (BerthCore) -> Void) {
        if loop.inEventLoop {
            body(core.value)
        } else {
            let core = self.core
            loop.execute { body(core.value) }
        }
    }
}

/// `mothership_bay_connections{bay}` and `mothership_bay_messages_total{bay, direction}` (`in`:
/// client to bay, `out`: bay to client).
struct BerthMetrics: Sendable {
    let connections: Gauge
    let messagesIn: Counter
    let messagesOut: Counter

    init(bay: String) {
        connections = Gauge(label: "mothership_bay_connections", dimensions: [("bay", bay)])
        messagesIn = Counter(
            label: "mothership_bay_messages_total", dimensions: [("bay", bay), ("direction", "in")])
        messagesOut = Counter(
            label: "mothership_bay_messages_total", dimensions: [("bay", bay), ("direction", "out")])
    }
}

/// A value that lives on one event loop and is only touched there (checked in debug builds): it
/// can be created before the loop runs anything for it, which `NIOLoopBound` does not allow.
struct LoopOwned<Value: AnyObject>: @unchecked Sendable {
    private let storage: Value
    let loop: any EventLoop

    init(_ value: Value, loop: any EventLoop) {
        self.storage = value
        self.loop = loop
    }

    var value: Value {
        assert(loop.inEventLoop, "touched off its event loop")
        return storage
    }

    /// Only while nothing else can hold it (during construction).
    var unchecked: Value { storage }
}
