import DockingProtocol
import Logging
import NIOCore

/// A WebSocket client as the berth holds it: its handler, reachable on its own loop.
struct BayClientRef: Sendable {
    let handler: NIOLoopBound<BayClientHandler>
    let loop: any EventLoop
}

/// One docked link as the berth holds it: its handler, its generation and the clients multiplexed
/// over it (conn_ids start from 1 on each link).
final class DockedLink {
    let handler: BayLinkHandler
    let generation: UInt32
    /// Whether the link carries typed Cargo (`DockingFeature.typedCargo`).
    let typedCargo: Bool
    var clients: [UInt32: BayClientRef] = [:]
    /// Clients that stopped reading while the link was full.
    var held: [BayClientRef] = []
    var writable = true

    init(handler: BayLinkHandler, generation: UInt32, typedCargo: Bool) {
        self.handler = handler
        self.generation = generation
        self.typedCargo = typedCargo
    }
}

/// The berth's state, confined to its loop: the current link, which new clients board, and during
/// a phased replacement of the bay the links it replaced, which keep their clients until they leave
/// or the supervisor retires them (SPEC §12.2).
final class BerthCore {
    let bay: String
    let logger: Logger
    /// The berth owns this core; set once after both exist.
    unowned(unsafe) var berth: BayBerth!
    /// The link new clients board; nil while the bay is not docked.
    private(set) var current: DockedLink?
    /// The current link's generation (or the last one's).
    private(set) var generation: UInt32 = 0
    /// Links replaced by a newer dock, still carrying their clients.
    private var retiring: [UInt32: DockedLink] = [:]
    private var totalClients = 0
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

    var clientCount: Int { totalClients }

    /// The link of `generation`, current or retiring.
    func link(_ generation: UInt32) -> DockedLink? {
        if generation == self.generation, let current { return current }
        return retiring[generation]
    }

    /// How many clients the link of `generation` carries (0 once it is gone).
    func clientCount(generation: UInt32) -> Int { link(generation)?.clients.count ?? 0 }

    // MARK: The links

    /// A link has docked: a new generation whose conn_ids start from 1; new clients board it. A link
    /// still docked (the bay's process being replaced) keeps its clients.
    func attach(_ handler: BayLinkHandler, typedCargo: Bool) -> DockedLink {
        generation &+= 1
        let docked = DockedLink(handler: handler, generation: generation, typedCargo: typedCargo)
        if let previous = current {
            retiring[previous.generation] = previous
            logger.info(
                "bay '\(bay)' docked a new link: new clients board it, \(previous.clients.count) stay on the old one"
            )
        }
        current = docked
        berth.linkAttached(generation: generation, typedCargo: typedCargo)
        return docked
    }

    /// A link is gone: its clients are closed with 1011; when it was the current one, upgrades get
    /// 503 until the next dock.
    func detach(_ link: DockedLink) {
        if current === link {
            current = nil
            berth.linkDetached()
        } else if retiring.removeValue(forKey: link.generation) == nil {
            return
        }
        let gone = link.clients.values
        link.clients.removeAll()
        totalClients -= gone.count
        for client in gone {
            client.loop.execute {
                client.handler.value.closeClient(code: 1011, reason: "bay went away", tellBay: false)
            }
        }
        releaseHeld(link)
        berth.metrics.connections.record(totalClients)
    }

    func closeLink(generation: UInt32) {
        link(generation)?.handler.close(reason: "closed by mothership")
    }

    /// The end of a replaced link's drain: its remaining clients are closed with 1001 (they may
    /// reconnect, to the new link), each announced to the bay with Disembark, then the link closes.
    func retire(generation: UInt32) {
        guard let link = link(generation) else { return }
        let staying = link.clients
        link.clients.removeAll()
        totalClients -= staying.count
        berth.metrics.connections.record(totalClients)
        for (connID, client) in staying {
            link.handler.send(.disembark(Disembark(connID: connID, code: 1001, reason: "bay restarted")))
            client.loop.execute {
                client.handler.value.closeClient(code: 1001, reason: "bay restarted", tellBay: false)
            }
        }
        link.handler.flush()
        link.handler.close(reason: "replaced by a new process of the bay")
    }

    /// One message from a docked bay on `link`.
    func received(_ message: DockingMessage, on link: DockedLink) {
        switch message {
        case .cargo(let connID, let payload):
            if let violation = Self.check(cargo: payload, typed: link.typedCargo) {
                link.handler.violation(violation)
                return
            }
            guard let client = link.clients[connID] else { return }  // it just left
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
            guard let client = link.clients.removeValue(forKey: disembark.connID) else { return }
            totalClients -= 1
            berth.metrics.connections.record(totalClients)
            client.loop.execute {
                client.handler.value.closeClient(
                    code: disembark.code, reason: disembark.reason, tellBay: false)
            }
        case .dock:
            logger.warning("bay '\(bay)' sent Dock again on a docked link; ignored")
        case .moored, .boarding:
            link.handler.violation("a bay does not send \(message.kind)")
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

    /// `link` takes bytes again, or not: while it does not, its clients stop reading.
    func writabilityChanged(_ link: DockedLink, writable: Bool) {
        link.writable = writable
        if link === current { berth.setLinkWritable(writable) }
        if writable { releaseHeld(link) }
    }

    /// The link takes bytes again: held clients read again.
    private func releaseHeld(_ link: DockedLink) {
        let released = link.held
        link.held.removeAll()
        for client in released {
            client.loop.execute { client.handler.value.resumeReads() }
        }
    }

    // MARK: Clients

    func board(_ client: BayClientRef, boarding: Boarding, generation: UInt32) {
        guard let link = link(generation) else {
            client.loop.execute {
                client.handler.value.closeClient(code: 1011, reason: "bay went away", tellBay: false)
            }
            return
        }
        link.clients[boarding.connID] = client
        totalClients += 1
        berth.metrics.connections.record(totalClients)
        link.handler.send(.boarding(boarding))
        scheduleFlush()
    }

    /// Cargo frames already encoded by the client (one batch per read of the client).
    func ship(_ frames: ByteBuffer, messages: Int, generation: UInt32) {
        guard let link = link(generation) else { return }
        link.handler.write(frames)
        berth.metrics.messagesIn.increment(by: messages)
        scheduleFlush()
    }

    func leave(connID: UInt32, generation: UInt32, code: UInt16, reason: String) {
        guard let link = link(generation), link.clients.removeValue(forKey: connID) != nil else { return }
        totalClients -= 1
        berth.metrics.connections.record(totalClients)
        link.handler.send(.disembark(Disembark(connID: connID, code: code, reason: reason)))
        scheduleFlush()
    }

    /// A client of the link of `generation` would read: at once when that link takes bytes, else
    /// once it does.
    func hold(_ client: BayClientRef, generation: UInt32) {
        if let link = link(generation), !link.writable {
            link.held.append(client)
        } else {
            client.loop.execute { client.handler.value.resumeReads() }
        }
    }

    /// One flush of the links for everything clients sent in this turn of the loop.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        let core = berth.core
        berth.loop.execute {
            let this = core.value
            this.flushScheduled = false
            this.current?.handler.flush()
            for link in this.retiring.values { link.handler.flush() }
        }
    }
}
