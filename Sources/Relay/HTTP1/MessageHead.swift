import NIOCore
import NIOHTTP1

/// A parsed HTTP/1 request or response head, kept as the bytes it arrived in plus the offsets of its
/// parts: the relay forwards heads by copying whole lines, so nothing is decoded into strings unless
/// a decision needs it (the path for routing, the User-Agent for a filter).
///
/// Offsets are relative to the first byte of `bytes`.
struct MessageHead {
    /// The head exactly as received, from the first line to the blank line that ends it.
    var bytes: ByteBuffer
    /// Requests: the method, the request target.
    var method: HTTPMethod = .GET
    var target: Range<Int> = 0..<0
    /// Responses: the status code; the status line after the version (`200 OK`).
    var status = 0
    var statusText: Range<Int> = 0..<0
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    var minorVersion = 1
    /// Where the header lines begin (after the first line).
    var fieldsStart = 0
    var fields: [HeaderField] = []

    /// `Content-Length`, when present (all copies agreeing).
    var contentLength: Int?
    /// `Transfer-Encoding` ends in `chunked`.
    var chunked = false
    /// Any `Transfer-Encoding` header.
    var hasTransferEncoding = false
    var connection = ConnectionTokens()
    /// An `Upgrade` header is present.
    var hasUpgrade = false
    /// `Upgrade` names `h2c`: the request is not treated as an upgrade.
    var upgradesToH2C = false
    /// How many `Host` fields a request has.
    var hostCount = 0
    /// `Expect: 100-continue`.
    var expectsContinue = false
    /// Some header line ends in a bare LF (lines are then re-terminated one by one when forwarded).
    var bareLineFeeds = false

    /// Where the header lines end (the blank line begins).
    var fieldsEnd: Int { fields.last?.line.upperBound ?? fieldsStart }

    init(bytes: ByteBuffer) { self.bytes = bytes }

    var version: HTTPVersion { minorVersion == 1 ? .http1_1 : .http1_0 }

    /// HTTP/1.1 keeps the connection unless `close`; HTTP/1.0 only with `keep-alive`.
    var isKeepAlive: Bool {
        minorVersion == 1
            ? !connection.contains(.close) : connection.contains(.keepAlive) && !connection.contains(.close)
    }

    /// The request asks to switch protocols (WebSocket or any other `Upgrade`).
    var isUpgrade: Bool { hasUpgrade && connection.contains(.upgrade) && !upgradesToH2C }

    func string(_ range: Range<Int>) -> String {
        bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// The request target as text.
    var targetString: String { string(target) }

    /// The first value of the header of `kind`.
    func value(of kind: FieldKind) -> String? {
        fields.first { $0.kind == kind }.map { string($0.value) }
    }

    /// Headers as name/value strings (tests and debugging).
    var headerPairs: [(String, String)] { fields.map { (string($0.name), string($0.value)) } }
}

/// One header line: offsets of its name and (trimmed) value, and of the whole line with its
/// line ending, so that forwarding it is one copy.
struct HeaderField {
    var line: Range<Int>
    var name: Range<Int>
    var value: Range<Int>
    var kind: FieldKind
    /// Hop-by-hop, or listed by the `Connection` header: never forwarded.
    var isHopByHop: Bool
}

/// The headers the relay looks at; everything else is `.other` and passes through untouched.
enum FieldKind: UInt8 {
    case other
    case connection, keepAlive, proxyConnection, te, trailer, upgrade, proxyAuthenticate, proxyAuthorization
    case contentLength, transferEncoding, host, expect, userAgent
    case xForwardedFor, xForwardedProto, xForwardedHost, xRequestID, xRequestStart
    /// RFC 7540 §3.2.1: only meaningful with an `h2c` upgrade, which the relay does not pass on.
    case http2Settings

    /// RFC 9110 §7.6.1: describes one connection, never the message.
    var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade, .proxyAuthenticate,
            .proxyAuthorization, .http2Settings:
            true
        default: false
        }
    }
}

/// The tokens of `Connection` the relay acts on.
struct ConnectionTokens: OptionSet {
    let rawValue: UInt8
    static let close = ConnectionTokens(rawValue: 1)
    static let keepAlive = ConnectionTokens(rawValue: 2)
    static let upgrade = ConnectionTokens(rawValue: 4)
    /// Some other token: a header name to drop.
    static let names = ConnectionTokens(rawValue: 8)
}

extension HTTPMethod {
    /// `==` on `HTTPMethod` compares the methods' names as strings; these compare cases.
    var isHead: Bool {
        if case .HEAD = self { true } else { false }
    }

    var isConnect: Bool {
        if case .CONNECT = self { true } else { false }
    }
}
