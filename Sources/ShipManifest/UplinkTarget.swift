/// What an uplink URL points at: scheme, host and port (defaults per scheme), and how it is checked.
public struct UplinkTarget: Sendable, Hashable, CustomStringConvertible {
    public enum Check: Sendable, Hashable {
        /// Open a TCP connection.
        case tcpConnect
        /// HTTP GET; any status below 500 is up.
        case httpGet(tls: Bool, path: String)
    }

    public var scheme: String
    public var host: String
    public var port: Int
    public var check: Check

    static let defaultPorts: [String: Int] = [
        "postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379, "rediss": 6379,
        "memgraph": 7687, "neo4j": 7687, "bolt": 7687, "http": 80, "https": 443,
    ]

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(parsing url: String) throws(ParseError) {
        guard let schemeEnd = url.firstRange(of: "://") else {
            throw ParseError(description: "'\(Self.redact(url))' is not a URL; expected scheme://host[:port]")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "tcp" || Self.defaultPorts[scheme] != nil else {
            throw ParseError(
                description:
                    "unsupported scheme '\(scheme)://'; expected postgres, postgresql, mysql, redis, memgraph, neo4j, http, https or tcp"
            )
        }
        var rest = url[schemeEnd.upperBound...]
        var path = "/"
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            path = rest[slash] == "/" ? String(rest[slash...]) : "/" + rest[slash...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }  // credentials
        var host = String(rest)
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw ParseError(description: "'\(Self.redact(url))' has an unterminated IPv6 address")
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty else { throw ParseError(description: "'\(Self.redact(url))' has no host") }
        guard BindAddress.isValidHost(host) else {
            throw ParseError(
                description: "host '\(host)' in '\(Self.redact(url))' is not a valid host name or IP address")
        }
        let port: Int
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw ParseError(
                    description: "port '\(portText)' in '\(Self.redact(url))' is not a number from 1 to 65535"
                )
            }
            port = value
        } else if let fallback = Self.defaultPorts[scheme] {
            port = fallback
        } else {
            throw ParseError(description: "'\(Self.redact(url))' needs a port (tcp://host:port)")
        }
        self.scheme = scheme
        self.host = host
        self.port = port
        self.check =
            scheme == "http" || scheme == "https" ? .httpGet(tls: scheme == "https", path: path) : .tcpConnect
    }

    /// `host:port`, the key uplink checks are deduplicated by.
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var description: String { "\(scheme)://\(endpoint)" }

    /// The URL with any password replaced by `***`, for logs and errors.
    public static func redact(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://") else { return url }
        let authorityEnd =
            url[schemeEnd.upperBound...].firstIndex(where: { $0 == "/" || $0 == "?" }) ?? url.endIndex
        let authority = url[schemeEnd.upperBound..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return url
        }
        return String(url[..<authority.index(after: colon)]) + "***" + String(url[at...])
    }
}
