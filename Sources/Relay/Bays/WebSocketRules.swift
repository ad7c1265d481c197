import NIOCore
import NIOWebSocket

/// RFC 6455's rules for what a client sends to a server, frame by frame, without I/O: which frames
/// are acceptable, how fragments make up a message, what a text message's bytes and a close
/// frame's payload may be. A broken rule is a `Violation` with the close code the RFC names; the
/// connection is then failed (a close frame with that code, then the TCP connection closes).
struct WebSocketRules {
    /// What a frame is, once its header passed the rules.
    enum Verdict: Equatable {
        /// A piece of a data message (`first` and `last` both set for an unfragmented one).
        case data(opcode: WebSocketOpcode, first: Bool, last: Bool)
        case ping
        case pong
        case close
        case violation(Violation)
    }

    struct Violation: Error, Equatable {
        /// 1002 (protocol error), 1007 (invalid payload data) or 1009 (message too big).
        let code: UInt16
        let reason: String

        static func protocolError(_ reason: String) -> Violation { Violation(code: 1002, reason: reason) }
        static let invalidUTF8 = Violation(code: 1007, reason: "invalid UTF-8 in a text message")
    }

    /// The largest message accepted (all its fragments together).
    let maxMessageBytes: Int
    /// Whether RSV1 may mark a compressed message (permessage-deflate negotiated).
    let compressionNegotiated: Bool
    /// The opcode of the fragmented message in progress.
    private(set) var continuing: WebSocketOpcode?
    private(set) var messageBytes = 0
    /// The UTF-8 state of the text message in progress.
    private var text = UTF8Stream()

    init(maxMessageBytes: Int, compressionNegotiated: Bool = false) {
        self.maxMessageBytes = maxMessageBytes
        self.compressionNegotiated = compressionNegotiated
    }

    /// Checks a frame's header (RFC 6455 §5.1–§5.5) and keeps track of fragmentation.
    mutating func frame(
        fin: Bool, rsv1: Bool, rsv2: Bool, rsv3: Bool, opcode: WebSocketOpcode, masked: Bool, length: Int
    ) -> Verdict {
        // §5.1: a server MUST close the connection on an unmasked client frame.
        guard masked else { return .violation(.protocolError("client frames must be masked")) }
        // §5.2: RSV bits are for extensions; none is negotiated but permessage-deflate's RSV1,
        // which marks a message's first frame (RFC 7692 §6).
        let compressedStart = rsv1 && compressionNegotiated && (opcode == .text || opcode == .binary)
        if rsv2 || rsv3 || (rsv1 && !compressedStart) {
            return .violation(.protocolError("reserved bits set without a negotiated extension"))
        }
        switch opcode {
        case .continuation:
            guard let message = continuing else {
                return .violation(.protocolError("a continuation frame with no message to continue"))
            }
            messageBytes += length
            guard messageBytes <= maxMessageBytes else { return .violation(Self.tooBig(maxMessageBytes)) }
            if fin { continuing = nil }
            return .data(opcode: message, first: false, last: fin)
        case .text, .binary:
            guard continuing == nil else {
                return .violation(.protocolError("a new message before the fragmented one ended"))
            }
            guard length <= maxMessageBytes else { return .violation(Self.tooBig(maxMessageBytes)) }
            messageBytes = length
            text = UTF8Stream()
            if !fin { continuing = opcode }
            return .data(opcode: opcode, first: true, last: fin)
        case .connectionClose, .ping, .pong:
            // §5.5: control frames are never fragmented and carry at most 125 bytes.
            guard fin else { return .violation(.protocolError("a fragmented control frame")) }
            guard length <= 125 else {
                return .violation(.protocolError("a control frame longer than 125 bytes"))
            }
            return opcode == .ping ? .ping : opcode == .pong ? .pong : .close
        default:
            // §5.2: opcodes 3–7 and 11–15 are reserved.
            return .violation(.protocolError("reserved opcode \(Self.number(opcode))"))
        }
    }

    /// Checks the next bytes of the current text message (unmasked, in order), failing as soon as
    /// they cannot be UTF-8 (§8.1); `last`: the message ends with them (no sequence may be cut).
    mutating func checkText(_ bytes: UnsafeRawBufferPointer, last: Bool) -> Violation? {
        guard text.feed(bytes), !last || text.isComplete else { return .invalidUTF8 }
        return nil
    }

    mutating func checkText(_ buffer: ByteBuffer, last: Bool) -> Violation? {
        buffer.withUnsafeReadableBytes { checkText($0, last: last) }
    }

    /// A client's close frame (§5.5.1, §7.4): no payload, or a code a peer may send and a UTF-8 reason.
    enum Close: Equatable {
        case valid(code: UInt16?, reason: String)
        case violation(Violation)
    }

    static func close(payload: ByteBuffer) -> Close {
        var payload = payload
        guard payload.readableBytes > 0 else { return .valid(code: nil, reason: "") }
        guard let code = payload.readInteger(as: UInt16.self) else {
            return .violation(.protocolError("a close frame with a 1-byte payload"))
        }
        guard isSendable(code) else { return .violation(.protocolError("close code \(code) is not valid")) }
        var reasonCheck = UTF8Stream()
        let valid = payload.withUnsafeReadableBytes { reasonCheck.feed($0) && reasonCheck.isComplete }
        guard valid else { return .violation(.invalidUTF8InCloseReason) }
        return .valid(code: code, reason: payload.readString(length: payload.readableBytes) ?? "")
    }

    /// Codes an endpoint may put in a close frame (§7.4.1, §7.4.2 and the IANA registry): 1000–1003,
    /// 1007–1014, and 3000–4999 (libraries, applications); 1004–1006, 1015 and the rest are not.
    static func isSendable(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    private static func tooBig(_ limit: Int) -> Violation {
        Violation(code: 1009, reason: "message over \(limit) bytes")
    }

    private static func number(_ opcode: WebSocketOpcode) -> Int {
        Int(UInt8(webSocketOpcode: opcode))
    }
}

extension WebSocketRules.Violation {
    static let invalidUTF8InCloseReason = WebSocketRules.Violation(
        code: 1007, reason: "invalid UTF-8 in a close reason")
}

/// A streaming UTF-8 validator (RFC 3629 §4's well-formed byte sequences): bytes may arrive in any
/// pieces, and the first byte that no valid text can contain is found at once. ASCII runs are
/// skipped eight bytes at a time.
struct UTF8Stream {
    /// Continuation bytes still due for the current character.
    private var remaining: UInt8 = 0
    /// The range the next continuation byte must fall in (narrower after E0, ED, F0 and F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    /// Whether no character is cut at the end of what was fed.
    var isComplete: Bool { remaining == 0 }

    /// Feeds the next bytes; false once they cannot be part of valid UTF-8.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return true }
        var index = 0
        while index < count {
            if remaining == 0 {
                // ASCII, eight bytes at a time.
                while index + 8 <= count,
                    base.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                {
                    index += 8
                }
                guard index < count else { break }
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                index += 1
                switch byte {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: (remaining, lower, upper) = (1, 0x80, 0xBF)
                case 0xE0: (remaining, lower, upper) = (2, 0xA0, 0xBF)
                case 0xE1...0xEC, 0xEE...0xEF: (remaining, lower, upper) = (2, 0x80, 0xBF)
                case 0xED: (remaining, lower, upper) = (2, 0x80, 0x9F)  // no surrogates
                case 0xF0: (remaining, lower, upper) = (3, 0x90, 0xBF)
                case 0xF1...0xF3: (remaining, lower, upper) = (3, 0x80, 0xBF)
                case 0xF4: (remaining, lower, upper) = (3, 0x80, 0x8F)  // up to U+10FFFF
                default: return false  // a continuation byte first, C0, C1, F5–FF
                }
            } else {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                guard byte >= lower && byte <= upper else { return false }
                index += 1
                remaining -= 1
                (lower, upper) = (0x80, 0xBF)
            }
        }
        return true
    }
}
