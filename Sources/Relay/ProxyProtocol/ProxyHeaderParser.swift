import NIOCore

/// Decides whether the first bytes of a connection are a PROXY protocol header (v1 text or v2 binary,
/// as in HAProxy's `proxy-protocol.txt`), plain traffic without one, or not yet enough to tell.
///
/// Pure: it reads the buffer's readable bytes and never consumes them, so the caller can keep
/// accumulating and ask again. A header reports how many bytes it took; the caller drops exactly
/// those and forwards the rest. Both versions are bounded (v1 to 107 bytes, v2 to
/// `maximumV2Length`), so a caller that asks after every read buffers at most that much.
package enum ProxyHeaderParser {
    package enum Result: Equatable, Sendable {
        /// The bytes so far are a prefix of a v1 or v2 signature, or of a header not yet complete.
        case needMoreData
        /// The connection does not start with a PROXY header (plain HTTP or TLS).
        case absent
        /// A complete, valid header that took the first `length` bytes.
        case header(ProxyHeader, length: Int)
        /// A header that is malformed, oversize or unsupported; the reason is for logs.
        case invalid(String)
    }

    /// The longest v1 line the protocol allows, `\r\n` included.
    package static let maximumV1Length = 107
    /// The longest v2 header accepted: the 16-byte fixed part plus up to 4 KiB of addresses and TLVs.
    /// The format allows 64 KiB, but the TLVs real proxies send (AWS, GCP, Azure link ids, TLS info)
    /// are a few hundred bytes, and a larger header is more likely an attack than a proxy.
    package static let maximumV2Length = 16 + 4096

    static let v1Prefix: [UInt8] = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ]

    /// Classifies the readable bytes of `buffer` without moving its reader index.
    package static func parse(_ buffer: ByteBuffer) -> Result {
        let bytes = buffer.readableBytesView
        switch match(bytes, against: v1Prefix) {
        case .full: return parseV1(bytes)
        case .partial: return .needMoreData
        case .mismatch: break
        }
        switch match(bytes, against: v2Signature) {
        case .full: return parseV2(buffer)
        case .partial: return .needMoreData
        case .mismatch: return .absent
        }
    }

    private enum PrefixMatch { case mismatch, partial, full }

    private static func match(_ bytes: ByteBufferView, against signature: [UInt8]) -> PrefixMatch {
        for (byte, expected) in zip(bytes, signature) where byte != expected { return .mismatch }
        return bytes.count >= signature.count ? .full : .partial
    }
}

// MARK: - v1

extension ProxyHeaderParser {
    private static let carriageReturn = UInt8(ascii: "\r")
    private static let lineFeed = UInt8(ascii: "\n")

    /// Finds the `\r\n` that ends a v1 line within 107 bytes, rejecting any byte that cannot appear
    /// in one as soon as it arrives (so garbage is refused before the line is complete).
    private static func parseV1(_ bytes: ByteBufferView) -> Result {
        let start = bytes.startIndex
        for offset in v1Prefix.count..<min(bytes.count, maximumV1Length) {
            let byte = bytes[start + offset]
            if byte == carriageReturn {
                guard offset + 2 <= maximumV1Length else {
                    return .invalid("v1 header longer than 107 bytes")
                }
                guard offset + 1 < bytes.count else { return .needMoreData }
                guard bytes[start + offset + 1] == lineFeed else {
                    return .invalid("v1 header has a carriage return without a line feed")
                }
                let line = String(decoding: bytes[start..<(start + offset)], as: UTF8.self)
                return parseV1Line(line, length: offset + 2)
            }
            guard byte >= 0x20, byte <= 0x7E else {
                return .invalid("v1 header contains a non-printable byte")
            }
        }
        return bytes.count >= maximumV1Length ? .invalid("v1 header longer than 107 bytes") : .needMoreData
    }

    /// `PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>` or
    /// `PROXY UNKNOWN[ anything]`, single spaces, nothing else.
    private static func parseV1Line(_ line: String, length: Int) -> Result {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        let isV6: Bool
        switch fields[1] {
        case "UNKNOWN": return .header(ProxyHeader(source: nil, destination: nil, version: 1), length: length)
        case "TCP4": isV6 = false
        case "TCP6": isV6 = true
        default: return .invalid("v1 header names an unknown protocol")
        }
        guard fields.count == 6 else {
            return .invalid("v1 header needs exactly a source, a destination and two ports")
        }
        guard let sourcePort = v1Port(fields[4]), let destinationPort = v1Port(fields[5]) else {
            return .invalid("v1 header has a malformed port")
        }
        guard let source = v1Address(fields[2], port: sourcePort, isV6: isV6),
            let destination = v1Address(fields[3], port: destinationPort, isV6: isV6)
        else {
            return .invalid("v1 header has a malformed \(isV6 ? "IPv6" : "IPv4") address")
        }
        return .header(ProxyHeader(source: source, destination: destination, version: 1), length: length)
    }

    /// A decimal port 0...65535 without sign or leading zeros.
    private static func v1Port(_ text: Substring) -> Int? {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            text.utf8.count == 1 || text.utf8.first != UInt8(ascii: "0"), let port = Int(text), port <= 65535
        else { return nil }
        return port
    }

    /// An address of the family the protocol field named, in the form `inet_pton` accepts (it refuses
    /// leading zeros in IPv4). Zone ids (`%eth0`) are refused: they mean nothing off the proxy's host.
    private static func v1Address(_ text: Substring, port: Int, isV6: Bool) -> SocketAddress? {
        guard !text.isEmpty, text.utf8.allSatisfy({ isAddressByte($0, isV6: isV6) }),
            let address = try? SocketAddress(ipAddress: String(text), port: port)
        else { return nil }
        switch address {
        case .v4: return isV6 ? nil : address
        case .v6: return isV6 ? address : nil
        case .unixDomainSocket: return nil
        }
    }

    /// Digits and dots for IPv4; hex digits, colons and dots (an embedded IPv4 tail) for IPv6.
    private static func isAddressByte(_ byte: UInt8, isV6: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."): true
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: ":"):
            isV6
        default: false
        }
    }
}

// MARK: - v2

extension ProxyHeaderParser {
    private static let fixedV2Length = 16

    /// The 16-byte fixed part (signature, version and command, family and transport, length), then
    /// the address block and TLVs, which are skipped. Everything that can be checked is checked
    /// before waiting for the rest, so a bad header is refused as early as possible.
    private static func parseV2(_ buffer: ByteBuffer) -> Result {
        guard buffer.readableBytes >= fixedV2Length else { return .needMoreData }
        let start = buffer.readerIndex
        let versionAndCommand = buffer.getInteger(at: start + 12, as: UInt8.self)!
        let family = buffer.getInteger(at: start + 13, as: UInt8.self)!
        let length = fixedV2Length + Int(buffer.getInteger(at: start + 14, as: UInt16.self)!)
        guard versionAndCommand >> 4 == 2 else { return .invalid("v2 header has an unsupported version") }
        let isLocal: Bool
        switch versionAndCommand & 0x0F {
        case 0x0: isLocal = true
        case 0x1: isLocal = false
        default: return .invalid("v2 header has an unknown command")
        }
        guard length <= maximumV2Length else {
            return .invalid("v2 header longer than \(maximumV2Length) bytes")
        }
        // LOCAL (a proxy's own health check) ignores the family and any address block.
        let blockLength = isLocal ? 0 : v2AddressBlockLength(family: family)
        guard let blockLength else { return .invalid("v2 header has an unknown or datagram address family") }
        guard length - fixedV2Length >= blockLength else {
            return .invalid("v2 header is too short for its address family")
        }
        guard buffer.readableBytes >= length else { return .needMoreData }
        guard !isLocal, family == 0x11 || family == 0x21 else {
            return .header(ProxyHeader(source: nil, destination: nil, version: 2), length: length)
        }
        return .header(v2Addresses(buffer, at: start + fixedV2Length, isV6: family == 0x21), length: length)
    }

    /// How many bytes the addresses of `family` take, or nil for a family a TCP listener refuses:
    /// an unknown value (the protocol says to drop those) or a datagram transport.
    private static func v2AddressBlockLength(family: UInt8) -> Int? {
        switch family {
        case 0x00: 0  // AF_UNSPEC: no addresses, use the connection's own
        case 0x11: 12  // TCP over IPv4: 4 + 4 + 2 + 2
        case 0x21: 36  // TCP over IPv6: 16 + 16 + 2 + 2
        case 0x31: 216  // stream over AF_UNIX: two 108-byte paths, no IP to report
        default: nil
        }
    }

    private static func v2Addresses(_ buffer: ByteBuffer, at offset: Int, isV6: Bool) -> ProxyHeader {
        let size = isV6 ? 16 : 4
        let sourcePort = Int(buffer.getInteger(at: offset + 2 * size, as: UInt16.self)!)
        let destinationPort = Int(buffer.getInteger(at: offset + 2 * size + 2, as: UInt16.self)!)
        // Cannot throw: each slice is exactly 4 or 16 bytes.
        let source = try! SocketAddress(
            packedIPAddress: buffer.getSlice(at: offset, length: size)!, port: sourcePort)
        let destination = try! SocketAddress(
            packedIPAddress: buffer.getSlice(at: offset + size, length: size)!, port: destinationPort)
        return ProxyHeader(source: source, destination: destination, version: 2)
    }
}
