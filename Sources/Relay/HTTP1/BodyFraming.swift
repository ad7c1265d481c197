import NIOCore

/// How a message body ends (RFC 9112 §6.3), and how much of it is still to come. The relay passes
/// bodies on as they arrived (a chunked body stays chunked), so it only tracks where each ends.
enum BodyFraming {
    /// No body (or its end was reached).
    case none
    /// This many bytes still to come.
    case length(Int)
    case chunked(ChunkedScanner)
    /// A response that ends when the ship closes its connection.
    case untilClose

    struct Malformed: Error {}

    /// The framing of a request body (a request without length or chunking has none).
    static func request(_ head: MessageHead) -> BodyFraming {
        if head.chunked { return .chunked(ChunkedScanner(strict: true)) }
        if let length = head.contentLength, length > 0 { return .length(length) }
        return .none
    }

    /// The framing of a response body, given whether it answers a HEAD request.
    static func response(_ head: MessageHead, answeringHEAD isHead: Bool) -> BodyFraming {
        if isHead || head.status == 204 || head.status == 304 || head.status < 200 { return .none }
        if head.chunked { return .chunked(ChunkedScanner()) }
        if let length = head.contentLength { return length > 0 ? .length(length) : .none }
        return .untilClose
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    /// Reads off `buffer` the bytes of this body that are there: nil when there are none. `ended`
    /// tells whether the body is complete (bytes after it belong to the next message).
    mutating func take(from buffer: inout ByteBuffer) throws(Malformed) -> (slice: ByteBuffer?, ended: Bool) {
        switch self {
        case .none:
            return (nil, true)
        case .length(let remaining):
            let count = min(remaining, buffer.readableBytes)
            let slice = count > 0 ? buffer.readSlice(length: count) : nil
            self = remaining == count ? .none : .length(remaining - count)
            return (slice, remaining == count)
        case .chunked(var scanner):
            let consumed = try buffer.withUnsafeReadableBytes { bytes throws(Malformed) in
                try scanner.scan(bytes)
            }
            let ended = scanner.isDone
            self = ended ? .none : .chunked(scanner)
            return (consumed > 0 ? buffer.readSlice(length: consumed) : nil, ended)
        case .untilClose:
            let slice = buffer.readableBytes > 0 ? buffer.readSlice(length: buffer.readableBytes) : nil
            return (slice, false)
        }
    }

    /// Like `take`, for a chunked body whose data goes on without the chunk framing (an HTTP/1.0
    /// client cannot read chunks): `data` receives each piece of chunk data.
    mutating func takeDechunked(from buffer: inout ByteBuffer, data: (ByteBuffer) -> Void) throws(Malformed)
        -> Bool
    {
        guard case .chunked(var scanner) = self else {
            let (slice, ended) = try take(from: &buffer)
            if let slice { data(slice) }
            return ended
        }
        var pieces: [Range<Int>] = []
        let consumed = try buffer.withUnsafeReadableBytes { bytes throws(Malformed) in
            try scanner.scan(bytes) { pieces.append($0) }
        }
        for piece in pieces {
            if let slice = buffer.getSlice(at: buffer.readerIndex + piece.lowerBound, length: piece.count) {
                data(slice)
            }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        let ended = scanner.isDone
        self = ended ? .none : .chunked(scanner)
        return ended
    }
}

/// Follows a chunked body (RFC 9112 §7.1) byte by byte through sizes, extensions and trailers, and
/// chunk data a chunk at a time, to find where it ends.
///
/// `strict` (requests): what llhttp refuses is refused here, so that the relay and any ship agree on
/// where the body ends: a line ending other than CRLF, a control byte in an extension or a trailer,
/// a folded trailer line, text between the size and its extension, an extension or a trailer section
/// over its limit. Responses come from the fleet's own ships and are scanned as leniently as before.
struct ChunkedScanner {
    private enum State {
        case size, sizeSpace, sizeExtension, sizeLF, data, dataCR, dataLF
        case trailerLineStart, trailerLine, trailerLF, finalLF, done
    }
    private var state = State.size
    private var size = 0
    private var digits = 0
    private var remaining = 0
    /// Bytes of the current extension, or of the trailer section (strict limits).
    private var extra = 0
    let strict: Bool

    static let maxExtensionBytes = 4 * 1024
    static let maxTrailerBytes = 16 * 1024

    init(strict: Bool = false) { self.strict = strict }

    var isDone: Bool { state == .done }

    /// Scans `bytes`; returns how many of them belong to the body (all, unless it ended among them).
    /// `data` receives the offsets of chunk data.
    mutating func scan(
        _ bytes: UnsafeRawBufferPointer, data: ((Range<Int>) -> Void)? = nil
    ) throws(BodyFraming.Malformed) -> Int {
        var index = 0
        let count = bytes.count
        while index < count {
            if state == .data {
                let take = min(remaining, count - index)
                data?(index..<index + take)
                remaining -= take
                index += take
                if remaining == 0 { state = .dataCR }
                continue
            }
            let byte = bytes[index]
            index += 1
            switch state {
            case .size:
                if let value = Self.hexValue(byte) {
                    guard digits < 15 else { throw BodyFraming.Malformed() }
                    size = size << 4 | value
                    digits += 1
                } else if digits == 0 {
                    throw BodyFraming.Malformed()
                } else if byte == 59 {  // ';'
                    startExtension()
                } else if byte == 32 || byte == 9 {  // SP, HT
                    state = strict ? .sizeSpace : .sizeExtension
                } else if byte == 13 {
                    state = .sizeLF
                } else if byte == 10 && !strict {
                    endOfSize()
                } else {
                    throw BodyFraming.Malformed()
                }
            case .sizeSpace:
                if byte == 59 {
                    startExtension()
                } else if byte == 13 {
                    state = .sizeLF
                } else if byte != 32 && byte != 9 {
                    throw BodyFraming.Malformed()
                }
            case .sizeExtension:
                if byte == 13 {
                    state = .sizeLF
                } else if byte == 10 {
                    guard !strict else { throw BodyFraming.Malformed() }
                    endOfSize()
                } else if strict {
                    extra += 1
                    guard Self.isText(byte), extra <= Self.maxExtensionBytes else {
                        throw BodyFraming.Malformed()
                    }
                }
            case .sizeLF:
                guard byte == 10 else { throw BodyFraming.Malformed() }
                endOfSize()
            case .dataCR:
                if byte == 13 {
                    state = .dataLF
                } else if byte == 10 && !strict {
                    state = .size
                } else {
                    throw BodyFraming.Malformed()
                }
            case .dataLF:
                guard byte == 10 else { throw BodyFraming.Malformed() }
                state = .size
            case .trailerLineStart:
                if byte == 13 {
                    state = .finalLF
                } else if byte == 10 {
                    guard !strict else { throw BodyFraming.Malformed() }
                    state = .done
                    return index
                } else {
                    if strict {
                        // No folded lines (RFC 9112 §5.2), no control bytes.
                        guard byte != 32 && byte != 9, Self.isText(byte) else {
                            throw BodyFraming.Malformed()
                        }
                        try countTrailerByte()
                    }
                    state = .trailerLine
                }
            case .trailerLine:
                if !strict {
                    if byte == 10 { state = .trailerLineStart }
                } else if byte == 13 {
                    state = .trailerLF
                } else {
                    guard Self.isText(byte) else { throw BodyFraming.Malformed() }
                    try countTrailerByte()
                }
            case .trailerLF:
                guard byte == 10 else { throw BodyFraming.Malformed() }
                state = .trailerLineStart
            case .finalLF:
                guard byte == 10 else { throw BodyFraming.Malformed() }
                state = .done
                return index
            case .done:
                return index - 1
            case .data:
                break
            }
        }
        return count
    }

    private mutating func startExtension() {
        state = .sizeExtension
        extra = 0
    }

    private mutating func countTrailerByte() throws(BodyFraming.Malformed) {
        extra += 1
        guard extra <= Self.maxTrailerBytes else { throw BodyFraming.Malformed() }
    }

    private mutating func endOfSize() {
        if size == 0 {
            state = .trailerLineStart
            extra = 0
        } else {
            remaining = size
            state = .data
        }
        size = 0
        digits = 0
    }

    /// Visible characters, spaces, tabs and bytes above 0x7F (obs-text in quoted strings).
    private static func isText(_ byte: UInt8) -> Bool {
        (byte >= 32 && byte != 127) || byte == 9
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: Int(byte - 48)
        case 65...70: Int(byte - 55)
        case 97...102: Int(byte - 87)
        default: nil
        }
    }
}
