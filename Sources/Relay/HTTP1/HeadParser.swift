import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// Finds and parses HTTP/1 heads in a connection's inbound bytes (RFC 9112 §2–§6). Strict where
/// leniency lets requests be smuggled (conflicting lengths, `Transfer-Encoding` with a length,
/// folded lines, space before the colon, control bytes), lenient where it costs nothing (bare LF
/// line ends, empty lines before a request).
enum HeadParser {
    enum Kind {
        case request
        case response
    }

    enum Failure: Error, Equatable {
        /// 400 (requests) or 502 (responses), with what was wrong.
        case malformed(String)
        /// 414: the request target is longer than the limit.
        case uriTooLong
        /// 431: the header block or the number of fields is over the limit.
        case headersTooLarge
    }

    enum Outcome {
        /// No complete head yet; `scanned` bytes need not be searched again.
        case incomplete
        case complete(MessageHead)
        case failure(Failure)
    }

    /// `Outcome` without the head, which `next(from:…into:)` leaves in the caller's variable.
    enum Status {
        case incomplete
        case complete
        case failure(Failure)
    }

    struct Limits {
        var maxTargetBytes: Int
        var maxHeaderBytes: Int
        var maxFieldCount: Int

        /// For responses from ships: generous, only a guard against a runaway head.
        static let response = Limits(maxTargetBytes: 0, maxHeaderBytes: 64 * 1024, maxFieldCount: 1000)

        /// The longest first line that can still carry a target within the limit.
        var maxFirstLineBytes: Int { maxTargetBytes + 64 }
    }

    /// Reads the next head off `buffer` once it holds all of it. `scanned` carries how far earlier
    /// calls searched for its end (so a head arriving a byte at a time costs linear time).
    static func next(
        from buffer: inout ByteBuffer, kind: Kind, limits: Limits, scanned: inout Int
    ) -> Outcome {
        var head = MessageHead(bytes: buffer)
        switch next(from: &buffer, kind: kind, limits: limits, scanned: &scanned, into: &head) {
        case .incomplete: return .incomplete
        case .complete: return .complete(head)
        case .failure(let failure): return .failure(failure)
        }
    }

    /// The same, parsing into `head`, whose field list's storage is reused (a connection keeps one
    /// head for all its messages: no allocation, and no copy of the head on its way out, in the
    /// usual case). `head` is changed only when a head is complete.
    static func next(
        from buffer: inout ByteBuffer, kind: Kind, limits: Limits, scanned: inout Int,
        into head: inout MessageHead
    ) -> Status {
        if scanned == 0 && kind == .request {
            // RFC 9112 §2.2: empty lines before a request line are ignored (a client's stray CRLF
            // after a body, for instance).
            while let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                byte == cr || byte == lf
            {
                buffer.moveReaderIndex(forwardBy: 1)
            }
        }
        let start = max(0, scanned - 3)
        let end = buffer.withUnsafeReadableBytes { findEnd(in: $0, from: start) }
        guard let end else {
            scanned = buffer.readableBytes
            if let failure = overflow(buffer, kind: kind, limits: limits) { return .failure(failure) }
            return .incomplete
        }
        scanned = 0
        var fields: [HeaderField] = []
        swap(&fields, &head.fields)
        fields.removeAll(keepingCapacity: true)
        head = MessageHead(bytes: buffer.getSlice(at: buffer.readerIndex, length: end)!)
        swap(&head.fields, &fields)  // moved, not copied: the list must stay uniquely referenced
        // Parsed from `buffer`, which holds the same bytes: reading them through `head.bytes` while
        // `head` changes would take a reference to its storage for the duration.
        let failure = buffer.withUnsafeReadableBytes { raw in
            var reader = Reader(bytes: UnsafeRawBufferPointer(rebasing: raw[..<end]), limits: limits)
            return reader.parse(into: &head, kind: kind)
        }
        buffer.moveReaderIndex(forwardBy: end)
        if let failure { return .failure(failure) }
        return .complete
    }

    /// The offset just past the blank line that ends a head, if `bytes` hold one.
    static func findEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let count = bytes.count
        var index = start
        while index < count {
            guard let found = memchrIndex(bytes, lf, from: index) else { return nil }
            let next = found + 1
            if next < count {
                if bytes[next] == lf { return next + 1 }
                if bytes[next] == cr {
                    if next + 1 < count {
                        if bytes[next + 1] == lf { return next + 2 }
                    } else {
                        return nil
                    }
                }
            }
            index = next
        }
        return nil
    }

    /// A head that cannot end within the limits: refused before it is all read.
    private static func overflow(_ buffer: ByteBuffer, kind: Kind, limits: Limits) -> Failure? {
        let count = buffer.readableBytes
        switch kind {
        case .request:
            if count > limits.maxFirstLineBytes {
                let firstLine = buffer.withUnsafeReadableBytes {
                    memchrIndex($0, lf, from: 0)
                }
                if firstLine == nil || firstLine! > limits.maxFirstLineBytes { return .uriTooLong }
            }
            if count > limits.maxFirstLineBytes + limits.maxHeaderBytes + 2 * limits.maxFieldCount {
                return .headersTooLarge
            }
        case .response:
            if count > limits.maxHeaderBytes + 8 * 1024 { return .malformed("response head too large") }
        }
        return nil
    }
}

extension HeadParser {
    /// Bit 7 set in each byte of `word` (little-endian: the first byte lowest) that is not an ASCII
    /// letter or `-`.
    @inline(__always)
    static func notLetterOrHyphen(_ word: UInt64) -> UInt64 {
        let high: UInt64 = 0x8080_8080_8080_8080
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        let lowered = (word | 0x2020_2020_2020_2020) & low7
        // 0x61 ('a') or more, and not 0x7B or more; no addition can carry out of its byte.
        let letter = (lowered &+ 0x1F1F_1F1F_1F1F_1F1F) & ~(lowered &+ 0x0505_0505_0505_0505) & ~word & high
        let differs = word ^ 0x2D2D_2D2D_2D2D_2D2D  // zero where the byte is '-'
        let hyphen = ~(((differs & low7) &+ low7) | differs | low7)
        return ~(letter | hyphen) & high
    }
}

private let cr: UInt8 = 13
private let lf: UInt8 = 10
private let space: UInt8 = 32
private let tab: UInt8 = 9

private func memchrIndex(_ bytes: UnsafeRawBufferPointer, _ byte: UInt8, from start: Int) -> Int? {
    guard start < bytes.count, let base = bytes.baseAddress else { return nil }
    guard let found = memchr(base + start, Int32(byte), bytes.count - start) else { return nil }
    return base.distance(to: UnsafeRawPointer(found))
}

/// The parsing proper, over the bytes of one complete head.
private struct Reader {
    let bytes: UnsafeRawBufferPointer
    let limits: HeadParser.Limits
    var position = 0

    init(bytes: UnsafeRawBufferPointer, limits: HeadParser.Limits) {
        self.bytes = bytes
        self.limits = limits
    }

    mutating func parse(into head: inout MessageHead, kind: HeadParser.Kind) -> HeadParser.Failure? {
        switch kind {
        case .request:
            if let failure = requestLine(into: &head) { return failure }
        case .response:
            if let failure = statusLine(into: &head) { return failure }
        }
        head.fieldsStart = position
        if let failure = fields(into: &head, kind: kind) { return failure }
        return nil
    }

    // MARK: First lines

    private mutating func requestLine(into head: inout MessageHead) -> HeadParser.Failure? {
        let methodEnd = tokenEnd(from: 0)
        guard methodEnd > 0, byte(methodEnd) == space else { return .malformed("invalid request line") }
        head.method = Self.method(bytes, 0..<methodEnd)
        let targetStart = methodEnd + 1
        var index = targetStart
        while index < bytes.count, bytes[index] > space, bytes[index] != 0x7F { index += 1 }
        guard index > targetStart, byte(index) == space else {
            return index - targetStart > limits.maxTargetBytes
                ? .uriTooLong : .malformed("invalid request target")
        }
        if index - targetStart > limits.maxTargetBytes { return .uriTooLong }
        head.target = targetStart..<index
        position = index + 1
        guard let minor = version() else { return .malformed("unsupported HTTP version") }
        head.minorVersion = minor
        guard lineEnd() else { return .malformed("invalid request line") }
        return nil
    }

    private mutating func statusLine(into head: inout MessageHead) -> HeadParser.Failure? {
        guard let minor = version(), byte(position) == space else { return .malformed("invalid status line") }
        head.minorVersion = minor
        position += 1
        let codeStart = position
        var code = 0
        for _ in 0..<3 {
            let digit = byte(position)
            guard digit >= 48 && digit <= 57 else { return .malformed("invalid status code") }
            code = code * 10 + Int(digit - 48)
            position += 1
        }
        head.status = code
        let current = byte(position)
        guard current == space || current == cr || current == lf else {
            return .malformed("invalid status code")
        }
        guard let lineFeed = memchrIndex(bytes, lf, from: position) else {
            return .malformed("invalid status line")
        }
        head.statusText =
            codeStart..<(lineFeed > position && bytes[lineFeed - 1] == cr ? lineFeed - 1 : lineFeed)
        position = lineFeed + 1
        return nil
    }

    /// `HTTP/1.0` or `HTTP/1.1` at `position`: the minor version.
    private mutating func version() -> Int? {
        let prefix: StaticString = "HTTP/1."
        guard position + 8 <= bytes.count,
            memcmp(bytes.baseAddress! + position, prefix.utf8Start, prefix.utf8CodeUnitCount) == 0
        else { return nil }
        let minor = bytes[position + 7]
        guard minor == 48 || minor == 49 else { return nil }
        position += 8
        return Int(minor - 48)
    }

    /// CRLF or LF at `position`.
    private mutating func lineEnd() -> Bool {
        if byte(position) == cr { position += 1 }
        guard byte(position) == lf else { return false }
        position += 1
        return true
    }

    // MARK: Header fields

    private mutating func fields(into head: inout MessageHead, kind: HeadParser.Kind) -> HeadParser.Failure? {
        // The head ends with its blank line (`findEnd`), so every scan below meets an LF (not a
        // token character, below 0x20) before the end: no bounds checks inside the loops.
        guard let base = bytes.baseAddress else { return .malformed("empty head") }
        var headerBytes = 0
        head.fields.reserveCapacity(12)
        while true {
            let lineStart = position
            let first = base.load(fromByteOffset: position, as: UInt8.self)
            if first == lf { break }
            if first == cr && byte(position + 1) == lf { break }
            if first == space || first == tab { return .malformed("folded header line") }
            var nameEnd = position
            // Names are mostly letters and hyphens: eight at a time, then byte by byte from the
            // first other byte (usually the colon).
            while nameEnd + 8 <= bytes.count {
                let others = HeadParser.notLetterOrHyphen(
                    base.loadUnaligned(fromByteOffset: nameEnd, as: UInt64.self))
                if others != 0 {
                    nameEnd += others.trailingZeroBitCount >> 3
                    break
                }
                nameEnd += 8
            }
            while Self.isToken(base.load(fromByteOffset: nameEnd, as: UInt8.self)) { nameEnd += 1 }
            guard nameEnd > position else { return .malformed("invalid header name") }
            let afterName = base.load(fromByteOffset: nameEnd, as: UInt8.self)
            guard afterName == 58 else {  // ':'
                return .malformed(
                    afterName == space ? "space before a header's colon" : "invalid header name")
            }
            var valueStart = nameEnd + 1
            var current = base.load(fromByteOffset: valueStart, as: UInt8.self)
            while current == space || current == tab {
                valueStart += 1
                current = base.load(fromByteOffset: valueStart, as: UInt8.self)
            }
            // One pass finds the line's end and checks the value: eight bytes at a time while none
            // is below 0x20 or 0x7F or above (SWAR), then byte by byte.
            var index = valueStart
            let high: UInt64 = 0x8080_8080_8080_8080
            while index + 8 <= bytes.count {
                let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                let belowSpace = (word &- 0x2020_2020_2020_2020) & ~word & high
                let delOrAbove = (word &+ 0x0101_0101_0101_0101) & high | word & high
                let special = belowSpace | delOrAbove
                if special != 0 {
                    // The lowest flag marks the first such byte exactly (a borrow or carry only
                    // ever reaches bytes after a flagged one).
                    index += special.trailingZeroBitCount >> 3
                    break
                }
                index += 8
            }
            var lineFeed: Int
            while true {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                if byte >= space {
                    if byte == 0x7F { return .malformed("control character in a header value") }
                } else if byte == lf {
                    lineFeed = index
                    break
                } else if byte == cr {
                    guard self.byte(index + 1) == lf else { return .malformed("bare CR in a header line") }
                    lineFeed = index + 1
                    break
                } else if byte != tab {
                    return .malformed("control character in a header value")
                }
                index += 1
            }
            let crlf = lineFeed > index
            var valueEnd = index
            while valueEnd > valueStart {
                let last = base.load(fromByteOffset: valueEnd - 1, as: UInt8.self)
                guard last == space || last == tab else { break }
                valueEnd -= 1
            }
            position = lineFeed + 1
            if !crlf { head.bareLineFeeds = true }
            headerBytes += (nameEnd - lineStart) + (valueEnd - valueStart) + 4
            if headerBytes > limits.maxHeaderBytes || head.fields.count >= limits.maxFieldCount {
                return .headersTooLarge
            }
            let kindOfField = Self.fieldKind(bytes, lineStart..<nameEnd)
            let field = HeaderField(
                line: lineStart..<position, name: lineStart..<nameEnd, value: valueStart..<valueEnd,
                kind: kindOfField, isHopByHop: kindOfField.isHopByHop)
            if kindOfField != .other, let failure = note(field, in: &head, kind: kind) { return failure }
            head.fields.append(field)
        }
        if head.connection.contains(.names) { markNamedFields(in: &head) }
        if kind == .request {
            if head.hasTransferEncoding {
                // RFC 9112 §6.1: framing a server cannot trust; exactly `chunked`, once, or nothing.
                guard head.minorVersion == 1 else {
                    return .malformed("Transfer-Encoding in an HTTP/1.0 request")
                }
                guard head.chunked else { return .malformed("unsupported Transfer-Encoding") }
                guard head.contentLength == nil else {
                    return .malformed("both Content-Length and Transfer-Encoding")
                }
            }
            // RFC 9112 §3.2: HTTP/1.1 names exactly one host; no version names two.
            if head.hostCount > 1 { return .malformed("more than one Host header") }
            if head.hostCount == 0 && head.minorVersion == 1 { return .malformed("missing Host header") }
        }
        if kind == .response && head.hasTransferEncoding && head.contentLength != nil {
            // The transfer coding frames the body (RFC 9112 §6.3); the length is dropped, not passed on.
            head.contentLength = nil
            for index in head.fields.indices where head.fields[index].kind == .contentLength {
                head.fields[index].isHopByHop = true
            }
        }
        return nil
    }

    /// Takes in what the relay needs to know from one field.
    private func note(_ field: HeaderField, in head: inout MessageHead, kind: HeadParser.Kind) -> HeadParser
        .Failure?
    {
        switch field.kind {
        case .contentLength:
            guard let length = Self.decimal(bytes, field.value) else {
                return .malformed("invalid Content-Length")
            }
            if let existing = head.contentLength {
                if existing != length { return .malformed("conflicting Content-Length headers") }
                // A request says its length once (llhttp refuses a repeat); a response may repeat it.
                if kind == .request { return .malformed("duplicate Content-Length") }
            }
            head.contentLength = length
        case .transferEncoding:
            if kind == .request {
                // Exactly one `chunked` over all the fields (the relay passes the body on as it came).
                head.chunked =
                    !head.hasTransferEncoding
                    && Self.equals(bytes, Self.trimmed(field.value, in: bytes), "chunked")
            } else {
                head.chunked = Self.lastElementIsChunked(bytes, field.value)
            }
            head.hasTransferEncoding = true
        case .host:
            if kind == .request {
                head.hostCount += 1
                guard HostValue.isValid(UnsafeRawBufferPointer(rebasing: bytes[field.value])) else {
                    return .malformed("invalid Host header")
                }
            }
        case .connection:
            forEachToken(in: field.value) { token in
                if Self.equals(bytes, token, "close") {
                    head.connection.insert(.close)
                } else if Self.equals(bytes, token, "keep-alive") {
                    head.connection.insert(.keepAlive)
                } else if Self.equals(bytes, token, "upgrade") {
                    head.connection.insert(.upgrade)
                } else {
                    head.connection.insert(.names)
                }
            }
        case .upgrade:
            // `h2c` is not passed on (HTTP/2 over cleartext to a ship that may not speak it): the
            // request goes as a plain one, without its `Upgrade` and `HTTP2-Settings`.
            var h2c = false
            forEachToken(in: field.value) { token in
                if Self.equals(bytes, token, "h2c") { h2c = true }
            }
            if h2c { head.upgradesToH2C = true }
            head.hasUpgrade = true
        case .expect:
            if kind == .request && Self.equals(bytes, field.value, "100-continue") {
                head.expectsContinue = true
            }
        default:
            break
        }
        return nil
    }

    /// Fields named by a `Connection` token other than close/keep-alive/upgrade describe this hop too,
    /// except the ones that frame the message or name its host: a `Connection` header never changes
    /// where a message ends (RFC 9112 §6, request smuggling).
    private func markNamedFields(in head: inout MessageHead) {
        var named: [Range<Int>] = []
        for field in head.fields where field.kind == .connection {
            forEachToken(in: field.value) { token in
                if !Self.equals(bytes, token, "close") && !Self.equals(bytes, token, "keep-alive")
                    && !Self.equals(bytes, token, "upgrade")
                {
                    named.append(token)
                }
            }
        }
        for index in head.fields.indices {
            switch head.fields[index].kind {
            case .contentLength, .transferEncoding, .host: continue
            default: break
            }
            let name = head.fields[index].name
            if named.contains(where: { Self.equalsIgnoringCase(bytes, $0, name) }) {
                head.fields[index].isHopByHop = true
            }
        }
    }

    private func forEachToken(in range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var index = range.lowerBound
        while index < range.upperBound {
            var end = index
            while end < range.upperBound, bytes[end] != 44 { end += 1 }  // ','
            var start = index
            var stop = end
            while start < stop, bytes[start] == space || bytes[start] == tab { start += 1 }
            while stop > start, bytes[stop - 1] == space || bytes[stop - 1] == tab { stop -= 1 }
            if stop > start { body(start..<stop) }
            index = end + 1
        }
    }

    // MARK: Bytes

    private func byte(_ index: Int) -> UInt8 { index < bytes.count ? bytes[index] : 0 }

    /// The end of a run of token characters (RFC 9110 §5.6.2) starting at `start`.
    private func tokenEnd(from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return start }
        let count = bytes.count
        var index = start
        while index < count, Self.isToken(base.load(fromByteOffset: index, as: UInt8.self)) { index += 1 }
        return index
    }

    /// Token characters (RFC 9110 §5.6.2: digits, letters and !#$%&'*+-.^_`|~) as a bitmap over
    /// bytes 0–63 and 64–127.
    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        let map: UInt64 = byte < 64 ? 0x03FF_6CFA_0000_0000 : 0x57FF_FFFF_C7FF_FFFE
        return byte < 128 && map >> UInt64(byte & 63) & 1 == 1
    }

    /// ASCII case-insensitive comparison of `range` with a literal of lower-case letters, digits
    /// and `-`, eight bytes at a time (setting bit 5 lower-cases letters and changes none of the
    /// literal's other characters, and no other token byte becomes one of them).
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool
    {
        let count = literal.utf8CodeUnitCount
        guard range.count == count else { return false }
        let input = bytes.baseAddress! + range.lowerBound
        let expected = UnsafeRawPointer(literal.utf8Start)
        var offset = 0
        while offset + 8 <= count {
            let word = input.loadUnaligned(fromByteOffset: offset, as: UInt64.self) | 0x2020_2020_2020_2020
            if word != expected.loadUnaligned(fromByteOffset: offset, as: UInt64.self) { return false }
            offset += 8
        }
        while offset < count {
            if input.load(fromByteOffset: offset, as: UInt8.self) | 0x20
                != expected.load(fromByteOffset: offset, as: UInt8.self)
            {
                return false
            }
            offset += 1
        }
        return true
    }

    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ first: Range<Int>, _ second: Range<Int>)
        -> Bool
    {
        guard first.count == second.count else { return false }
        for offset in 0..<first.count {
            let one = bytes[first.lowerBound + offset]
            let other = bytes[second.lowerBound + offset]
            if lower(one) != lower(other) { return false }
        }
        return true
    }

    private static func lower(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var value = 0
        for index in range {
            let byte = bytes[index]
            guard byte >= 48 && byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }

    /// Whether the last element of a comma-separated list is `chunked` (a response's framing).
    private static func lastElementIsChunked(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var start = range.upperBound
        while start > range.lowerBound, bytes[start - 1] != 44 { start -= 1 }  // ','
        return equals(bytes, trimmed(start..<range.upperBound, in: bytes), "chunked")
    }

    /// `range` without the spaces and tabs around it.
    private static func trimmed(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Range<Int> {
        var start = range.lowerBound
        var end = range.upperBound
        while start < end, bytes[start] == space || bytes[start] == tab { start += 1 }
        while end > start, bytes[end - 1] == space || bytes[end - 1] == tab { end -= 1 }
        return start..<end
    }

    static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        func isExactly(_ literal: StaticString) -> Bool {
            guard range.count == literal.utf8CodeUnitCount else { return false }
            return memcmp(bytes.baseAddress! + range.lowerBound, literal.utf8Start, range.count) == 0
        }
        switch range.count {
        case 3:
            if isExactly("GET") { return .GET }
            if isExactly("PUT") { return .PUT }
        case 4:
            if isExactly("POST") { return .POST }
            if isExactly("HEAD") { return .HEAD }
        case 5:
            if isExactly("PATCH") { return .PATCH }
            if isExactly("TRACE") { return .TRACE }
        case 6:
            if isExactly("DELETE") { return .DELETE }
        case 7:
            if isExactly("OPTIONS") { return .OPTIONS }
            if isExactly("CONNECT") { return .CONNECT }
        default:
            break
        }
        return HTTPMethod(
            rawValue: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
    }

    static func fieldKind(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> FieldKind {
        // Every name below starts with one of these letters; most headers (Accept, Date, Server,
        // Content-Type, Cookie…) are told apart by length or first letter without a comparison.
        switch bytes[name.lowerBound] | 0x20 {
        case UInt8(ascii: "c"), UInt8(ascii: "e"), UInt8(ascii: "h"), UInt8(ascii: "k"), UInt8(ascii: "p"),
            UInt8(ascii: "t"), UInt8(ascii: "u"), UInt8(ascii: "x"):
            break
        default:
            return .other
        }
        switch name.count {
        case 2: if equals(bytes, name, "te") { return .te }
        case 4: if equals(bytes, name, "host") { return .host }
        case 6: if equals(bytes, name, "expect") { return .expect }
        case 7:
            if equals(bytes, name, "upgrade") { return .upgrade }
            if equals(bytes, name, "trailer") { return .trailer }
        case 10:
            if equals(bytes, name, "connection") { return .connection }
            if equals(bytes, name, "user-agent") { return .userAgent }
            if equals(bytes, name, "keep-alive") { return .keepAlive }
        case 12: if equals(bytes, name, "x-request-id") { return .xRequestID }
        case 14:
            if equals(bytes, name, "content-length") { return .contentLength }
            if equals(bytes, name, "http2-settings") { return .http2Settings }
        case 15:
            if equals(bytes, name, "x-forwarded-for") { return .xForwardedFor }
            if equals(bytes, name, "x-request-start") { return .xRequestStart }
        case 16:
            if equals(bytes, name, "x-forwarded-host") { return .xForwardedHost }
            if equals(bytes, name, "proxy-connection") { return .proxyConnection }
        case 17:
            if equals(bytes, name, "transfer-encoding") { return .transferEncoding }
            if equals(bytes, name, "x-forwarded-proto") { return .xForwardedProto }
        case 18: if equals(bytes, name, "proxy-authenticate") { return .proxyAuthenticate }
        case 19: if equals(bytes, name, "proxy-authorization") { return .proxyAuthorization }
        default: break
        }
        return .other
    }
}

extension HeadParser.Limits {
    /// A listener's limits for request heads (SPEC §4).
    init(_ limits: RelayLimits) {
        self.init(
            maxTargetBytes: limits.maxRequestLineBytes, maxHeaderBytes: limits.maxHeaderBytes,
            maxFieldCount: limits.maxHeaderCount)
    }
}
