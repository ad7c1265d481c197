import DockingProtocol
import Logging
import NIOCore

/// Mothership's end of a bay's docking socket: waits for Dock, answers Moored with the bay's
/// config, then hands every message to the berth. A protocol violation closes the link with a log
/// line that says what the bay did wrong.
final class BayLinkHandler: ChannelInboundHandler {
    typealias InboundIn = DockingMessage
    typealias OutboundOut = ByteBuffer

    private let berth: BayBerth
    private let config: [String: String]
    private var handshake: DockingHandshake
    private var context: ChannelHandlerContext?
    /// Succeeded with the link's generation once moored; failed if the link ends first.
    let moored: EventLoopPromise<UInt32>
    /// Succeeded with the reason once a moored link is lost.
    let lost: EventLoopPromise<String>
    private var lostReason: String?
    /// The berth's record of this link, once moored.
    private var docked: DockedLink?

    init(
        berth: BayBerth, config: [String: String], moored: EventLoopPromise<UInt32>,
        lost: EventLoopPromise<String>
    ) {
        self.berth = berth
        self.config = config
        self.moored = moored
        self.lost = lost
        self.handshake = DockingHandshake(bay: berth.bay)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        guard handshake.isMoored else {
            switch handshake.receive(message) {
            case .moor(let dock):
                if dock.ship != berth.bay && !dock.ship.isEmpty {
                    berth.logger.warning("bay '\(berth.bay)' docked as '\(dock.ship)'")
                }
                // Features the bay asked for and mothership has are named back, and on.
                let features = dock.features.map { $0.filter(DockingFeature.all.contains) }
                send(.moored(Moored(version: 1, config: config, features: features)))
                context.flush()
                let typedCargo = features?.contains(DockingFeature.typedCargo) ?? false
                let docked = berth.core.value.attach(self, typedCargo: typedCargo)
                self.docked = docked
                moored.succeed(docked.generation)
            case .violation(let reason):
                violation(reason)
            }
            return
        }
        guard let docked else { return }
        berth.core.value.received(message, on: docked)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if handshake.isMoored { berth.core.value.readComplete() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let docked else { return }
        berth.core.value.writabilityChanged(docked, writable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if handshake.isMoored, let docked {
            berth.core.value.readComplete()
            berth.core.value.detach(docked)
            lost.succeed(lostReason ?? "the bay closed its docking socket")
        } else {
            moored.fail(BayDockingError(lostReason ?? "the bay closed the connection before sending Dock"))
            lost.succeed(lostReason ?? "closed before docking")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? DockingError {
            violation(error.description)
        } else {
            close(reason: "docking socket error: \(error)")
        }
    }

    /// The bay broke the protocol: the link closes (its clients get 1011, the bay is restarted).
    func violation(_ reason: String) {
        berth.logger.error("bay '\(berth.bay)' broke the docking protocol: \(reason); closing its link")
        close(reason: "protocol violation: \(reason)")
    }

    func close(reason: String) {
        if lostReason == nil { lostReason = reason }
        context?.close(promise: nil)
    }

    // MARK: Writes (flushed by the berth, once per turn)

    func send(_ message: DockingMessage) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 256)
        DockingCodec.encode(message, into: &buffer)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    func write(_ frames: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(frames), promise: nil)
        if !context.channel.isWritable, let docked, docked.writable {
            berth.core.value.writabilityChanged(docked, writable: false)
        }
    }

    func flush() { context?.flush() }
}

/// The docking handshake as a state machine: the first message must be Dock, answered with Moored.
struct DockingHandshake {
    enum Action: Equatable {
        case moor(Dock)
        case violation(String)
    }

    let bay: String
    private(set) var isMoored = false

    init(bay: String) { self.bay = bay }

    mutating func receive(_ message: DockingMessage) -> Action {
        guard case .dock(let dock) = message else {
            return .violation("expected Dock as the first message, got \(message.kind)")
        }
        isMoored = true
        return .moor(dock)
    }
}

/// Why a bay did not dock.
public struct BayDockingError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) { self.description = description }
}
