import DockingProtocol
import Logging
import NIOCore

/// A WebSocket client as the berth holds it: its handler, reachable on its own loop.
struct BayClientRef: Sendable {
    let handler: NIOLoopBound<BayClientHandler>
    let loop: any EventLoop
}

/// The berth's state, confined to its loop: the current link, its generation and its clients.
final class BerthCore {
    let bay: String
    let logger: Logger
    /// The berth owns this core; set once after both exist.
    unowned(unsafe) var berth: BayBerth!
    private(set) var link: BayLinkHandler?
    private(set) var generation: UInt32 = 0
    /// Whether the current link carries typed Cargo (`DockingFeature.typedCargo`).
    private(set) var typedCargo = false
    private var clients: [UInt32: BayClientRef] = [:]
    /// Clients that stopped reading while the link was full.
    private var held: [BayClientRef] = []
    private var flushScheduled = false
    /// The bay's messages for clients on other loops, gathered over one read of the link.
    private var outboxes: [Outbox] = []
    /// Clients on this loop written to during the current read of the link.
    private var touched: [BayClientHandler] = []
    private var deliveredOut = 0

    struct Outbox {
        let loop: any EventLoop
        var items: [(NIOLoopBound<BayClientHandler>, ByteBuffer)]
    }

    init(bay: String, logger: Logger) {
        self.bay = bay
        self.logger = logger
    }

    var clientCount: Int { clients.count }

    // MARK: The link

    /// A link has docked: a new generation whose conn_ids start from 1.
    func attach(_ handler: BayLinkHandler, typedCargo: Bool) -> UInt32 {
        generation &+= 1
        link = handler
        self.typedCargo = typedCargo
        berth.linkAttached(generation: generation, typedCargo: typedCargo)
        return generation
    }

    /// The link is gone: every client is closed with 1011, upgrades get 503 until the next dock.
    func detach(_ handler: BayLinkHandler) {
        guard link === handler else { return }
        link = nil
        berth.linkDetached()
        let gone = clients.values
        clients.removeAll()
        for client in gone {
            client.loop.execute {
                client.handler.value.closeClient(code: 1011, reason: "bay went away", tellBay: false)
            }
        }
        releaseHeld()
        berth.metrics.connections.record(0)
    }

    func closeLink(generation: UInt32) {
        guard generation == self.generation, let link else { return }
        link.close(reason: "closed by mothership")
    }

    /// One message from the docked bay.
    func received(_ message: DockingMessage) {
        switch message {
        case .cargo(let connID, let payload):
            if let violation = Self.check(cargo: payload, typed: typedCargo) {
                link?.violation(violation)
                return
            }
            guard let client = clients[connID] else { return }  // it just left
            deliveredOut += 1
            if client.loop.inEventLoop {
                let handler = client.handler.value
                handler.deliver(payload)
                if !handler.needsFlush {
                    handler.needsFlush = true
                    touched.append(handler)
                }
            } else if let index = outboxes.firstIndex(where: { $0.loop === client.loop }) {
                outboxes[index].items.append((client.handler, payload))
            } else {
                outboxes.append(Outbox(loop: client.loop, items: [(client.handler, payload)]))
            }
        case .disembark(let disembark):
            guard let client = clients.removeValue(forKey: disembark.connID) else { return }
            berth.metrics.connections.record(clients.count)
            client.loop.execute {
                client.handler.value.closeClient(
                    code: disembark.code, reason: disembark.reason, tellBay: false)
            }
        case .dock:
            logger.warning("bay '\(bay)' sent Dock again on a docked link; ignored")
        case .moored, .boarding:
            link?.violation("a bay does not send \(message.kind)")
        }
    }

    /// What a bay's Cargo message may not be: over the original's 16 MiB frame on a link without
    /// typed Cargo (the decoder takes typed Cargo's larger frames on every link); on one with it,
    /// without a known type byte.
    static func check(cargo payload: ByteBuffer, typed: Bool) -> String? {
        guard typed else {
            return payload.readableBytes <= DockingLimits.maxMessageBytes
                ? nil : "a Cargo frame over \(DockingCodec.maxPayload) bytes"
        }
        guard let type = payload.getInteger(at: payload.readerIndex, as: UInt8.self) else {
            return "typed Cargo without its type byte"
        }
        guard CargoType(rawValue: type) != nil else { return "typed Cargo with unknown type \(type)" }
        return nil
    }

    /// The end of one read of the link: what was gathered for other loops goes in one task per loop.
    func readComplete() {
        for handler in touched {
            handler.needsFlush = false
            handler.flush()
        }
        touched.removeAll(keepingCapacity: true)
        for outbox in outboxes {
            let items = outbox.items
            outbox.loop.execute {
                for (handler, payload) in items { handler.value.deliver(payload) }
                for (handler, _) in items { handler.value.flush() }
            }
        }
        outboxes.removeAll(keepingCapacity: true)
        if deliveredOut > 0 {
            berth.metrics.messagesOut.increment(by: deliveredOut)
            deliveredOut = 0
        }
    }

    /// The link takes bytes again: held clients read again.
    func releaseHeld() {
        let released = held
        held.removeAll()
        for client in released {
            client.loop.execute { client.handler.value.resumeReads() }
        }
    }

    // MARK: Clients

    func board(_ client: BayClientRef, boarding: Boarding, generation: UInt32) {
        guard generation == self.generation, let link else {
            client.loop.execute {
                client.handler.value.closeClient(code: 1011, reason: "bay went away", tellBay: false)
            }
            return
        }
        clients[boarding.connID] = client
        berth.metrics.connections.record(clients.count)
        link.send(.boarding(boarding))
        scheduleFlush()
    }

    /// Cargo frames already encoded by the client (one batch per read of the client).
    func ship(_ frames: ByteBuffer, messages: Int, generation: UInt32) {
        guard generation == self.generation, let link else { return }
        link.write(frames)
        berth.metrics.messagesIn.increment(by: messages)
        scheduleFlush()
    }

    func leave(connID: UInt32, generation: UInt32, code: UInt16, reason: String) {
        guard generation == self.generation, clients.removeValue(forKey: connID) != nil, let link else {
            return
        }
        berth.metrics.connections.record(clients.count)
        link.send(.disembark(Disembark(connID: connID, code: code, reason: reason)))
        scheduleFlush()
    }

    func hold(_ client: BayClientRef) {
        if berth.isLinkWritable {
            client.loop.execute { client.handler.value.resumeReads() }
        } else {
            held.append(client)
        }
    }

    /// One flush of the link for everything clients sent in this turn of the loop.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        let core = berth.core
        berth.loop.execute {
            let this = core.value
            this.flushScheduled = false
            this.link?.flush()
        }
    }
}
