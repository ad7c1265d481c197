// Fuzz target proxy-protocol: ProxyHeaderParser (PROXY protocol v1 text and v2 binary). The input
// is the first bytes of a connection.
//
// Properties, beyond "no crash, no memory error":
// 1. A decision is final: once a prefix of the input is decided (a header, absent, invalid), every
//    longer prefix is decided the same, a header with the same addresses and length; before that, the
//    parser asks for more. So a header arriving a byte at a time is read as when it comes at once.
// 2. Bounds: a v1 header takes at most 107 bytes, a v2 header at most 16 + 4096; never more than given.
// 3. Round trip: a header with addresses, written out again as v1 text and as v2 binary (by an encoder in
//    this harness), parses to the same addresses in both versions.

import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

func fuzz(_ input: [UInt8]) {
    let full = parse(input[...])
    if case .header(let header, let length) = full {
        require(length <= input.count, "header length \(length) over the \(input.count) bytes given")
        require(
            length
                <= (header.version == 1
                    ? ProxyHeaderParser.maximumV1Length : ProxyHeaderParser.maximumV2Length),
            "v\(header.version) header of \(length) bytes")
        roundTrip(header)
    }
    // Every prefix up to the point of decision (bounded: a decision comes within 16 + 4096 bytes).
    var decided: (ProxyHeaderParser.Result, at: Int)? = nil
    for end in 0...min(input.count, 600) {
        let result = parse(input[..<end])
        if let (decision, at) = decided {
            require(
                result == decision,
                "decided \(decision) at \(at) bytes, then \(result) at \(end): \(show(input))")
        } else if result != .needMoreData {
            decided = (result, end)
            if case .header(_, let length) = result {
                require(length == end, "a header of \(length) bytes decided only at \(end)")
            }
        }
    }
    if let (decision, _) = decided {
        require(full == decision, "decided \(decision) on a prefix, \(full) on the whole: \(show(input))")
    }
}

func parse(_ bytes: ArraySlice<UInt8>) -> ProxyHeaderParser.Result {
    // Behind a reader index that is not zero, as in a connection's buffer.
    var buffer = ByteBuffer(bytes: [0x47, 0x45])
    buffer.writeBytes(bytes)
    buffer.moveReaderIndex(forwardBy: 2)
    return ProxyHeaderParser.parse(buffer)
}

func roundTrip(_ header: ProxyHeader) {
    guard let source = header.source, let destination = header.destination,
        let sourceText = source.ipAddress, let destinationText = destination.ipAddress,
        let sourcePort = source.port, let destinationPort = destination.port
    else {
        require(header.source == nil && header.destination == nil, "a header with one address: \(header)")
        return
    }
    let isV6: Bool
    switch (source, destination) {
    case (.v4, .v4): isV6 = false
    case (.v6, .v6): isV6 = true
    default:
        require(false, "source and destination of different families: \(header)")
        return
    }
    let v1 = Array(
        "PROXY \(isV6 ? "TCP6" : "TCP4") \(sourceText) \(destinationText) \(sourcePort) \(destinationPort)\r\n"
            .utf8)
    guard case .header(let fromV1, let v1Length) = parse(v1[...]) else {
        require(false, "v1 text of \(header) does not parse: \(show(v1))")
        return
    }
    require(
        v1Length == v1.count && fromV1.source == source && fromV1.destination == destination,
        "v1 text of \(header) parses as \(fromV1)")

    var v2 = ProxyHeaderParser.v2Signature + [0x21, isV6 ? 0x21 : 0x11, 0, isV6 ? 36 : 12]
    v2 += packed(sourceText, isV6: isV6) + packed(destinationText, isV6: isV6)
    v2 += [
        UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8),
        UInt8(destinationPort & 0xFF),
    ]
    guard case .header(let fromV2, let v2Length) = parse(v2[...]) else {
        require(false, "v2 binary of \(header) does not parse: \(show(v2))")
        return
    }
    require(
        v2Length == v2.count && fromV2.source == source && fromV2.destination == destination,
        "v2 binary of \(header) parses as \(fromV2)")
}

/// An address in network byte order, by inet_pton.
func packed(_ text: String, isV6: Bool) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: isV6 ? 16 : 4)
    let status = bytes.withUnsafeMutableBytes { inet_pton(isV6 ? AF_INET6 : AF_INET, text, $0.baseAddress) }
    require(status == 1, "inet_pton refuses \(text)")
    return bytes
}
