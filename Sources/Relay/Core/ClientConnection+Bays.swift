import Crypto
import DockingProtocol
import NIOCore

extension ClientConnection {
    /// A request on a route whose target is a bay: a valid WebSocket upgrade while the bay is docked
    /// is accepted (101) and the connection becomes one of the bay's clients; anything else is
    /// answered here (426, 400, or 503 while the bay is not docked).
    func boardBay(_ berth: BayBerth, head: MessageHead, entry: RouteEntry, close: Bool) {
        let key: String
        switch WebSocketHandshake.check(head) {
        case .notAnUpgrade:
            answer(.webSocketOnly(bay: berth.bay), head: head, close: close, entry: entry)
            return
        case .invalid(let reason):
            answer(
                LocalResponse(status: .badRequest, message: "bad WebSocket upgrade: \(reason)"), head: head,
                close: true, entry: entry)
            return
        case .valid(let clientKey):
            key = clientKey
        }
        guard berth.isDocked && !draining else {
            answer(.bayNotDocked(bay: berth.bay), head: head, close: close, entry: entry)
            return
        }
        entry.requests.increment()
        let (generation, connID, typedCargo) = berth.nextPassenger()
        let boarding = Boarding(
            connID: connID, path: head.targetString, remoteAddr: remoteAddress(),
            headers: WebSocketHandshake.headers(of: head))
        var response = allocator.buffer(capacity: 160)
        response.writeStaticString(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
        )
        response.writeString(WebSocketHandshake.accept(key: key))
        if let offered = head.value(named: "sec-websocket-protocol"),
            let first = offered.split(separator: ",").first
        {
            // The bay speaks whatever the client offered first (ActionCable clients insist on one).
            response.writeStaticString("\r\nSec-WebSocket-Protocol: ")
            response.writeSubstring(first.trimmingWhitespace())
        }
        // permessage-deflate (RFC 7692): the first acceptable offer, unless the bay turned it off.
        var deflate: PerMessageDeflate?
        if berth.limits.permessageDeflate {
            let offers = head.fields.filter { head.name(of: $0) == "sec-websocket-extensions" }
            if !offers.isEmpty {
                deflate = PerMessageDeflate.negotiate(offers.map { head.string($0.value) })
            }
        }
        if let deflate {
            response.writeStaticString("\r\nSec-WebSocket-Extensions: ")
            response.writeString(deflate.responseValue)
        }
        response.writeStaticString("\r\n\r\n")
        sendNow(response)
        // The bytes after the upgrade, and the connection, go to the bay's handling (`process`).
        handOverToBay(
            berth,
            BayBoarding(boarding: boarding, generation: generation, typedCargo: typedCargo, deflate: deflate))
    }

    /// `203.0.113.9:51000` or `[2001:db8::1]:51000`: the client as the PROXY header or the peer said.
    private func remoteAddress() -> String {
        let address = clientAddress ?? "unknown"
        guard let port = clientPort ?? transport?.peerPort else { return address }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

extension LocalResponse {
    static func webSocketOnly(bay: String) -> LocalResponse {
        LocalResponse(status: .upgradeRequired, message: "bay '\(bay)' takes WebSocket connections only")
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

/// The server side of the RFC 6455 opening handshake, over the relay's own parsed head.
enum WebSocketHandshake {
    enum Check: Equatable {
        case notAnUpgrade
        case invalid(String)
        /// The client's `Sec-WebSocket-Key`.
        case valid(String)
    }

    static func check(_ head: MessageHead) -> Check {
        guard head.isUpgrade, let upgrade = head.value(of: .upgrade),
            upgrade.lowercased().split(separator: ",").contains(where: {
                $0.trimmingWhitespace() == "websocket"
            })
        else { return .notAnUpgrade }
        guard head.method == .GET else { return .invalid("the method must be GET") }
        guard head.minorVersion == 1 else { return .invalid("HTTP/1.1 is required") }
        guard head.value(named: "sec-websocket-version")?.trimmingWhitespaceString() == "13" else {
            return .invalid("Sec-WebSocket-Version must be 13")
        }
        guard let key = head.value(named: "sec-websocket-key")?.trimmingWhitespaceString(),
            key.utf8.count == 24
        else { return .invalid("Sec-WebSocket-Key is missing or malformed") }
        return .valid(key)
    }

    /// `Sec-WebSocket-Accept` for `key`: base64 of SHA-1 of the key and the RFC's GUID.
    static func accept(key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Base64.encode(Array(digest))
    }

    /// The request's headers for Boarding: lower-case names, repeated headers joined with `, `.
    static func headers(of head: MessageHead) -> [String: String] {
        var headers: [String: String] = [:]
        for field in head.fields {
            let name = head.name(of: field)
            let value = head.string(field.value)
            if let existing = headers[name] {
                headers[name] = existing + (name == "cookie" ? "; " : ", ") + value
            } else {
                headers[name] = value
            }
        }
        return headers
    }
}

extension MessageHead {
    /// A header's name, lower-case.
    func name(of field: HeaderField) -> String { string(field.name).lowercased() }

    /// The first value of the header named `name` (lower-case).
    func value(named name: String) -> String? {
        fields.first { self.name(of: $0) == name }.map { string($0.value) }
    }
}

extension String {
    func trimmingWhitespaceString() -> String { String(Substring(self).trimmingWhitespace()) }
}

enum Base64 {
    private static let alphabet = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(
                index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
