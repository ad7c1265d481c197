import Metrics
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The numeric addresses of ships named by host name (`tcp://localhost:3000`), resolved off the
/// workers' threads: once before they start, then again in the background once an answer is older
/// than `ttl`, while the workers go on with the one they have. A worker never waits for a resolver.
final class ShipAddressBook: Sendable {
    static let ttl = TimeAmount.seconds(30)

    private struct Entry {
        var addresses: [String] = []
        var resolved = NIODeadline.distantPast
        var refreshing = false
    }
    private let entries: Mutex<[String: Entry]>

    /// `hosts`: every ship host of the manifest; numeric ones are left out.
    init(hosts: some Sequence<String>) {
        var entries: [String: Entry] = [:]
        for host in hosts where !Self.isNumeric(host) { entries[host] = Entry() }
        self.entries = Mutex(entries)
    }

    /// Adds the names a reloaded manifest brings and resolves them now; known ones are left alone.
    func learn(hosts: some Sequence<String>) async {
        let new = entries.withLock { entries -> [String] in
            var new: [String] = []
            for host in hosts where !Self.isNumeric(host) && entries[host] == nil {
                entries[host] = Entry()
                new.append(host)
            }
            return new
        }
        for host in new { await refresh(host) }
    }

    /// Resolves every name now (on the blocking-I/O thread pool).
    func resolveAll() async {
        let hosts = entries.withLock { Array($0.keys) }
        for host in hosts { await refresh(host) }
    }

    /// The addresses of `host` (itself when numeric); empty when it did not resolve.
    func addresses(for host: String) -> [String] {
        if Self.isNumeric(host) { return [host] }
        let (addresses, stale) = entries.withLock { entries -> ([String], Bool) in
            guard var entry = entries[host] else { return ([], false) }
            let stale = !entry.refreshing && NIODeadline.now() - entry.resolved > Self.ttl
            if stale {
                entry.refreshing = true
                entries[host] = entry
            }
            return (entry.addresses, stale)
        }
        if stale {
            NIOThreadPool.singleton.submit { [self] _ in store(host, Self.resolve(host)) }
        }
        return addresses
    }

    private func refresh(_ host: String) async {
        let found = (try? await NIOThreadPool.singleton.runIfActive { Self.resolve(host) }) ?? []
        store(host, found)
    }

    private func store(_ host: String, _ addresses: [String]) {
        entries.withLock { entries in
            var entry = entries[host] ?? Entry()
            // A failed lookup keeps the last good answer (a resolver hiccup is not a ship gone).
            if !addresses.isEmpty || entry.addresses.isEmpty { entry.addresses = addresses }
            entry.resolved = .now()
            entry.refreshing = false
            entries[host] = entry
        }
    }

    static func isNumeric(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Blocking: the numeric addresses `host` resolves to, in the resolver's order.
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &found) == 0, let first = found else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if getnameinfo(
                info.pointee.ai_addr, info.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0,
                NI_NUMERICHOST)
                == 0
            {
                let address = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                if !addresses.contains(address) { addresses.append(address) }
            }
            current = info.pointee.ai_next
        }
        return addresses
    }
}

/// The relay's own metrics of its connections and threads (SPEC §10, ours):
/// `mothership_connections{bind}` (open client connections), `mothership_relay_worker_requests_total{worker}`
/// (request heads each worker read) and `mothership_relay_driver_moves_total{reason}` (connections
/// that left the thread that accepted them: only a WebSocket accepted for a bay).
final class RelayMetrics: Sendable {
    final class Connections: Sendable {
        private let count = Atomic<Int>(0)
        private let gauge: Gauge

        init(bind: String) {
            gauge = Gauge(label: "mothership_connections", dimensions: [("bind", bind)])
            gauge.record(0)
        }

        func opened() { gauge.record(count.add(1, ordering: .relaxed).newValue) }
        func closed() { gauge.record(count.subtract(1, ordering: .relaxed).newValue) }
    }

    private let binds: Mutex<[String: Connections]>
    let bayMoves = Counter(label: "mothership_relay_driver_moves_total", dimensions: [("reason", "bay")])

    init(binds: [String]) {
        var connections: [String: Connections] = [:]
        for bind in binds { connections[bind] = Connections(bind: bind) }
        self.binds = Mutex(connections)
    }

    /// The gauge of `bind`, made when a reload added it (one per name, kept if it goes and comes back).
    func connections(_ bind: String) -> Connections {
        binds.withLock { binds in
            if let known = binds[bind] { return known }
            let made = Connections(bind: bind)
            binds[bind] = made
            return made
        }
    }

    static func workerRequests(_ worker: Int) -> Counter {
        Counter(label: "mothership_relay_worker_requests_total", dimensions: [("worker", "\(worker)")])
    }
}
