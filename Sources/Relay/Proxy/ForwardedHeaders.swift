import NIOHTTP1

/// The header rewriting of a proxied exchange (SPEC §4): hop-by-hop headers out, forwarding
/// headers in. Pure functions over NIO's header types, tested without a network.
enum ForwardedHeaders {
    /// What the relay knows about the client side of one request.
    struct Client {
        /// The client's IP address (from PROXY protocol when present), or nil for a Unix socket peer.
        var address: String?
        /// `http` or `https`.
        var scheme: String
    }

    /// The request head sent upstream: `uri` replaces the original (after `strip_prefix`), HTTP/1.1
    /// with keep-alive towards the ship, hop-by-hop headers removed (an upgrade keeps its
    /// `Connection: upgrade` and `Upgrade`), and the forwarding headers added.
    /// `isUpgrade` and `expectsContinue` are the caller's `isUpgrade(head)` and
    /// `expectsContinue(head)`, computed once per request.
    static func upstreamRequest(
        _ head: HTTPRequestHead, uri: String, client: Client, isUpgrade: Bool, expectsContinue: Bool,
        requestID: () -> String, startMicroseconds: Int64
    ) -> HTTPRequestHead {
        var headers = head.headers
        let upgradeProtocol = isUpgrade ? headers.first(name: "upgrade") : nil
        removeHopByHop(&headers)
        if expectsContinue { headers.remove(name: "expect") }  // answered by the relay
        if let upgradeProtocol {
            headers.add(name: "Connection", value: "upgrade")
            headers.add(name: "Upgrade", value: upgradeProtocol)
        }
        if let address = client.address {
            if headers.contains(name: "x-forwarded-for") {
                let previous = headers["x-forwarded-for"].joined(separator: ", ")
                headers.remove(name: "x-forwarded-for")
                headers.add(name: "X-Forwarded-For", value: previous + ", " + address)
            } else {
                headers.add(name: "X-Forwarded-For", value: address)
            }
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: client.scheme)
        if let host = headers.first(name: "host") {
            headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
        }
        if !headers.contains(name: "x-request-id") {
            headers.add(name: "X-Request-Id", value: requestID())
        }
        headers.replaceOrAdd(name: "X-Request-Start", value: "t=\(startMicroseconds)")
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers)
    }

    /// The response head sent to the client: in the client's HTTP version (the ship's version
    /// describes the other hop), hop-by-hop headers removed (kept on a 101), and `Connection: close`
    /// when the client's connection ends after this response (`keep-alive` for an HTTP/1.0 client
    /// that keeps it).
    static func clientResponse(
        _ head: HTTPResponseHead, clientVersion: HTTPVersion, closeAfter: Bool
    ) -> HTTPResponseHead {
        var head = head
        head.version = clientVersion
        if head.status == .switchingProtocols { return head }
        removeHopByHop(&head.headers)
        if closeAfter {
            head.headers.add(name: "Connection", value: "close")
        } else if clientVersion == .http1_0 {
            head.headers.add(name: "Connection", value: "keep-alive")
        }
        return head
    }

    /// Whether an HTTP/1.1 client waits for `100 Continue` before sending its body.
    static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        (head.version.major, head.version.minor) >= (1, 1)
            && head.headers.contains(name: "expect")
            && head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
    }

    /// Whether the request asks to switch protocols (WebSocket or any other `Upgrade`).
    static func isUpgrade(_ head: HTTPRequestHead) -> Bool {
        head.headers.contains(name: "upgrade")
            && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
    }

    /// Removes the hop-by-hop headers and any header the `Connection` header names. One pass that
    /// allocates nothing when there is nothing to remove (the usual request); the usual response
    /// (`Connection: keep-alive`) costs one removal.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        var named: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            if !found.contains(name) { found.append(name) }
            if name.utf8.count == 10 && equalsIgnoringCase(name, "connection") {
                collectNamedHeaders(in: value, into: &named)
            }
        }
        for name in found { headers.remove(name: name) }
        for name in named { headers.remove(name: name) }
    }

    /// The header names a `Connection` value lists, beyond `close`, `keep-alive` and `upgrade`.
    private static func collectNamedHeaders(in value: String, into named: inout [String]) {
        var utf8 = value.utf8[...]
        while !utf8.isEmpty {
            let end = utf8.firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            var token = utf8[utf8.startIndex..<end]
            while let first = token.first, first == 0x20 || first == 0x09 { token = token.dropFirst() }
            while let last = token.last, last == 0x20 || last == 0x09 { token = token.dropLast() }
            utf8 = end == utf8.endIndex ? utf8[end...] : utf8[utf8.index(after: end)...]
            let text = String(Substring(token))
            if !text.isEmpty && !equalsIgnoringCase(text, "close") && !equalsIgnoringCase(text, "keep-alive")
                && !equalsIgnoringCase(text, "upgrade")
            {
                named.append(text)
            }
        }
    }

    /// Whether `name` describes one connection, never the message (RFC 9110 §7.6.1), compared
    /// without case and without allocating. `Transfer-Encoding` is not one here: the encoders
    /// re-frame the body from it.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: equalsIgnoringCase(name, "te")
        case 7: equalsIgnoringCase(name, "trailer") || equalsIgnoringCase(name, "upgrade")
        case 10: equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: equalsIgnoringCase(name, "proxy-connection")
        case 18: equalsIgnoringCase(name, "proxy-authenticate")
        case 19: equalsIgnoringCase(name, "proxy-authorization")
        default: false
        }
    }

    /// ASCII case-insensitive equality with a lower-case literal.
    static func equalsIgnoringCase(_ text: String, _ lowercase: StaticString) -> Bool {
        guard text.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in text.utf8 {
                if (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) != expected[index] { return false }
                index += 1
            }
            return true
        }
    }
}
