// Fuzz target chunked: ChunkedScanner and BodyFraming over a chunked body (RFC 9112 §7.1).
//
// Input: one control byte (bit 0: the lenient scanner used for responses, else the strict one for
// requests), one byte seeding the segment sizes, then the body bytes as they follow a head.
//
// Properties, beyond "no crash, no memory error":
// 1. Segment boundaries do not matter: scanned in pieces, the body ends at the same byte (or is refused,
//    or is still incomplete) and de-chunks to the same bytes as when it comes at once.
// 2. Strict (requests): the scanner decides exactly as a reference de-chunker written separately from
//    it (the RFC 9112 §7.1 grammar with the relay's documented limits: CRLF only, at most 15 hex digits,
//    BWS only before `;`, visible text in extensions (4 KiB) and trailers (16 KiB), no folded trailer
//    lines): same end, same refusal, same data bytes.
// 3. BodyFraming.take hands on exactly the body's bytes (its slices, joined, are the input up to the
//    end), and takeDechunked the same data as the scanner.

import NIOCore

func fuzz(_ input: [UInt8]) {
    guard input.count >= 2 else { return }
    let strict = input[0] & 1 == 0
    var sizes = SegmentSizes(seed: input[1])
    let body = Array(input[2...])

    let whole = scan(body, strict: strict, segments: [body.count])
    var pieces: [Int] = []
    var covered = 0
    while covered < body.count {
        let size = min(sizes.next(), body.count - covered)
        pieces.append(size)
        covered += size
    }
    let split = scan(body, strict: strict, segments: pieces)
    require(whole == split, "segments \(pieces) change the outcome: \(whole) vs \(split) for \(show(body))")
    let single = scan(body, strict: strict, segments: Array(repeating: 1, count: body.count))
    require(whole == single, "byte at a time changes the outcome: \(whole) vs \(single) for \(show(body))")

    if strict {
        let reference = referenceDechunk(body)
        require(
            whole.outcome == reference.outcome && whole.data == reference.data,
            "scanner \(whole.outcome) (\(whole.data.count) data bytes), reference \(reference.outcome) (\(reference.data.count)): \(show(body))"
        )
    }
    framing(body, strict: strict, pieces: pieces, expected: whole)
}

struct SegmentSizes {
    private var state: UInt32
    init(seed: UInt8) { state = UInt32(seed) &* 2_654_435_761 | 1 }
    /// 1 to 24 bytes, mostly small.
    mutating func next() -> Int {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return Int(state % 24) + 1
    }
}

enum Outcome: Equatable {
    case incomplete
    case malformed
    case done(end: Int)
}

struct Scanned: Equatable {
    var outcome: Outcome
    var data: [UInt8]
}

/// Scans `body` in pieces of the given sizes (the scanner keeps its state between them).
func scan(_ body: [UInt8], strict: Bool, segments: [Int]) -> Scanned {
    var scanner = ChunkedScanner(strict: strict)
    var data: [UInt8] = []
    var offset = 0
    for size in segments {
        let piece = Array(body[offset..<offset + size])
        do {
            let consumed = try piece.withUnsafeBytes { bytes throws(BodyFraming.Malformed) in
                try scanner.scan(bytes) { range in data += piece[range] }
            }
            require(consumed <= size, "consumed \(consumed) of \(size)")
            if scanner.isDone { return Scanned(outcome: .done(end: offset + consumed), data: data) }
            require(consumed == size, "consumed \(consumed) of \(size) without ending")
        } catch {
            return Scanned(outcome: .malformed, data: data)
        }
        offset += size
    }
    return Scanned(outcome: .incomplete, data: data)
}

/// The same body through `BodyFraming` and a `ByteBuffer`, as a connection reads it.
func framing(_ body: [UInt8], strict: Bool, pieces: [Int], expected: Scanned) {
    var passed = ByteBuffer()
    var dechunked: [UInt8] = []
    var taking = BodyFraming.chunked(ChunkedScanner(strict: strict))
    var dechunking = taking
    var takeEnded = false
    var dechunkEnded = false
    var takeFailed = false
    var dechunkFailed = false
    var inbound = ByteBuffer()
    var inboundCopy = ByteBuffer()
    var offset = 0
    for size in pieces {
        inbound.writeBytes(body[offset..<offset + size])
        inboundCopy.writeBytes(body[offset..<offset + size])
        offset += size
        if !takeEnded && !takeFailed {
            do {
                let (slice, ended) = try taking.take(from: &inbound)
                if var slice { passed.writeBuffer(&slice) }
                takeEnded = ended
            } catch {
                takeFailed = true
            }
        }
        if !dechunkEnded && !dechunkFailed {
            do {
                dechunkEnded = try dechunking.takeDechunked(from: &inboundCopy) { slice in
                    dechunked += slice.readableBytesView
                }
            } catch {
                dechunkFailed = true
            }
        }
    }
    switch expected.outcome {
    case .done(let end):
        require(takeEnded && dechunkEnded, "BodyFraming did not end where the scanner did: \(show(body))")
        require(
            Array(passed.readableBytesView) == Array(body[..<end]),
            "take passed on other bytes than the body's: \(show(body))")
        require(inbound.readableBytes == body.count - end, "take left \(inbound.readableBytes) bytes")
        require(dechunked == expected.data, "takeDechunked data differs: \(show(body))")
    case .malformed:
        require(takeFailed && dechunkFailed, "BodyFraming accepted what the scanner refused: \(show(body))")
    case .incomplete:
        require(!takeEnded && !takeFailed && !dechunkEnded && !dechunkFailed, "BodyFraming decided early")
        require(Array(passed.readableBytesView) == body, "take held back bytes of an unfinished body")
        require(dechunked == expected.data, "takeDechunked data differs: \(show(body))")
    }
}

// MARK: Reference

/// A strict chunked body (RFC 9112 §7.1), decoded by the grammar directly:
///     chunked-body = *chunk last-chunk trailer-section CRLF
///     chunk        = chunk-size [ BWS chunk-ext ] CRLF chunk-data CRLF      (size: 1 to 15 HEXDIG)
///     chunk-ext    = ";" *text            (at most 4096 bytes after the first ";")
///     trailer line = non-blank text CRLF  (all trailer lines: at most 16384 bytes)
/// where text is a visible byte, SP, HTAB or obs-text. Data is handed out as it is read, as the scanner
/// does, so an unfinished or refused body still compares its data so far.
func referenceDechunk(_ bytes: [UInt8]) -> Scanned {
    var index = 0
    var data: [UInt8] = []
    let count = bytes.count
    func hex(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: Int(byte) - 48
        case 65...70: Int(byte) - 55
        case 97...102: Int(byte) - 87
        default: nil
        }
    }
    func isText(_ byte: UInt8) -> Bool { byte == 9 || (byte >= 32 && byte != 127) }
    func result(_ outcome: Outcome) -> Scanned { Scanned(outcome: outcome, data: data) }

    while true {
        var digits = 0
        var size = 0
        while index < count, let value = hex(bytes[index]) {
            if digits == 15 { return result(.malformed) }
            size = size * 16 + value
            digits += 1
            index += 1
        }
        if index == count { return result(.incomplete) }
        if digits == 0 { return result(.malformed) }
        while index < count, bytes[index] == 32 || bytes[index] == 9 { index += 1 }
        if index == count { return result(.incomplete) }
        if bytes[index] == 59 {  // ';'
            index += 1
            var extensionBytes = 0
            while index < count, bytes[index] != 13 {
                extensionBytes += 1
                if !isText(bytes[index]) || extensionBytes > 4096 { return result(.malformed) }
                index += 1
            }
            if index == count { return result(.incomplete) }
        }
        if bytes[index] != 13 { return result(.malformed) }
        index += 1
        if index == count { return result(.incomplete) }
        if bytes[index] != 10 { return result(.malformed) }
        index += 1
        if size == 0 { break }
        let available = min(size, count - index)
        data += bytes[index..<index + available]
        index += available
        if available < size || index == count { return result(.incomplete) }
        if bytes[index] != 13 { return result(.malformed) }
        index += 1
        if index == count { return result(.incomplete) }
        if bytes[index] != 10 { return result(.malformed) }
        index += 1
    }
    var trailerBytes = 0
    while true {
        if index == count { return result(.incomplete) }
        if bytes[index] == 13 {
            index += 1
            if index == count { return result(.incomplete) }
            return bytes[index] == 10 ? result(.done(end: index + 1)) : result(.malformed)
        }
        if bytes[index] == 32 || bytes[index] == 9 { return result(.malformed) }  // folded line
        while index < count, bytes[index] != 13 {
            trailerBytes += 1
            if !isText(bytes[index]) || trailerBytes > 16384 { return result(.malformed) }
            index += 1
        }
        if index == count { return result(.incomplete) }
        index += 1
        if index == count { return result(.incomplete) }
        if bytes[index] != 10 { return result(.malformed) }
        index += 1
    }
}
