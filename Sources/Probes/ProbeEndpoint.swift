import ShipManifest

/// Where a probe connects: a TCP host and port (a name or an IP literal) or a Unix socket path.
enum ProbeEndpoint: Hashable, Sendable {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// A ship's bind as a place to connect to: a wildcard bind (`0.0.0.0`, `::`) is reached on loopback.
    init(connectingTo address: BindAddress) {
        switch address {
        case .tcp(let host, let port):
            switch host {
            case "0.0.0.0", "": self = .tcp(host: "127.0.0.1", port: port)
            case "::", "0:0:0:0:0:0:0:0": self = .tcp(host: "::1", port: port)
            default: self = .tcp(host: host, port: port)
            }
        case .unix(let path):
            self = .unix(path: path)
        }
    }

    var host: String? {
        if case .tcp(let host, _) = self { return host }
        return nil
    }

    /// The `Host` header value: `host:port` (IPv6 in brackets), or `localhost` for a Unix socket.
    var hostHeader: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix: "localhost"
        }
    }
}
