import DockingProtocol
import Logging
import NIOCore
import NIOPosix
import ShipManifest

/// The relay's berths, one per bay, by name. The executable docks bays through it (for the
/// supervisor) and the route tables send WebSocket upgrades to them.
public final class BayDirectory: Sendable {
    private let berths: [String: BayBerth]

    /// One berth per bay; each keeps its link on one event loop of `group`, taken in turn.
    public convenience init(
        bays: some Sequence<String>, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: BayLimits = BayLimits(), logger: Logger = Logger(label: "mothership.relay")
    ) {
        self.init(bays: bays.map { ($0, limits) }, group: group, logger: logger)
    }

    /// One berth per bay of a manifest, each with its own options (`permessage_deflate`).
    public convenience init(
        bays: [Vessel], group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: BayLimits = BayLimits(), logger: Logger = Logger(label: "mothership.relay")
    ) {
        self.init(
            bays: bays.map { bay in
                var own = limits
                own.permessageDeflate = bay.permessageDeflate
                return (bay.name, own)
            }, group: group, logger: logger)
    }

    /// One berth per bay, each with its limits.
    public init(
        bays: [(name: String, limits: BayLimits)],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "mothership.relay")
    ) {
        var berths: [String: BayBerth] = [:]
        for (bay, limits) in bays {
            berths[bay] = BayBerth(bay: bay, loop: group.next(), limits: limits, logger: logger)
        }
        self.berths = berths
    }

    /// The berth of `bay`, or nil when the directory does not know it.
    public func berth(for bay: String) -> BayBerth? { berths[bay] }
}

/// The limits of SPEC §6.
public struct BayLimits: Sendable {
    /// A client whose unsent messages exceed this is closed with 1008.
    public var clientOutgoingBytes = 1 << 20
    /// The largest WebSocket message a client may send (a Cargo frame is at most 16 MiB).
    public var maxMessageBytes = DockingLimits.maxMessageBytes
    /// The same for a bay whose link carries typed Cargo.
    public var maxTypedMessageBytes = DockingCodec.maxTypedMessage
    /// How long a client gets to answer a close frame before its connection is closed anyway.
    public var closeHandshakeTimeout: TimeAmount = .seconds(2)
    /// Pause between connection attempts while a bay has not bound its socket yet.
    public var dockRetryInterval: TimeAmount = .milliseconds(50)
    /// Whether permessage-deflate (RFC 7692) is agreed with clients that offer it (the bay's
    /// `permessage_deflate`).
    public var permessageDeflate = true

    public init() {}

    func maxMessageBytes(typedCargo: Bool) -> Int { typedCargo ? maxTypedMessageBytes : maxMessageBytes }
}

enum DockingLimits {
    /// A Cargo frame's payload is the 4-byte conn_id and the message.
    static let maxMessageBytes = DockingCodec.maxPayload - 4
}
