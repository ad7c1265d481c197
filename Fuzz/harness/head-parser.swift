// Fuzz target head-parser: HeadParser (requests and responses), HeadWriter.upstreamRequest and
// RequestTarget. The input is the bytes a client (or a ship) sends, as is.
//
// Properties, beyond "no crash, no memory error":
// 1. Arrival does not matter: the head fed a byte at a time parses exactly as when it comes at once.
// 2. Round trip: a head that parses, written out again in canonical form (CRLF line ends, `name: value`),
//    parses to the same head (method, target, version, fields, framing, connection tokens...).
// 3. Forwarding: the head the relay sends to a ship (HeadWriter.upstreamRequest) parses, as one whole
//    head, to the same method, target and body framing, keeps the same Host and carries no
//    hop-by-hop field but an upgrade's; every field of it is one of the client's, in order, or one the
//    relay adds.
// 4. Framing: the body framing of a request that parses equals what a strict reference decides from
//    the raw header lines (RFC 9112 §6.1, §6.3, narrowed as the relay documents), and a head refused
//    for its framing is one the reference refuses too.
// 5. A normalised origin-form path normalises to itself.

import NIOCore
import NIOHTTP1

let generous = HeadParser.Limits(maxTargetBytes: 1 << 20, maxHeaderBytes: 1 << 20, maxFieldCount: 100_000)
let small = HeadParser.Limits(maxTargetBytes: 64, maxHeaderBytes: 512, maxFieldCount: 8)

func fuzz(_ input: [UInt8]) {
    let defaults = HeadParser.Limits(RelayLimits())
    for kind in [HeadParser.Kind.request, .response] {
        let whole = parse(input, kind: kind, limits: defaults)
        if input.count <= 4096 {
            let trickled = parse(input, kind: kind, limits: defaults, step: 1)
            require(
                sameArrival(whole, trickled),
                "byte-at-a-time differs: \(whole) vs \(trickled) for \(show(input))")
        }
        let split = parse(input, kind: kind, limits: small, step: max(1, input.count / 3))
        let smallWhole = parse(input, kind: kind, limits: small)
        require(
            sameArrival(split, smallWhole),
            "split parse differs: \(split) vs \(smallWhole) for \(show(input))")

        guard let head = whole.head else {
            if kind == .request, case .failure(.malformed(let reason)) = whole.result,
                framingReasons.contains(reason)
            {
                let start = input.firstIndex { $0 != 13 && $0 != 10 } ?? input.endIndex
                let reference = referenceFraming(Array(input[start...]))
                require(
                    reference == .refuse,
                    "refused for '\(reason)', reference says \(reference): \(show(input))")
            }
            continue
        }
        roundTrip(head, kind: kind)
        if kind == .request {
            forwarding(head)
            let reference = referenceFraming(
                head.bytes.getBytes(at: head.bytes.readerIndex, length: head.bytes.readableBytes)!)
            let framing = Framing(BodyFraming.request(head))
            require(framing == reference, "framing \(framing), reference \(reference): \(show(input))")
            targetNormalisation(head)
        }
    }
}

// MARK: Parsing and comparing

struct Parsed: Equatable {
    enum Result: Equatable {
        case incomplete
        case complete(Summary, consumed: Int)
        case failure(HeadParser.Failure)
    }
    var result: Result
    /// The head itself, when complete (not compared: `result` holds its meaning).
    var head: MessageHead? = nil

    static func == (lhs: Parsed, rhs: Parsed) -> Bool { lhs.result == rhs.result }
}

/// A head's parsed meaning as values (ranges resolved to bytes).
struct Summary: Equatable {
    var method: String
    var target: [UInt8]
    var minorVersion: Int
    var status: Int
    var statusText: [UInt8]
    var fields: [Field]
    var contentLength: Int?
    var chunked: Bool
    var hasTransferEncoding: Bool
    var connection: UInt8
    var hasUpgrade: Bool
    var upgradesToH2C: Bool
    var hostCount: Int
    var expectsContinue: Bool

    struct Field: Equatable {
        var name: [UInt8]
        var value: [UInt8]
        var kind: UInt8
        var isHopByHop: Bool
    }

    init(_ head: MessageHead) {
        let bytes = head.bytes.getBytes(at: head.bytes.readerIndex, length: head.bytes.readableBytes)!
        method = head.method.rawValue
        target = Array(bytes[head.target])
        minorVersion = head.minorVersion
        status = head.status
        statusText = Array(bytes[head.statusText])
        fields = head.fields.map {
            Field(
                name: Array(bytes[$0.name]), value: Array(bytes[$0.value]), kind: $0.kind.rawValue,
                isHopByHop: $0.isHopByHop)
        }
        contentLength = head.contentLength
        chunked = head.chunked
        hasTransferEncoding = head.hasTransferEncoding
        connection = head.connection.rawValue
        hasUpgrade = head.hasUpgrade
        upgradesToH2C = head.upgradesToH2C
        hostCount = head.hostCount
        expectsContinue = head.expectsContinue
    }
}

/// Whether two arrivals of the same bytes parsed alike. One exception, by design: a head still
/// incomplete past the limits is refused early (414/431, `HeadParser.overflow`, which bounds the raw
/// bytes), so a head that arrives in pieces may get that refusal where, arriving at once, it parses or
/// is refused for something else.
func sameArrival(_ one: Parsed, _ other: Parsed) -> Bool {
    if one == other { return true }
    func isLimit(_ parsed: Parsed) -> Bool {
        if case .failure(let failure) = parsed.result {
            return failure == .uriTooLong || failure == .headersTooLarge
        }
        return false
    }
    return isLimit(one) || isLimit(other)
}

/// Feeds `input` `step` bytes at a time (all at once without one) until a head completes or fails.
func parse(_ input: [UInt8], kind: HeadParser.Kind, limits: HeadParser.Limits, step: Int? = nil) -> Parsed {
    var buffer = ByteBuffer()
    var scanned = 0
    var offset = 0
    let step = step ?? max(1, input.count)
    repeat {
        let end = min(input.count, offset + step)
        buffer.writeBytes(input[offset..<end])
        offset = end
        switch HeadParser.next(from: &buffer, kind: kind, limits: limits, scanned: &scanned) {
        case .incomplete:
            continue
        case .complete(let head):
            // Bytes consumed from the input's start (leading blank lines included).
            return Parsed(result: .complete(Summary(head), consumed: buffer.readerIndex), head: head)
        case .failure(let failure):
            return Parsed(result: .failure(failure))
        }
    } while offset < input.count
    return Parsed(result: .incomplete)
}

func parseOne(_ bytes: [UInt8], kind: HeadParser.Kind) -> (MessageHead, consumed: Int)? {
    var buffer = ByteBuffer(bytes: bytes)
    var scanned = 0
    guard
        case .complete(let head) = HeadParser.next(
            from: &buffer, kind: kind, limits: generous, scanned: &scanned)
    else { return nil }
    return (head, buffer.readerIndex)
}

// MARK: 2. Round trip

func roundTrip(_ head: MessageHead, kind: HeadParser.Kind) {
    let bytes = head.bytes.getBytes(at: head.bytes.readerIndex, length: head.bytes.readableBytes)!
    var canonical: [UInt8] = []
    switch kind {
    case .request:
        canonical += bytes[0..<head.target.upperBound]
        canonical += Array(" HTTP/1.\(head.minorVersion)\r\n".utf8)
    case .response:
        canonical += Array("HTTP/1.\(head.minorVersion) ".utf8)
        canonical += bytes[head.statusText]
        canonical += [13, 10]
    }
    for field in head.fields {
        canonical += bytes[field.name]
        canonical += Array(": ".utf8)
        canonical += bytes[field.value]
        canonical += [13, 10]
    }
    canonical += [13, 10]
    guard let (again, consumed) = parseOne(canonical, kind: kind) else {
        require(false, "canonical head does not parse: \(show(canonical)) from \(show(bytes))")
        return
    }
    require(consumed == canonical.count, "canonical head parsed short: \(show(canonical))")
    require(
        Summary(again) == Summary(head),
        "canonical head parses differently: \(show(canonical)) from \(show(bytes))")
}

// MARK: 3. Forwarding

/// Fields the relay writes itself when it forwards a request.
let addedNames: Set<String> = [
    "connection", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
    "x-request-start",
]

func forwarding(_ head: MessageHead) {
    var out = ByteBuffer()
    let client = HeadWriter.Client(address: "203.0.113.7", scheme: "http")
    HeadWriter.upstreamRequest(
        head, target: nil, client: client, requestID: { $0.append("fuzz") }, startMicroseconds: 1, into: &out)
    let sent = out.getBytes(at: out.readerIndex, length: out.readableBytes)!
    let original = Summary(head)
    guard let (forwarded, consumed) = parseOne(sent, kind: .request) else {
        // An HTTP/1.0 request need not name a host; the ship is then sent HTTP/1.1 without one.
        require(
            original.hostCount == 0,
            "forwarded head does not parse: \(show(sent)) from \(show(original.target))")
        return
    }
    let again = Summary(forwarded)
    require(consumed == sent.count, "forwarded head parsed short: \(show(sent))")
    require(
        again.method == original.method && again.target == original.target,
        "method or target changed: \(show(sent))")
    require(again.minorVersion == 1, "forwarded as HTTP/1.\(again.minorVersion)")
    require(
        Framing(BodyFraming.request(forwarded)) == Framing(BodyFraming.request(head))
            && again.hasTransferEncoding == original.hasTransferEncoding,
        "framing changed on the way to the ship: \(show(sent))")
    require(forwarded.isUpgrade == head.isUpgrade, "upgrade changed: \(show(sent))")
    require(forwarded.value(of: .host) == head.value(of: .host), "Host changed: \(show(sent))")
    var next = original.fields.startIndex
    for field in again.fields {
        if let kind = FieldKind(rawValue: field.kind), kind.isHopByHop {
            require(kind == .upgrade || kind == .connection, "hop-by-hop field forwarded: \(show(sent))")
        }
        if let found = original.fields[next...].firstIndex(where: {
            $0.name == field.name && $0.value == field.value
        }) {
            next = found + 1
        } else {
            let name = String(decoding: field.name, as: UTF8.self).lowercased()
            require(
                addedNames.contains(name),
                "field \(show(field.name)) not the client's nor added: \(show(sent))")
        }
    }
}

// MARK: 4. Framing against a strict reference

enum Framing: Equatable {
    case refuse
    case none
    case length(Int)
    case chunked

    init(_ framing: BodyFraming) {
        switch framing {
        case .none: self = .none
        case .length(let count): self = .length(count)
        case .chunked: self = .chunked
        case .untilClose: self = .refuse  // never for a request
        }
    }
}

/// The parser's reasons for refusing a request's framing.
let framingReasons: Set<String> = [
    "invalid Content-Length", "conflicting Content-Length headers", "duplicate Content-Length",
    "Transfer-Encoding in an HTTP/1.0 request", "unsupported Transfer-Encoding",
    "both Content-Length and Transfer-Encoding",
]

/// RFC 9112 §6.3 for a request head (its bytes from the request line to the blank line), written
/// separately from the parser, line by line over plain arrays:
/// - Transfer-Encoding in HTTP/1.0: faulty framing (§6.1).
/// - Transfer-Encoding and Content-Length together: refused (§6.1 allows this for a server).
/// - Transfer-Encoding other than one `chunked`: refused (the relay understands no other coding and
///   passes chunked bodies on as they came; §6.1 lets a server refuse codings it does not understand).
/// - Content-Length: exactly one field, all digits (at most 18); otherwise refused (§6.3 item 5,
///   narrowed: a repeated field is refused even with equal values, as llhttp does).
/// - Otherwise: the length, or no body.
func referenceFraming(_ head: [UInt8]) -> Framing {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for byte in head {
        if byte == 10 {
            if current.last == 13 { current.removeLast() }
            lines.append(current)
            current = []
        } else {
            current.append(byte)
        }
    }
    guard let requestLine = lines.first, requestLine.count >= 8 else { return .refuse }
    let isHTTP10 = Array(requestLine.suffix(8)) == Array("HTTP/1.0".utf8)
    var transferEncodings: [[UInt8]] = []
    var contentLengths: [[UInt8]] = []
    for line in lines.dropFirst() {
        if line.isEmpty { break }
        guard let colon = line.firstIndex(of: 58) else { continue }
        let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
        var value = Array(line[(colon + 1)...])
        while let first = value.first, first == 32 || first == 9 { value.removeFirst() }
        while let last = value.last, last == 32 || last == 9 { value.removeLast() }
        if name == "transfer-encoding" { transferEncodings.append(value) }
        if name == "content-length" { contentLengths.append(value) }
    }
    if !transferEncodings.isEmpty {
        if isHTTP10 || !contentLengths.isEmpty || transferEncodings.count != 1 { return .refuse }
        let coding = String(decoding: transferEncodings[0], as: UTF8.self).lowercased()
        return coding == "chunked" ? .chunked : .refuse
    }
    guard let length = contentLengths.first else { return .none }
    guard contentLengths.count == 1, (1...18).contains(length.count),
        length.allSatisfy({ $0 >= 48 && $0 <= 57 })
    else { return .refuse }
    let value = length.reduce(0) { $0 * 10 + Int($1 - 48) }
    return value == 0 ? .none : .length(value)
}

// MARK: 5. Target normalisation

func targetNormalisation(_ head: MessageHead) {
    guard let target = try? RequestTarget.parse(head.targetString, method: head.method),
        target.path.utf8.first == 47  // '/'
    else { return }
    let path = String(target.path)
    guard let again = try? RequestTarget.parse(path, method: head.method) else {
        require(false, "normalised path \(path) is refused")
        return
    }
    require(again.path == target.path, "normalising \(path) again gives \(again.path)")
}
