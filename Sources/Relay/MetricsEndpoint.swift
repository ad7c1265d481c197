import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import ShipManifest

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The `metrics_port` server: a small HTTP/1.1 listener serving `/metrics` (Prometheus text format
/// 0.0.4, rendered by the closure given at init) and `/health` (status and JSON body from its closure).
///
/// `start()` binds and returns the port, so the caller can log it or hand it to tests before the
/// service group runs; `run()` binds if needed and serves until graceful shutdown or cancellation,
/// then closes the listener and every open connection. Once stopped it stays stopped.
public actor MetricsEndpoint: Service {
    public nonisolated let address: BindAddress
    private let group: any EventLoopGroup
    private let routes: MetricsRoutes
    private let dashboard: WebDashboard?
    private let logger: Logger
    private let connections = ConnectionRegistry()

    private enum State {
        case idle
        case binding(Task<any Channel, any Error>)
        case listening(any Channel)
        case stopped
    }
    private var state = State.idle

    /// - Parameters:
    ///   - address: where to listen: the CLI passes `127.0.0.1:<metrics_port>`; port 0 picks a free port.
    ///   - metrics: the body of `/metrics`, called on an event loop for every request.
    ///   - health: the status code and JSON body of `/health`, called likewise.
    ///   - dashboard: the web dashboard (SPEC §12.6) served on `/`, `/events` and `/api/…`; nil: none.
    public init(
        address: BindAddress,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "mothership.metrics"),
        metrics: @escaping @Sendable () -> String,
        health: @escaping @Sendable () -> (status: Int, body: String),
        dashboard: WebDashboard? = nil
    ) {
        self.dashboard = dashboard
        self.address = address
        self.group = group
        self.logger = logger
        self.routes = MetricsRoutes(metrics: metrics, health: health)
    }

    /// Binds the listener (once; later calls return the same port) and returns the bound TCP port,
    /// or 0 for a Unix socket. Throws `MetricsEndpointError` when the address cannot be bound or the
    /// endpoint was stopped.
    @discardableResult
    public func start() async throws -> Int {
        try await listener().localAddress?.port ?? 0
    }

    /// Serves until graceful shutdown or cancellation, then stops. Binds first unless `start()` did.
    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await listener()
        } catch MetricsEndpointError.stopped {
            return
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        await stop()
    }

    /// Closes the listener and all open connections; waits until they are closed. Idempotent.
    public func stop() async {
        let previous = state
        state = .stopped
        let channel: (any Channel)?
        switch previous {
        case .idle, .stopped: return
        case .binding(let task): channel = try? await task.value
        case .listening(let listening): channel = listening
        }
        guard let channel else { return }
        try? await channel.close()
        await connections.closeAll()
        if case .unix(let path) = address { unlink(path) }
        logger.debug("metrics endpoint stopped", metadata: ["address": "\(address)"])
    }

    private func listener() async throws -> any Channel {
        switch state {
        case .listening(let channel):
            return channel
        case .binding(let task):
            return try await task.value
        case .stopped:
            throw MetricsEndpointError.stopped
        case .idle:
            let bind = Task { [address, group, routes, dashboard, connections] in
                try await Self.bind(
                    address, group: group, routes: routes, dashboard: dashboard, connections: connections)
            }
            state = .binding(bind)
            let channel = try await bind.value
            // Re-check after the await: `stop()` may have run meanwhile (it closes the channel).
            guard case .binding = state else { throw MetricsEndpointError.stopped }
            state = .listening(channel)
            logger.debug("metrics endpoint listening", metadata: ["address": "\(address)"])
            return channel
        }
    }

    private static func bind(
        _ address: BindAddress, group: any EventLoopGroup, routes: MetricsRoutes, dashboard: WebDashboard?,
        connections: ConnectionRegistry
    ) async throws -> any Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    connections.add(channel)
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try pipeline.addHandler(MetricsRequestHandler(routes: routes, dashboard: dashboard))
                }
            }
        do {
            return try await bootstrap.bind(to: address)
        } catch {
            throw MetricsEndpointError.bind(address: address, reason: SocketErrorText.describe(error))
        }
    }
}

/// Why the metrics endpoint cannot serve.
public enum MetricsEndpointError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The address could not be bound (in use, permission denied, no such interface).
    case bind(address: BindAddress, reason: String)
    /// `start()` after `stop()`.
    case stopped

    public var description: String {
        switch self {
        case .bind(let address, let reason):
            "cannot open the metrics endpoint on \(address): \(reason) (check metrics_port)"
        case .stopped:
            "the metrics endpoint was stopped"
        }
    }
}
