/// Where a listener listens or a ship serves: TCP host and port, or a Unix socket path.
///
/// Accepted spellings: `tcp://host:port`, `host:port`, `port` (means `127.0.0.1:port`),
/// `unix:///absolute/path.sock`, and IPv6 as `[::1]:8080`.
public enum BindAddress: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case relativeUnixPath(String)
        case badPort(String)
        case missingPort(String)
        case badHost(String)
        case unknownScheme(String)
        case unbracketedIPv6(String)

        public var description: String {
            switch self {
            case .empty:
                "is empty; expected tcp://host:port, host:port, port or unix:///path.sock"
            case .relativeUnixPath(let path):
                "unix socket path '\(path)' must be absolute (unix:///path/to/app.sock)"
            case .badPort(let port):
                "port '\(port)' is not a number from 1 to 65535"
            case .missingPort(let text):
                "'\(text)' has no port; expected host:port"
            case .badHost(let host):
                "host '\(host)' is not a valid host name or IP address"
            case .unknownScheme(let scheme):
                "unknown scheme '\(scheme)://'; expected tcp:// or unix://"
            case .unbracketedIPv6(let text):
                "IPv6 addresses need brackets: write '\(text)' as [host]:port, such as [::1]:8080"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        if let schemeEnd = trimmed.firstRange(of: "://") {
            let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
            let rest = String(trimmed[schemeEnd.upperBound...])
            switch scheme {
            case "unix":
                guard rest.hasPrefix("/") else { throw .relativeUnixPath(rest) }
                self = .unix(path: rest)
                return
            case "tcp":
                self = try Self.parseHostPort(rest)
                return
            default:
                throw .unknownScheme(scheme)
            }
        }
        if trimmed.hasPrefix("/") {
            self = .unix(path: trimmed)
            return
        }
        if trimmed.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            self = .tcp(host: "127.0.0.1", port: try Self.parsePort(trimmed))
            return
        }
        self = try Self.parseHostPort(trimmed)
    }

    private static func parseHostPort(_ text: String) throws(ParseError) -> BindAddress {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .badHost(text) }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .missingPort(text) }
            guard IPAddress(parsing: host)?.isV6 == true else { throw .badHost(host) }
            return .tcp(host: host, port: try parsePort(String(rest.dropFirst())))
        }
        guard let colon = text.lastIndex(of: ":") else { throw .missingPort(text) }
        let host = String(text[..<colon])
        guard !host.contains(":") else { throw .unbracketedIPv6(text) }
        guard isValidHost(host) else { throw .badHost(host) }
        return .tcp(host: host, port: try parsePort(String(text[text.index(after: colon)...])))
    }

    private static func parsePort(_ text: String) throws(ParseError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else { throw .badPort(text) }
        return port
    }

    static func isValidHost(_ host: String) -> Bool {
        guard !host.isEmpty, host.utf8.count <= 253 else { return false }
        if IPAddress(parsing: host) != nil { return true }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { byte in
                    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                        || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
                }
        }
    }

    public var isUnix: Bool {
        if case .unix = self { return true }
        return false
    }

    /// The TCP port, if this is a TCP address.
    public var port: Int? {
        if case .tcp(_, let port) = self { return port }
        return nil
    }

    /// `127.0.0.1:3000`, `[::1]:8080` or `unix:///run/app.sock`.
    public var description: String {
        switch self {
        case .tcp(let host, let port):
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path):
            "unix://\(path)"
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
