// Fuzz target websocket: what a bay's WebSocket clients send (Sources/Relay/Bays): WebSocketRules
// (frame headers, fragmentation, close payloads), UTF8Stream, permessage-deflate negotiation and the
// inflater's limits (MessageDeflate). The first input byte picks the part (mod 5), the second seeds
// how the rest is cut into pieces.
//
// Properties, beyond "no crash, no memory error":
// 0. Frames: a sequence of frame headers through the rules never lets a message pass the size limit, a
//    control frame pass 125 bytes or be fragmented, or a continuation come without a message; a text
//    message's verdict (fed in pieces) equals the standard library's UTF-8 validation of its bytes.
// 1. UTF8Stream, fed in any pieces, accepts exactly the bytes Swift's String(validating:) accepts.
// 2. A close payload is accepted exactly when empty, or a sendable code (RFC 6455 §7.4) and UTF-8.
// 3. Inflate: the output never passes the limit (but for the one byte that shows a message is over it); pieces do not change the outcome; a message refused
//    as too big inflates, without the limit, to more than it; a message the deflater wrote inflates
//    back to itself.
// 4. Negotiation: an accepted offer's answer, offered again, is accepted with the same parameters.

import NIOCore
import NIOWebSocket

func fuzz(_ input: [UInt8]) {
    guard input.count >= 2 else { return }
    var sizes = Pieces(seed: input[1])
    let rest = Array(input[2...])
    switch input[0] % 5 {
    case 0: frames(rest, sizes: &sizes)
    case 1: utf8(rest, sizes: &sizes)
    case 2: close(rest)
    case 3: inflate(rest, sizes: &sizes)
    default: negotiate(rest)
    }
}

struct Pieces {
    private var state: UInt32
    init(seed: UInt8) { state = UInt32(seed) &* 2_654_435_761 | 1 }
    mutating func next(_ limit: Int = 16) -> Int {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return Int(state % UInt32(limit)) + 1
    }
    /// `bytes` cut into pieces.
    mutating func cut(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var pieces: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + next())
            pieces.append(bytes[start..<end])
            start = end
        }
        return pieces
    }
}

func isValidUTF8(_ bytes: some Collection<UInt8>) -> Bool { String(validating: bytes, as: UTF8.self) != nil }

// MARK: 0. Frames

/// Each frame: a byte of FIN, RSV1-3 and opcode (as on the wire), a byte of MASK and a 7-bit length,
/// then that many payload bytes (a text frame's payload goes through checkText).
func frames(_ bytes: [UInt8], sizes: inout Pieces) {
    let limit = 64
    var rules = WebSocketRules(
        maxMessageBytes: limit, compressionNegotiated: bytes.first.map { $0 & 1 == 1 } ?? false)
    var index = 0
    var message: [UInt8] = []
    var messageIsText = false
    var textVerdict: WebSocketRules.Violation? = nil
    var inMessage = false
    var total = 0
    while index + 2 <= bytes.count {
        let first = bytes[index]
        let second = bytes[index + 1]
        index += 2
        let length = Int(second & 0x7F)
        let payload = Array(bytes[index..<min(bytes.count, index + length)])
        index += payload.count
        let opcode = WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!
        let fin = first & 0x80 != 0
        let verdict = rules.frame(
            fin: fin, rsv1: first & 0x40 != 0, rsv2: first & 0x20 != 0, rsv3: first & 0x10 != 0,
            opcode: opcode,
            masked: second & 0x80 != 0, length: length)
        switch verdict {
        case .violation:
            return  // the connection is failed
        case .ping, .pong, .close:
            require(fin && length <= 125, "control frame accepted: fin \(fin), \(length) bytes")
        case .data(let messageOpcode, let isFirst, let last):
            if isFirst {
                require(!inMessage, "a new message inside a fragmented one")
                require(opcode == .text || opcode == .binary, "a message started by \(opcode)")
                message = []
                total = 0
                messageIsText = messageOpcode == .text
                textVerdict = nil
            } else {
                require(inMessage && opcode == .continuation, "a continuation without a message")
            }
            inMessage = !last
            total += length
            require(total <= limit, "a message of \(total) bytes passed the \(limit)-byte limit")
            message += payload
            if messageIsText && textVerdict == nil {
                let pieces = sizes.cut(payload)
                for (number, piece) in pieces.enumerated() where textVerdict == nil {
                    textVerdict = piece.withUnsafeBytes {
                        rules.checkText($0, last: last && number == pieces.count - 1)
                    }
                }
                if pieces.isEmpty && last {
                    textVerdict = rules.checkText(UnsafeRawBufferPointer(start: nil, count: 0), last: true)
                }
                if last {
                    require(
                        (textVerdict == nil) == isValidUTF8(message),
                        "text message \(show(message)): rules say \(String(describing: textVerdict))")
                } else if textVerdict != nil {
                    // Refused early: these bytes cannot begin a UTF-8 text, so they are not one.
                    require(!isValidUTF8(message), "text refused early: \(show(message))")
                }
            }
        }
    }
}

// MARK: 1. UTF-8

func utf8(_ bytes: [UInt8], sizes: inout Pieces) {
    var stream = UTF8Stream()
    var accepted = true
    for piece in sizes.cut(bytes) where accepted {
        accepted = piece.withUnsafeBytes { stream.feed($0) }
    }
    let valid = accepted && stream.isComplete
    require(valid == isValidUTF8(bytes), "UTF8Stream says \(valid) of \(show(bytes))")
}

// MARK: 2. Close payloads

func close(_ bytes: [UInt8]) {
    let verdict = WebSocketRules.close(payload: ByteBuffer(bytes: bytes))
    let expected: Bool
    if bytes.isEmpty {
        expected = true
    } else if bytes.count == 1 {
        expected = false
    } else {
        let code = Int(bytes[0]) << 8 | Int(bytes[1])
        let sendable =
            (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
        expected = sendable && isValidUTF8(bytes[2...])
    }
    switch verdict {
    case .valid(let code, let reason):
        require(expected, "close payload \(show(bytes)) accepted")
        if bytes.count >= 2 {
            require(
                code == UInt16(bytes[0]) << 8 | UInt16(bytes[1]), "close code \(String(describing: code))")
            require(Array(reason.utf8) == Array(bytes[2...]), "close reason \(reason)")
        }
    case .violation:
        require(!expected, "close payload \(show(bytes)) refused")
    }
}

// MARK: 3. Inflate

func inflate(_ bytes: [UInt8], sizes: inout Pieces) {
    guard let control = bytes.first else { return }
    let data = Array(bytes.dropFirst())
    let limit = Int(control) * 16
    let whole = inflated(data, limit: limit, pieces: [data[...]], noContextTakeover: control & 1 == 1)
    // The inflater produces at most one byte past the limit, to see that the message is over it.
    require(
        whole.output.count <= limit || (whole.output.count == limit + 1 && whole.violation?.code == 1009),
        "inflated \(whole.output.count) bytes past the limit \(limit), \(String(describing: whole.violation))"
    )
    let split = inflated(data, limit: limit, pieces: sizes.cut(data), noContextTakeover: control & 1 == 1)
    require(
        whole.violation?.code == split.violation?.code
            && (whole.violation != nil || whole.output == split.output),
        "pieces change the inflated message: \(String(describing: whole.violation)) vs \(String(describing: split.violation))"
    )
    if whole.violation?.code == 1009 {
        let unlimited = inflated(data, limit: 1 << 20, pieces: [data[...]], noContextTakeover: false)
        require(
            unlimited.output.count > limit,
            "refused as over \(limit) bytes, but inflates to \(unlimited.output.count)")
    }
    // Round trip: the deflater's output for these bytes as a message.
    let deflate = MessageDeflate(parameters: PerMessageDeflate())
    guard
        let compressed = deflate.deflate(
            ByteBuffer(bytes: data), headerRoom: 14, allocator: ByteBufferAllocator())
    else {
        require(false, "the deflater failed on \(data.count) bytes")
        return
    }
    let packed = Array(compressed.readableBytesView)
    let back = inflated(packed, limit: data.count, pieces: sizes.cut(packed), noContextTakeover: false)
    require(back.violation == nil && back.output == data, "deflate then inflate changes \(show(data))")
}

func inflated(_ data: [UInt8], limit: Int, pieces: [ArraySlice<UInt8>], noContextTakeover: Bool)
    -> (output: [UInt8], violation: WebSocketRules.Violation?)
{
    var parameters = PerMessageDeflate()
    parameters.clientNoContextTakeover = noContextTakeover
    let inflater = MessageDeflate(parameters: parameters)
    var output = ByteBuffer()
    var violation: WebSocketRules.Violation? = nil
    let pieces = pieces.isEmpty ? [data[...]] : pieces
    for (number, piece) in pieces.enumerated() {
        violation = piece.withUnsafeBytes {
            inflater.inflate($0, end: number == pieces.count - 1, into: &output, limit: limit) { _ in nil }
        }
        if violation != nil { break }
    }
    inflater.release()
    return (Array(output.readableBytesView), violation)
}

// MARK: 4. Negotiation

func negotiate(_ bytes: [UInt8]) {
    let headers = bytes.split(separator: 10, omittingEmptySubsequences: false).map {
        String(decoding: $0, as: UTF8.self)
    }
    guard let accepted = PerMessageDeflate.negotiate(headers) else { return }
    require(accepted.serverMaxWindowBits >= 9 && accepted.serverMaxWindowBits <= 15, "window \(accepted)")
    let again = PerMessageDeflate.negotiate([accepted.responseValue])
    require(again == accepted, "answer \(accepted.responseValue) negotiates to \(String(describing: again))")
}
