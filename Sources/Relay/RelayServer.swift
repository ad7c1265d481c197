import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP front door: one listener per `[mothership.bind]` entry, each with its route table, PROXY
/// protocol and TLS as configured. `start()` binds every listener (all or none) before the fleet
/// launches; `drain()` stops accepting, lets in-flight requests finish (bounded) and closes the rest.
public actor RelayServer {
    private let manifest: Manifest
    private let directory: UpstreamDirectory
    private let bays: BayDirectory?
    private let group: any EventLoopGroup
    private let limits: RelayLimits
    private let logger: Logger
    private let manifestDirectory: String
    private let hooks: (any RelayHooks)?
    private let connections = ConnectionRegistry()
    /// Upgraded connections' thread, started with the first tunnel (nil: `MOTHERSHIP_TUNNEL_THREAD=0`).
    nonisolated let tunnels = TunnelPump.enabled ? TunnelPump() : nil
    /// Kept-alive plain connections' thread (nil: `MOTHERSHIP_LANE=0`, or before `start`).
    private var lane: ProxyLane?
    private var listeners: [(name: String, channel: any Channel)] = []
    private var contexts: LoopContexts?
    /// `mothership_request_duration_seconds`: appended to the `/metrics` text by its owner.
    public nonisolated let requestDurations = RequestDurations()

    public init(
        manifest: Manifest, directory: UpstreamDirectory, bays: BayDirectory? = nil,
        manifestDirectory: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: RelayLimits = RelayLimits(),
        logger: Logger = Logger(label: "mothership.relay"),
        hooks: (any RelayHooks)? = nil
    ) {
        self.manifest = manifest
        self.directory = directory
        self.bays = bays
        self.manifestDirectory = manifestDirectory
        self.group = group
        self.limits = limits
        self.logger = logger
        self.hooks = hooks
    }

    /// Binds every listener; returns each listener's name and bound address. On any failure the
    /// listeners already bound are closed again and the error names the bind.
    @discardableResult
    public func start() async throws -> [(name: String, address: SocketAddress?)] {
        RelayResources.raiseOpenFilesLimit(logger: logger)
        let contexts = try await LoopContexts.make(for: group)
        self.contexts = contexts
        if let hooks { try await contexts.installHooks(hooks) }
        let breakers = BreakerBoard(ships: manifest.ships.count)
        let rateLimiter = manifest.settings.rateLimiting.map {
            SharedRateLimiter($0, now: EdgeFeatures.now())
        }
        let corsCache = manifest.settings.corsCache.map(CorsPreflightCache.init)
        let group = self.group
        let connections = self.connections
        let lane =
            ProxyLane.enabled
            ? ProxyLane { arrival, bytes in
                Self.resume(arrival, bytes: bytes, group: group, connections: connections, contexts: contexts)
            } : nil
        self.lane = lane
        do {
            for listener in manifest.settings.listeners {
                let settings = ListenerSettings(
                    name: listener.name,
                    routes: RouteTable.build(
                        bind: listener.name, manifest: manifest, directory: directory, bays: bays,
                        durations: requestDurations),
                    scheme: listener.tls == nil ? "http" : "https", limits: limits, breakers: breakers,
                    logger: logger, hooks: hooks,
                    edge: EdgeFeatures.build(
                        bind: listener.name, manifest: manifest, manifestDirectory: manifestDirectory,
                        rateLimiter: rateLimiter,
                        corsCache: corsCache),
                    tunnels: tunnels, lane: lane)
                let tls = try listener.tls.map { try makeTLSContext($0, listener: listener.name) }
                let channel = try await bind(listener, settings: settings, tls: tls, contexts: contexts)
                listeners.append((listener.name, channel))
            }
        } catch {
            await closeListeners()
            throw error
        }
        return listeners.map { ($0.name, $0.channel.localAddress) }
    }

    /// Stops accepting, asks open connections to close after their current response, waits up to
    /// `limits.drainTimeout`, then closes whatever is left.
    public func drain() async {
        let deadline = NIODeadline.now() + limits.drainTimeout
        await closeListeners()
        lane?.startDraining(until: deadline)
        await connections.drain(timeout: limits.drainTimeout)
        await lane?.drained()
        // Tunnels (WebSockets) on the pump's thread get the same time, then close.
        await tunnels?.drain(until: deadline)
        await contexts?.closeIdleConnections()
    }

    private func closeListeners() async {
        for (_, channel) in listeners { try? await channel.close() }
        for listener in manifest.settings.listeners {
            if case .unix(let path) = listener.address { unlink(path) }
        }
        listeners.removeAll()
    }

    /// A connection the lane gives back goes on on an event loop, as an accepted one would.
    private nonisolated static func resume(
        _ arrival: ProxyLane.Arrival, bytes: ByteBuffer, group: any EventLoopGroup,
        connections: ConnectionRegistry, contexts: LoopContexts
    ) {
        ClientBootstrap(group: group)
            .channelOption(.maxMessagesPerRead, value: 16)
            .channelOption(.recvAllocator, value: RelayLimits.receiveBuffers)
            .channelOption(.writeBufferWaterMark, value: RelayLimits.writeWaterMarks)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    connections.add(channel)
                    let handler = RelayServerHandler(
                        settings: arrival.settings, loop: contexts.context(for: channel.eventLoop))
                    handler.resume(from: arrival, bytes: bytes)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .withConnectedSocket(arrival.fd)
            .whenFailure { error in
                arrival.settings.logger.warning(
                    "a connection the lane gave back could not join an event loop: \(error)")
            }
    }

    private func makeTLSContext(_ files: TLSFiles, listener: String) throws -> NIOSSLContext {
        let certificate = resolve(files.certificate)
        let key = resolve(files.key)
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map {
                NIOSSLCertificateSource.certificate($0)
            }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain, privateKey: .privateKey(privateKey))
            configuration.applicationProtocols = ["http/1.1"]
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RelayError.tls(listener: listener, certificate: certificate, key: key, reason: "\(error)")
        }
    }

    private func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : manifestDirectory + "/" + path
    }

    private func bind(
        _ listener: Listener, settings: ListenerSettings, tls: NIOSSLContext?, contexts: LoopContexts
    ) async throws -> any Channel {
        let connections = self.connections
        let proxyProtocol = listener.proxyProtocol
        let trusted = listener.trustedProxies.isEmpty ? nil : listener.trustedProxies
        let logger = self.logger
        let name = listener.name
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RelayResources.acceptBackoff(listener: name, logger: logger))
                }
            }
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: RelayLimits.receiveBuffers)
            .childChannelOption(.writeBufferWaterMark, value: RelayLimits.writeWaterMarks)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    connections.add(channel)
                    let pipeline = channel.pipeline.syncOperations
                    if proxyProtocol {
                        try pipeline.addHandler(ProxyProtocolHandler(trustedProxies: trusted))
                    }
                    if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
                    // HTTP/1 is parsed and written by the relay's own handler: heads are rewritten
                    // from the bytes they came in, bodies pass through unchanged.
                    try pipeline.addHandler(
                        RelayServerHandler(settings: settings, loop: contexts.context(for: channel.eventLoop))
                    )
                }
            }
        do {
            return try await bootstrap.bind(to: listener.address)
        } catch {
            throw RelayError.bind(
                listener: listener.name, address: listener.address, reason: SocketErrorText.describe(error))
        }
    }
}

/// Why the relay cannot start.
public enum RelayError: Error, Sendable, CustomStringConvertible {
    case bind(listener: String, address: BindAddress, reason: String)
    case tls(listener: String, certificate: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .bind(let listener, let address, let reason):
            "cannot listen on bind '\(listener)' (\(address)): \(reason) (mothership.bind.\(listener))"
        case .tls(let listener, let certificate, let key, let reason):
            "cannot load TLS certificate '\(certificate)' or key '\(key)' for bind '\(listener)': \(reason) (mothership.bind.\(listener).tls)"
        }
    }
}

extension RelayServer {
    /// `127.0.0.1:8080`, `[::1]:8080` or `/run/app.sock`, for logs.
    public static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "?" }
        if let path = address.pathname { return path }
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
