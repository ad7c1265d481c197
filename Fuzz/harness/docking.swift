// Fuzz target docking: the docking protocol's codec (Sources/DockingProtocol), which reads what a
// bay sends. The first input byte picks the payload limit and seeds the pieces; the rest is the
// bytes of the link.
//
// Properties, beyond "no crash, no memory error":
// 1. A frame not yet complete (nil) or refused (thrown) leaves the buffer untouched.
// 2. Arrival does not matter: the link's bytes in pieces decode to the same messages and the same
//    error (for bad JSON, the same message kind; the reason may name another of its faults) as when
//    they come at once.
// 3. Round trip: every decoded message, encoded again, decodes to the same message, from exactly the
//    bytes written.

import NIOCore

func fuzz(_ input: [UInt8]) {
    guard let control = input.first else { return }
    let bytes = Array(input.dropFirst())
    let limit = control & 1 == 0 ? DockingCodec.maxPayload : Int(control) * 4
    let whole = decodeAll([bytes[...]], limit: limit)
    var state = UInt32(control) &* 2_654_435_761 | 1
    var pieces: [ArraySlice<UInt8>] = []
    var start = 0
    while start < bytes.count {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let end = min(bytes.count, start + Int(state % 12) + 1)
        pieces.append(bytes[start..<end])
        start = end
    }
    let trickled = decodeAll(pieces, limit: limit)
    require(
        whole.messages == trickled.messages && whole.error.map(errorKind) == trickled.error.map(errorKind),
        "pieces change the decoding: \(whole) vs \(trickled)")
    for message in whole.messages {
        var encoded = ByteBuffer()
        DockingCodec.encode(message, into: &encoded)
        let written = encoded.readableBytes
        do {
            let again = try DockingCodec.decode(from: &encoded, maxPayload: Int.max)
            require(again == message, "\(message) encodes and decodes to \(String(describing: again))")
            require(
                encoded.readableBytes == 0,
                "decoding \(message) again left \(encoded.readableBytes) of \(written) bytes")
        } catch {
            require(false, "\(message) encodes to a frame that does not decode: \(error)")
        }
    }
}

/// An error without its JSON reason: of a payload with two faults, JSONDecoder names whichever it
/// meets first, and that follows a dictionary's order, which differs between runs and instances.
func errorKind(_ error: DockingError) -> DockingError {
    if case .badJSON(let kind, _) = error { return .badJSON(kind: kind, reason: "") }
    return error
}

struct Decoded: Equatable {
    var messages: [DockingMessage] = []
    var error: DockingError?
}

func decodeAll(_ pieces: [ArraySlice<UInt8>], limit: Int) -> Decoded {
    var buffer = ByteBuffer()
    var result = Decoded()
    for piece in pieces {
        buffer.writeBytes(piece)
        while true {
            let before = buffer
            do {
                guard let message = try DockingCodec.decode(from: &buffer, maxPayload: limit) else {
                    require(
                        buffer == before && buffer.readerIndex == before.readerIndex,
                        "an incomplete frame moved the buffer")
                    break
                }
                result.messages.append(message)
            } catch {
                require(
                    buffer == before && buffer.readerIndex == before.readerIndex,
                    "a refused frame moved the buffer")
                result.error = error
                return result
            }
        }
    }
    return result
}
