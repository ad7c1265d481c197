import ShipManifest

/// A `postgres://user:password@host:port/database?sslmode=...` URL, parsed for the election's
/// connection. The password never appears in `description`.
public struct PostgresURL: Sendable, Hashable, CustomStringConvertible {
    /// How the connection uses TLS (`sslmode`; libpq's default is `prefer`).
    public enum TLSMode: String, Sendable, Hashable {
        case disable
        case prefer
        /// `require`: encrypted, the certificate not checked (as libpq does).
        case require
        /// `verify-ca`, `verify-full`: encrypted, the certificate and host name checked.
        case verify
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// The URL as given with its password replaced by `***`.
    public var description: String

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    public init(parsing url: String) throws(ParseError) {
        let redacted = UplinkTarget.redact(url)
        let target: UplinkTarget
        do {
            target = try UplinkTarget(parsing: url)
        } catch {
            throw ParseError(description: error.description)
        }
        guard target.scheme == "postgres" || target.scheme == "postgresql" else {
            throw ParseError(description: "'\(redacted)' is not a postgres:// URL")
        }
        let afterScheme = url[url.firstRange(of: "://")!.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        var user = "postgres"
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                user = Self.percentDecoded(credentials[..<colon])
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                user = Self.percentDecoded(credentials)
            }
        }
        var rest = afterScheme[authorityEnd...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        let path = Self.percentDecoded(rest.drop { $0 == "/" })
        var tls = TLSMode.prefer
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0] == "sslmode" else { continue }
            switch parts[1] {
            case "disable", "allow": tls = .disable
            case "prefer": tls = .prefer
            case "require": tls = .require
            case "verify-ca", "verify-full": tls = .verify
            default:
                throw ParseError(
                    description:
                        "sslmode '\(parts[1])' in '\(redacted)' is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )
            }
        }
        self.host = target.host
        self.port = target.port
        self.user = user.isEmpty ? "postgres" : user
        self.password = password
        self.database = path.isEmpty ? self.user : path
        self.tls = tls
        self.description = redacted
    }

    /// `%xx` escapes decoded (user names and passwords may carry `@`, `:` or `/` that way).
    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"),
                let first = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex),
                first < utf8.endIndex, let second = utf8.index(first, offsetBy: 1, limitedBy: utf8.endIndex),
                second < utf8.endIndex, let high = hexValue(utf8[first]), let low = hexValue(utf8[second])
            {
                bytes.append(high << 4 | low)
                index = utf8.index(after: second)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
