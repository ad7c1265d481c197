import CMothershipSystem
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
    /// SwiftNIO's connections (TLS binds, bays' WebSockets), for draining.
    private let connections = ConnectionRegistry()
    /// The threads that serve plain binds (nil before `start`, or without plain binds).
    private var workers: RelayWorkers?
    /// Listening sockets several workers share (Unix sockets), closed by the relay.
    private var sharedSockets: [CInt] = []
    private var listeners: [(name: String, channel: any Channel)] = []
    private var addresses: [(name: String, address: SocketAddress?)] = []
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
        // Module instances on SwiftNIO's loops serve TLS binds only (the workers make their own).
        if let hooks, manifest.settings.listeners.contains(where: { $0.tls != nil }) {
            try await contexts.installHooks(hooks)
        }
        let breakers = BreakerBoard(ships: manifest.ships.count)
        let rateLimiter = manifest.settings.rateLimiting.map {
            SharedRateLimiter($0, now: EdgeFeatures.now())
        }
        let corsCache = manifest.settings.corsCache.map(CorsPreflightCache.init)
        let metrics = RelayMetrics(binds: manifest.settings.listeners.map(\.name))
        let workerCount = manifest.settings.relayWorkers ?? RelayWorkers.defaultCount
        var plain: [RelayWorkers.Listener] = []
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
                        corsCache: corsCache))
                if let files = listener.tls {
                    // TLS stays on SwiftNIO (NIOSSL), driving the same model of a connection.
                    let tls = try makeTLSContext(files, listener: listener.name)
                    let channel = try await bind(
                        listener, settings: settings, tls: tls, contexts: contexts,
                        connections: metrics.connections(listener.name))
                    listeners.append((listener.name, channel))
                    addresses.append((listener.name, channel.localAddress))
                    logger.info("relay bind '\(listener.name)' (TLS) on SwiftNIO's event loops")
                } else {
                    let bound = try listen(listener, workers: workerCount)
                    plain.append(
                        RelayWorkers.Listener(
                            settings: settings, sockets: bound.sockets, shared: bound.shared,
                            proxyProtocol: listener.proxyProtocol,
                            trustedProxies: listener.trustedProxies.isEmpty ? nil : listener.trustedProxies))
                    addresses.append((listener.name, bound.address))
                    logger.info(
                        "relay bind '\(listener.name)' on \(workerCount) worker thread\(workerCount == 1 ? "" : "s")"
                    )
                }
            }
            if !plain.isEmpty {
                let book = ShipAddressBook(
                    hosts: manifest.ships.compactMap { ship -> String? in
                        if case .tcp(let host, _)? = ship.bind { return host }
                        return nil
                    })
                await book.resolveAll()
                let workers = RelayWorkers(count: workerCount)
                self.workers = workers
                try await workers.start(
                    RelayWorkers.Shared(
                        listeners: plain, hooks: hooks, addresses: book, group: group,
                        connections: connections,
                        metrics: metrics, logger: logger))
            }
        } catch {
            for listener in plain where !listener.shared {
                for socket in listener.sockets { Glibc.close(socket) }
            }
            self.workers = nil
            await closeListeners()
            throw error
        }
        return addresses
    }

    /// Stops accepting, asks open connections to close after their current response, waits up to
    /// `limits.drainTimeout`, then closes whatever is left.
    public func drain() async {
        let deadline = NIODeadline.now() + limits.drainTimeout
        await workers?.drain(until: deadline)
        workers = nil
        await closeListeners()
        await connections.drain(timeout: max(.zero, deadline - .now()))
        await contexts?.closeIdleConnections()
    }

    private func closeListeners() async {
        for (_, channel) in listeners { try? await channel.close() }
        for socket in sharedSockets { Glibc.close(socket) }
        sharedSockets.removeAll()
        for listener in manifest.settings.listeners {
            if case .unix(let path) = listener.address { unlink(path) }
        }
        listeners.removeAll()
    }

    /// The listening sockets of a plain bind: one per worker on TCP (`SO_REUSEPORT`; a port of 0
    /// is chosen by the first and shared by the rest), one for all on a Unix socket.
    private func listen(_ listener: Listener, workers: Int) throws -> (
        sockets: [CInt], shared: Bool, address: SocketAddress?
    ) {
        func failure(_ code: CInt) -> RelayError {
            RelayError.bind(
                listener: listener.name, address: listener.address, reason: RelayResources.describe(code))
        }
        switch listener.address {
        case .unix(let path):
            let socket = ms_listen_stream(nil, 0, path, 0, 1024)
            guard socket >= 0 else { throw failure(-socket) }
            sharedSockets.append(socket)
            return ([socket], true, try? SocketAddress(unixDomainSocketPath: path))
        case .tcp(let host, let port):
            var sockets: [CInt] = []
            var chosenPort = port
            for _ in 0..<workers {
                let socket = ms_listen_stream(host, CInt(chosenPort), nil, 1, 1024)
                guard socket >= 0 else {
                    for open in sockets { Glibc.close(open) }
                    throw failure(-socket)
                }
                if chosenPort == 0 { chosenPort = Int(ms_local_port(socket)) }
                sockets.append(socket)
            }
            return (sockets, false, try? SocketAddress.makeAddressResolvingHost(host, port: chosenPort))
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
        _ listener: Listener, settings: ListenerSettings, tls: NIOSSLContext, contexts: LoopContexts,
        connections gauge: RelayMetrics.Connections
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
                    gauge.opened()
                    channel.closeFuture.whenComplete { _ in gauge.closed() }
                    let pipeline = channel.pipeline.syncOperations
                    if proxyProtocol {
                        try pipeline.addHandler(ProxyProtocolHandler(trustedProxies: trusted, logger: logger))
                    }
                    try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                    // HTTP/1 is parsed and written by the relay's own model of a connection:
                    // heads are rewritten from the bytes they came in, bodies pass through unchanged.
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
    case workers(reason: String)

    public var description: String {
        switch self {
        case .bind(let listener, let address, let reason):
            "cannot listen on bind '\(listener)' (\(address)): \(reason) (mothership.bind.\(listener))"
        case .tls(let listener, let certificate, let key, let reason):
            "cannot load TLS certificate '\(certificate)' or key '\(key)' for bind '\(listener)': \(reason) (mothership.bind.\(listener).tls)"
        case .workers(let reason):
            "cannot start the relay's worker threads: \(reason) (mothership.relay_workers)"
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
