import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ShipManifest

/// The relay's state for one event loop: upstream pools per ship and the request-id generator.
/// A client connection and its upstream connection share the loop, so nothing here is locked.
final class LoopContext {
    /// By ship index (the manifest's order).
    private var pools: [UpstreamPool?] = []
    var requestIDs = RequestIDGenerator()
    /// This loop's request and response modules (their instances), when the manifest has any.
    var hooks: (any LoopHooks)?
    /// `mothership_relay_worker_requests_total{worker}` of a worker's loop (nil on SwiftNIO's).
    var requests: Counter?

    /// The pool of `entry`'s ship (a ship route's entry); `board` holds the ship's idle allowance.
    func pool(for entry: RouteEntry, board: BreakerBoard) -> UpstreamPool {
        let index = entry.shipIndex
        if index < pools.count, let pool = pools[index] { return pool }
        guard case .ship(_, let address, _) = entry.target else { preconditionFailure("not a ship route") }
        return makePool(ship: index, address: address, allowance: board.idleAllowance(index))
    }

    private func makePool(ship index: Int, address: BindAddress, allowance: IdleAllowance) -> UpstreamPool {
        let pool: UpstreamPool
        switch address {
        case .tcp(let host, let port):
            pool = UpstreamPool(address: .tcp(host: host, port: port), allowance: allowance)
        case .unix(let path): pool = UpstreamPool(address: .unix(path: path), allowance: allowance)
        }
        if pools.count <= index {
            pools.append(contentsOf: repeatElement(nil, count: index + 1 - pools.count))
        }
        pools[index] = pool
        return pool
    }

    func closeIdleConnections() {
        for pool in pools { pool?.closeAll() }
    }
}

/// One `LoopContext` per event loop of the group, made on its own loop.
final class LoopContexts: Sendable {
    private let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]

    private init(_ contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) { self.contexts = contexts }

    static func make(for group: any EventLoopGroup) async throws -> LoopContexts {
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = try await loop.submit {
                NIOLoopBound(LoopContext(), eventLoop: loop)
            }.get()
        }
        return LoopContexts(contexts)
    }

    /// The context of `loop`; call on that loop.
    func context(for loop: any EventLoop) -> LoopContext {
        if let bound = contexts[ObjectIdentifier(loop)] { return bound.value }
        preconditionFailure("event loop outside the relay's group")
    }

    /// Makes each loop's hooks on that loop: module instances never cross threads.
    func installHooks(_ hooks: any RelayHooks) async throws {
        for bound in contexts.values {
            try await bound.eventLoop.submit { bound.value.hooks = try hooks.makeLoopHooks() }.get()
        }
    }

    /// Closes the idle upstream connections of every loop.
    func closeIdleConnections() async {
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.closeIdleConnections() }.get()
        }
    }
}
