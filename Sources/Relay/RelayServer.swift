import CMothershipSystem
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ShipManifest
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP front door: one listener per `[mothership.bind]` entry, each with its route table, PROXY
/// protocol and TLS as configured. `start()` binds every listener (all or none) before the fleet
/// launches; `prepare(_:)` and `commit(_:)` apply a reloaded manifest without closing a connection;
/// `drain()` stops accepting, lets in-flight requests finish (bounded) and closes the rest.
public actor RelayServer {
    private var manifest: Manifest
    private let directory: UpstreamDirectory
    private let bays: BayDirectory?
    private let group: any EventLoopGroup
    private let limits: RelayLimits
    private let logger: Logger
    private let manifestDirectory: String
    private var hooks: (any RelayHooks)?
    /// SwiftNIO's connections (TLS binds, bays' WebSockets), for draining.
    private let connections = ConnectionRegistry()
    /// The threads that serve plain binds (nil before the first plain bind).
    private var workers: RelayWorkers?
    private var workerCount = RelayWorkers.defaultCount
    /// Every open bind, in the manifest's order.
    private var binds: [OpenBind] = []
    private var contexts: LoopContexts?
    private var metrics = RelayMetrics(binds: [])
    private var addressBook = ShipAddressBook(hosts: [])
    /// Shared by every bind, and kept by a reload that leaves their settings alone (a client's
    /// buckets and the cached preflights survive it).
    private var rateLimiter: SharedRateLimiter?
    private var corsCache: CorsPreflightCache?
    /// Set by `drain`: a reload that comes after the landing began changes nothing.
    private var landing = false
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
        contexts = try await LoopContexts.make(for: group)
        workerCount = manifest.settings.relayWorkers ?? RelayWorkers.defaultCount
        metrics = RelayMetrics(binds: manifest.settings.listeners.map(\.name))
        rateLimiter = manifest.settings.rateLimiting.map { SharedRateLimiter($0, now: EdgeFeatures.now()) }
        corsCache = manifest.settings.corsCache.map(CorsPreflightCache.init)
        let reload = try await prepare(manifest, hooks: hooks)
        do {
            try await commit(reload, starting: true)
        } catch {
            abandon(reload)
            binds.removeAll()
            throw error
        }
        return binds.map { ($0.listener.name, $0.address) }
    }

    /// What a reload will change, prepared: new binds listening (not yet served), every bind's new
    /// settings made, TLS certificates read. Nothing changes for a client until `commit`.
    public struct PreparedReload: Sendable {
        fileprivate let manifest: Manifest
        fileprivate let hooks: (any RelayHooks)?
        fileprivate let settings: [String: ListenerSettings]
        fileprivate let tls: [String: NIOSSLContext]
        fileprivate let opened: [OpenBind]
        fileprivate let rateLimiter: SharedRateLimiter?
        fileprivate let corsCache: CorsPreflightCache?

        /// Binds added, moved (removed and added again) and removed, by name.
        public let added: [String]
        public let moved: [String]
        public let removed: [String]
        public var kept: Int { manifest.settings.listeners.count - added.count - moved.count }
    }

    /// Prepares the relay for `next` (SPEC §12.3); throws, with nothing changed, when a new bind
    /// cannot listen or a TLS certificate cannot be read. `commit` applies it, `abandon` drops it.
    public func prepare(_ next: Manifest, hooks nextHooks: (any RelayHooks)?) async throws -> PreparedReload {
        guard !landing else { throw RelayError.landing }
        // Shared state is kept when its settings did not change.
        let nextLimiter =
            String(describing: next.settings.rateLimiting)
                == String(describing: manifest.settings.rateLimiting)
            ? rateLimiter : next.settings.rateLimiting.map { SharedRateLimiter($0, now: EdgeFeatures.now()) }
        let nextCors =
            String(describing: next.settings.corsCache) == String(describing: manifest.settings.corsCache)
            ? corsCache : next.settings.corsCache.map(CorsPreflightCache.init)
        var tls: [String: NIOSSLContext] = [:]
        for listener in next.settings.listeners {
            if let files = listener.tls {
                tls[listener.name] = try makeTLSContext(files, listener: listener.name)
            }
        }
        let hosts = next.ships.compactMap { ship -> String? in
            if case .tcp(let host, _)? = ship.bind { return host }
            return nil
        }
        await addressBook.learn(hosts: hosts)
        var settings: [String: ListenerSettings] = [:]
        for listener in next.settings.listeners {
            settings[listener.name] = ListenerSettings(
                name: listener.name,
                routes: RouteTable.build(
                    bind: listener.name, manifest: next, directory: directory, bays: bays,
                    durations: requestDurations),
                scheme: listener.tls == nil ? "http" : "https", limits: limits, logger: logger,
                hooks: nextHooks,
                edge: EdgeFeatures.build(
                    bind: listener.name, manifest: next, manifestDirectory: manifestDirectory,
                    rateLimiter: nextLimiter, corsCache: nextCors))
        }
        if let nextHooks, tls.isEmpty == false, let contexts {
            // Module instances on SwiftNIO's loops serve TLS binds only (the workers make their own).
            try await contexts.installHooks(nextHooks)
        }
        var opened: [OpenBind] = []
        var added: [String] = []
        var moved: [String] = []
        do {
            for listener in next.settings.listeners {
                let current = binds.first { $0.listener.name == listener.name }
                if let current, Self.sameSocket(current, listener) { continue }
                let source = ListenerSource(settings[listener.name]!)
                let bind =
                    if let context = tls[listener.name] {
                        try await openTLS(listener, source: source, tls: context)
                    } else {
                        try openPlain(listener, source: source)
                    }
                opened.append(bind)
                if current == nil { added.append(listener.name) } else { moved.append(listener.name) }
            }
        } catch {
            for bind in opened { await close(bind, unlink: !Self.pathInUse(bind, by: binds)) }
            throw error
        }
        let removed = binds.map(\.listener.name).filter { name in
            !next.settings.listeners.contains { $0.name == name }
        }
        return PreparedReload(
            manifest: next, hooks: nextHooks, settings: settings, tls: tls, opened: opened,
            rateLimiter: nextLimiter, corsCache: nextCors, added: added, moved: moved, removed: removed)
    }

    /// Applies a prepared reload: every kept bind's connections take the new settings with their
    /// next request, new binds are served, removed ones stop accepting and their connections close
    /// after their current response. No connection is closed otherwise.
    public func commit(_ reload: PreparedReload) async throws {
        try await commit(reload, starting: false)
    }

    private func commit(_ reload: PreparedReload, starting: Bool) async throws {
        guard !landing else {
            abandon(reload)
            return
        }
        let next = reload.manifest
        var changes: [ListenerChange] = []
        var kept: [String: OpenBind] = [:]
        for bind in binds { kept[bind.listener.name] = bind }
        var retiring: [OpenBind] = []
        var nextBinds: [OpenBind] = []
        for listener in next.settings.listeners {
            let settings = reload.settings[listener.name]!
            if let opened = reload.opened.first(where: { $0.listener.name == listener.name }) {
                if let old = kept.removeValue(forKey: listener.name) { retiring.append(old) }
                if !opened.isTLS { changes.append(.add(opened.workerListener)) }
                nextBinds.append(opened)
            } else if var bind = kept.removeValue(forKey: listener.name) {
                let proxyChanged =
                    bind.listener.proxyProtocol != listener.proxyProtocol
                    || bind.listener.trustedProxies != listener.trustedProxies
                bind = OpenBind(
                    listener: listener, source: bind.source, channel: bind.channel, front: bind.front,
                    sockets: bind.sockets, shared: bind.shared, address: bind.address)
                bind.source.replace(settings)
                if let front = bind.front, let context = reload.tls[listener.name] {
                    front.set(
                        tls: context, proxyProtocol: listener.proxyProtocol, trusted: listener.trustedProxies)
                } else if proxyChanged {
                    changes.append(.update(bind.workerListener))
                }
                nextBinds.append(bind)
            }
        }
        retiring.append(contentsOf: kept.values)
        for bind in retiring where !bind.isTLS { changes.append(.remove(name: bind.listener.name)) }
        if changes.contains(where: { if case .add = $0 { true } else { false } }), workers == nil {
            // The first plain bind: the workers start with it.
            let workers = RelayWorkers(count: workerCount)
            let listeners = changes.compactMap { change -> RelayWorkers.Listener? in
                if case .add(let listener) = change { listener } else { nil }
            }
            try await workers.start(
                RelayWorkers.Shared(
                    listeners: listeners, hooks: reload.hooks, addresses: addressBook, group: group,
                    connections: connections, metrics: metrics, logger: logger))
            self.workers = workers
            changes.removeAll { if case .add = $0 { true } else { false } }
            for listener in listeners {
                logger.info(
                    "relay bind '\(listener.source.name)' on \(workerCount) worker thread\(workerCount == 1 ? "" : "s")"
                )
            }
        }
        for change in changes {
            if case .add(let listener) = change {
                logger.info(
                    "relay bind '\(listener.source.name)' on \(workerCount) worker thread\(workerCount == 1 ? "" : "s")"
                )
            }
        }
        await workers?.apply(changes)
        for bind in nextBinds
        where bind.isTLS && reload.opened.contains(where: { $0.listener.name == bind.listener.name }) {
            logger.info("relay bind '\(bind.listener.name)' (TLS) on SwiftNIO's event loops")
        }
        binds = nextBinds
        for bind in retiring {
            bind.source.retire()
            await close(bind, unlink: !Self.pathInUse(bind, by: binds))
        }
        for ship in next.ships {
            if let address = ship.bind { directory.gate(for: ship.name).move(to: address) }
        }
        manifest = next
        hooks = reload.hooks
        rateLimiter = reload.rateLimiter
        corsCache = reload.corsCache
        if !starting {
            for name in reload.added + reload.moved {
                if let bind = binds.first(where: { $0.listener.name == name }) {
                    logger.info("reload: bind '\(name)' listening on \(Self.describe(bind.address))")
                }
            }
            for name in reload.removed {
                logger.info("reload: bind '\(name)' removed; its connections drain")
            }
        }
    }

    /// Drops a prepared reload: the binds it opened close; nothing else had changed.
    public func abandon(_ reload: PreparedReload) {
        for bind in reload.opened {
            if let channel = bind.channel { channel.close(promise: nil) }
            for socket in bind.sockets { Glibc.close(socket) }
            if case .unix(let path) = bind.listener.address, !Self.pathInUse(bind, by: binds) { unlink(path) }
        }
    }

    /// The listening addresses, by bind name.
    public var boundAddresses: [(name: String, address: SocketAddress?)] {
        binds.map { ($0.listener.name, $0.address) }
    }

    /// Stops accepting, asks open connections to close after their current response, waits up to
    /// `limits.drainTimeout`, then closes whatever is left.
    public func drain() async {
        landing = true
        let deadline = NIODeadline.now() + limits.drainTimeout
        // The workers stop watching the listening sockets before the relay closes them (a number
        // closed under a worker could be reused by its next connection).
        await workers?.apply(binds.filter { !$0.isTLS }.map { .remove(name: $0.listener.name) })
        for bind in binds { await close(bind, unlink: true) }
        binds.removeAll()
        await workers?.drain(until: deadline)
        workers = nil
        await connections.drain(timeout: max(.zero, deadline - .now()))
        await contexts?.closeIdleConnections()
    }

    /// Closes a bind's listening sockets or channel, and removes its Unix socket's file.
    private func close(_ bind: OpenBind, unlink removesPath: Bool) async {
        if let channel = bind.channel { try? await channel.close() }
        for socket in bind.sockets { Glibc.close(socket) }
        if removesPath, case .unix(let path) = bind.listener.address { unlink(path) }
    }

    /// Whether another open bind listens on `bind`'s Unix socket path (its file stays).
    private static func pathInUse(_ bind: OpenBind, by binds: [OpenBind]) -> Bool {
        guard case .unix(let path) = bind.listener.address else { return false }
        return binds.contains {
            if case .unix(let other) = $0.listener.address {
                other == path && $0.source !== bind.source
            } else {
                false
            }
        }
    }

    /// Whether `listener` can keep `bind`'s socket: the same address and the same kind (TLS or not).
    private static func sameSocket(_ bind: OpenBind, _ listener: Listener) -> Bool {
        bind.listener.address == listener.address && (bind.listener.tls == nil) == (listener.tls == nil)
    }

    /// The listening sockets of a plain bind: one per worker on TCP (`SO_REUSEPORT`; a port of 0
    /// is chosen by the first and shared by the rest), one for all on a Unix socket.
    private func openPlain(_ listener: Listener, source: ListenerSource) throws -> OpenBind {
        func failure(_ code: CInt) -> RelayError {
            RelayError.bind(
                listener: listener.name, address: listener.address, reason: RelayResources.describe(code))
        }
        switch listener.address {
        case .unix(let path):
            let socket = ms_listen_stream(nil, 0, path, 0, 1024)
            guard socket >= 0 else { throw failure(-socket) }
            return OpenBind(
                listener: listener, source: source, sockets: [socket], shared: true,
                address: try? SocketAddress(unixDomainSocketPath: path))
        case .tcp(let host, let port):
            var sockets: [CInt] = []
            var chosenPort = port
            for _ in 0..<workerCount {
                let socket = ms_listen_stream(host, CInt(chosenPort), nil, 1, 1024)
                guard socket >= 0 else {
                    for open in sockets { Glibc.close(open) }
                    throw failure(-socket)
                }
                if chosenPort == 0 { chosenPort = Int(ms_local_port(socket)) }
                sockets.append(socket)
            }
            return OpenBind(
                listener: listener, source: source, sockets: sockets, shared: false,
                address: try? SocketAddress.makeAddressResolvingHost(host, port: chosenPort))
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

    private func openTLS(_ listener: Listener, source: ListenerSource, tls: NIOSSLContext) async throws
        -> OpenBind
    {
        guard let contexts else { throw RelayError.workers(reason: "the relay has not started") }
        let connections = self.connections
        let front = TLSFront(
            tls: tls, proxyProtocol: listener.proxyProtocol, trusted: listener.trustedProxies)
        let logger = self.logger
        let name = listener.name
        let gauge = metrics.connections(listener.name)
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
                    // A reload may have changed these since the bind opened: each connection
                    // takes them as they are when it is accepted.
                    let (tls, proxyProtocol, trusted) = front.current
                    if proxyProtocol {
                        try pipeline.addHandler(ProxyProtocolHandler(trustedProxies: trusted, logger: logger))
                    }
                    try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                    // HTTP/1 is parsed and written by the relay's own model of a connection:
                    // heads are rewritten from the bytes they came in, bodies pass through unchanged.
                    try pipeline.addHandler(
                        RelayServerHandler(source: source, loop: contexts.context(for: channel.eventLoop)))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(to: listener.address)
        } catch {
            throw RelayError.bind(
                listener: listener.name, address: listener.address, reason: SocketErrorText.describe(error))
        }
        return OpenBind(
            listener: listener, source: source, channel: channel, front: front, address: channel.localAddress)
    }
}

/// A bind as the relay holds it: its settings' source, and its sockets or SwiftNIO channel.
struct OpenBind: Sendable {
    let listener: Listener
    let source: ListenerSource
    /// A TLS bind's channel, and what its new connections read when they begin.
    var channel: (any Channel)?
    var front: TLSFront?
    /// A plain bind's listening sockets (one per worker; one for all on a Unix socket).
    var sockets: [CInt] = []
    var shared = false
    var address: SocketAddress?

    var isTLS: Bool { channel != nil }

    /// What the workers serve of it.
    var workerListener: RelayWorkers.Listener {
        RelayWorkers.Listener(
            source: source, sockets: sockets, shared: shared, proxyProtocol: listener.proxyProtocol,
            trustedProxies: listener.trustedProxies.isEmpty ? nil : listener.trustedProxies)
    }
}

/// What a TLS bind's new connections are set up with, replaced by a reload (a renewed certificate
/// is read again on every reload; connections already open keep theirs).
final class TLSFront: Sendable {
    private let state: Mutex<(tls: NIOSSLContext, proxyProtocol: Bool, trusted: [CIDRRange]?)>

    init(tls: NIOSSLContext, proxyProtocol: Bool, trusted: [CIDRRange]) {
        state = Mutex((tls, proxyProtocol, trusted.isEmpty ? nil : trusted))
    }

    var current: (tls: NIOSSLContext, proxyProtocol: Bool, trusted: [CIDRRange]?) { state.withLock { $0 } }

    func set(tls: NIOSSLContext, proxyProtocol: Bool, trusted: [CIDRRange]) {
        state.withLock { $0 = (tls, proxyProtocol, trusted.isEmpty ? nil : trusted) }
    }
}

/// Why the relay cannot start.
public enum RelayError: Error, Sendable, CustomStringConvertible {
    case bind(listener: String, address: BindAddress, reason: String)
    case tls(listener: String, certificate: String, key: String, reason: String)
    case workers(reason: String)
    /// A reload while the relay drains for the landing.
    case landing

    public var description: String {
        switch self {
        case .bind(let listener, let address, let reason):
            "cannot listen on bind '\(listener)' (\(address)): \(reason) (mothership.bind.\(listener))"
        case .tls(let listener, let certificate, let key, let reason):
            "cannot load TLS certificate '\(certificate)' or key '\(key)' for bind '\(listener)': \(reason) (mothership.bind.\(listener).tls)"
        case .workers(let reason):
            "cannot start the relay's worker threads: \(reason) (mothership.relay_workers)"
        case .landing:
            "the relay is landing"
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
