import NIOCore
import NIOEmbedded
import Relay
import ShipManifest
import Testing

// MARK: - Fixtures

private let request = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"
private let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

private func address(_ ip: String, _ port: Int) -> SocketAddress {
    try! SocketAddress(ipAddress: ip, port: port)
}

/// A v2 header from its parts; `length` overrides the length field (to build lying headers).
private func proxyV2(
    version: UInt8 = 2, command: UInt8 = 1, family: UInt8, block: [UInt8] = [], tlvs: [UInt8] = [],
    length: Int? = nil
) -> [UInt8] {
    let length = length ?? block.count + tlvs.count
    return v2Signature + [version << 4 | command, family, UInt8(length >> 8), UInt8(length & 0xFF)] + block
        + tlvs
}

private func bigEndian(_ port: UInt16) -> [UInt8] { [UInt8(port >> 8), UInt8(port & 0xFF)] }

/// The address block of a TCP-over-IPv4 (4-byte addresses) or IPv6 (16-byte) v2 header.
private func addressBlock(
    _ source: [UInt8], _ destination: [UInt8], _ sourcePort: UInt16, _ destinationPort: UInt16
)
    -> [UInt8]
{
    source + destination + bigEndian(sourcePort) + bigEndian(destinationPort)
}

private let anyIPv4Block = addressBlock([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)
private let ipv6Source: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [0x01]
private let ipv6Destination: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [0x02]

/// An AWS-style TLV (type 0xEA, a VPC endpoint id) followed by a NOOP TLV (type 0x04) as padding.
private let sampleTLVs: [UInt8] =
    [0xEA, 0x00, 0x0E, 0x01] + Array("vpce-0123abcd".utf8) + [0x04, 0x00, 0x03, 0x00, 0x00, 0x00]

/// Records the `ClientAddressEvent`s that reach the handler after `ProxyProtocolHandler`.
private final class ClientAddressRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var addresses: [SocketAddress] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ClientAddressEvent { addresses.append(event.address) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// An `EmbeddedChannel` connected from `peer`, with the handler under test and a recorder behind it.
private struct Connection {
    let channel: EmbeddedChannel
    let recorder = ClientAddressRecorder()

    init(peer: SocketAddress = address("10.0.0.5", 40_000), trusted: [String]? = nil) throws {
        let ranges = trusted.map { $0.map { CIDRRange(parsing: $0)! } }
        channel = EmbeddedChannel(handlers: [ProxyProtocolHandler(trustedProxies: ranges), recorder])
        channel.connect(to: peer, promise: nil)
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Sends `bytes` one read per byte, as a slow or hostile client would.
    func sendByteByByte(_ bytes: [UInt8]) throws {
        for byte in bytes { try send([byte]) }
    }

    /// Everything forwarded past the handler so far, each read as a string, in order.
    func forwardedReads() throws -> [String] {
        var reads: [String] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) {
            reads.append(String(buffer: buffer))
        }
        return reads
    }

    func forwarded() throws -> String { try forwardedReads().joined() }

    var handlerIsInPipeline: Bool {
        (try? channel.pipeline.syncOperations.handler(type: ProxyProtocolHandler.self)) != nil
    }

    var isOpen: Bool { channel.isActive }

    func finish() { _ = try? channel.finish(acceptAlreadyClosed: true) }
}

// MARK: - Parser

@Suite("PROXY header parser")
struct ProxyHeaderParserTests {
    private func parse(_ bytes: [UInt8]) -> ProxyHeaderParser.Result {
        ProxyHeaderParser.parse(ByteBuffer(bytes: bytes))
    }

    private func parse(_ text: String) -> ProxyHeaderParser.Result { parse(Array(text.utf8)) }

    private func isInvalid(_ result: ProxyHeaderParser.Result) -> Bool {
        if case .invalid = result { return true }
        return false
    }

    @Test(arguments: ["", "P", "PROX", "PROXY"])
    func prefixOfV1SignatureNeedsMoreData(text: String) {
        #expect(parse(text) == .needMoreData)
    }

    @Test(arguments: 1...11)
    func prefixOfV2SignatureNeedsMoreData(count: Int) {
        #expect(parse(Array(v2Signature.prefix(count))) == .needMoreData)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n", "POST /", "PUT /x", "PROPFIND / HTTP/1.1", "PROXYX", "\r\nGET", "G",
    ])
    func plainRequestIsAbsent(text: String) {
        #expect(parse(text) == .absent)
    }

    @Test func tlsClientHelloIsAbsent() {
        #expect(parse([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]) == .absent)
    }

    @Test func v1TCP4HeaderGivesAddressesAndLength() {
        let line = "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
        let expected = ProxyHeader(
            source: address("192.0.2.10", 56324), destination: address("198.51.100.1", 443), version: 1)
        #expect(parse(line + request) == .header(expected, length: line.utf8.count))
    }

    @Test func v1TCP6HeaderGivesAddressesAndLength() {
        let line = "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n"
        let expected = ProxyHeader(
            source: address("2001:db8::1", 0), destination: address("2001:db8::2", 65535), version: 1)
        #expect(parse(line) == .header(expected, length: line.utf8.count))
    }

    @Test(arguments: [
        "PROXY UNKNOWN\r\n", "PROXY UNKNOWN 2001:db8::1 2001:db8::2 1 2\r\n", "PROXY UNKNOWN junk\r\n",
    ])
    func v1UnknownHeaderHasNoAddresses(line: String) {
        #expect(
            parse(line)
                == .header(ProxyHeader(source: nil, destination: nil, version: 1), length: line.utf8.count))
    }

    @Test func v1LineOfExactly107BytesIsAccepted() {
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        let line = "PROXY UNKNOWN \(full) \(full) 65535 65535\r\n"
        #expect(line.utf8.count == 107)
        #expect(parse(line) == .header(ProxyHeader(source: nil, destination: nil, version: 1), length: 107))
    }

    @Test func v1LineLongerThan107BytesIsInvalid() {
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        #expect(isInvalid(parse("PROXY UNKNOWN \(full) \(full) 65535 655350\r\n")))
        #expect(isInvalid(parse("PROXY UNKNOWN " + String(repeating: "x", count: 93))))
    }

    @Test func incompleteV1LineNeedsMoreData() {
        #expect(parse("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443") == .needMoreData)
        #expect(parse("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r") == .needMoreData)
    }

    @Test(arguments: [
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",  // a port missing
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 8\r\n",  // a field too many
        "PROXY TCP4 192.0.2.10  198.51.100.1 56324 443\r\n",  // double space
        "PROXY  TCP4 192.0.2.10 198.51.100.1 56324 443\r\n",
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443 \r\n",  // trailing space
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",  // family mismatch
        "PROXY TCP6 192.0.2.10 2001:db8::2 1 2\r\n",
        "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",  // octet out of range
        "PROXY TCP4 192.0.2.010 198.51.100.1 1 2\r\n",  // leading zero
        "PROXY TCP4 192.0.2 198.51.100.1 1 2\r\n",
        "PROXY TCP4 example.com 198.51.100.1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n",  // zone id
        "PROXY TCP6 2001:db8:::1 2001:db8::2 1 2\r\n",
        "PROXY TCP4 192.0.2.10 198.51.100.1 65536 443\r\n",  // port out of range
        "PROXY TCP4 192.0.2.10 198.51.100.1 0443 443\r\n",  // leading zero
        "PROXY TCP4 192.0.2.10 198.51.100.1 +443 443\r\n",
        "PROXY TCP4 192.0.2.10 198.51.100.1 -1 443\r\n",
        "PROXY TCP4 192.0.2.10 198.51.100.1 443 443 \r\n",
        "PROXY UDP4 192.0.2.10 198.51.100.1 56324 443\r\n",  // unknown protocol
        "PROXY tcp4 192.0.2.10 198.51.100.1 56324 443\r\n",
        "PROXY \r\n",
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\n",  // bare line feed
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\rX",  // carriage return alone
    ])
    func malformedV1LineIsInvalid(line: String) {
        #expect(isInvalid(parse(line)))
    }

    @Test func garbageAfterV1SignatureIsInvalidBeforeTheLineEnds() {
        #expect(isInvalid(parse(Array("PROXY ".utf8) + [0x00, 0xFF, 0x13])))
        #expect(isInvalid(parse(Array("PROXY TCP4 1.2.3.4".utf8) + [0xC3, 0xA9])))
    }

    @Test func v2ProxyIPv4HeaderGivesAddressesAndLength() {
        let header = proxyV2(
            family: 0x11, block: addressBlock([192, 0, 2, 10], [198, 51, 100, 1], 56324, 443))
        let expected = ProxyHeader(
            source: address("192.0.2.10", 56324), destination: address("198.51.100.1", 443), version: 2)
        #expect(parse(header + Array(request.utf8)) == .header(expected, length: 28))
    }

    @Test func v2ProxyIPv6HeaderGivesAddressesAndLength() {
        let header = proxyV2(family: 0x21, block: addressBlock(ipv6Source, ipv6Destination, 1, 8443))
        let expected = ProxyHeader(
            source: address("2001:db8::1", 1), destination: address("2001:db8::2", 8443), version: 2)
        #expect(parse(header) == .header(expected, length: 52))
    }

    @Test func v2TLVsAreSkippedAndCountedInTheLength() {
        let block = addressBlock([192, 0, 2, 10], [198, 51, 100, 1], 56324, 443)
        let header = proxyV2(family: 0x11, block: block, tlvs: sampleTLVs)
        guard case .header(let parsed, let length) = parse(header + Array(request.utf8)) else {
            Issue.record("expected a header")
            return
        }
        #expect(length == 16 + block.count + sampleTLVs.count)
        #expect(parsed.source == address("192.0.2.10", 56324))
    }

    @Test func v2LocalHeaderHasNoAddressesWhateverItsBlock() {
        let noAddresses = ProxyHeader(source: nil, destination: nil, version: 2)
        #expect(parse(proxyV2(command: 0, family: 0x00)) == .header(noAddresses, length: 16))
        let withBlock = proxyV2(
            command: 0, family: 0x11, block: anyIPv4Block)
        #expect(parse(withBlock) == .header(noAddresses, length: 28))
    }

    @Test func v2UnspecifiedAndUnixFamiliesHaveNoAddresses() {
        let noAddresses = ProxyHeader(source: nil, destination: nil, version: 2)
        #expect(parse(proxyV2(family: 0x00)) == .header(noAddresses, length: 16))
        let unixBlock = Array(repeating: UInt8(0), count: 216)
        #expect(parse(proxyV2(family: 0x31, block: unixBlock)) == .header(noAddresses, length: 232))
    }

    @Test func incompleteV2HeaderNeedsMoreDataUntilItsLastByte() {
        let header = proxyV2(
            family: 0x21, block: addressBlock(ipv6Source, ipv6Destination, 1, 2), tlvs: sampleTLVs)
        for count in 12..<header.count {
            #expect(parse(Array(header.prefix(count))) == .needMoreData, "prefix of \(count) bytes")
        }
        if case .header = parse(header) {} else { Issue.record("the complete header should parse") }
    }

    @Test(arguments: [
        proxyV2(version: 1, family: 0x11, block: anyIPv4Block),
        proxyV2(version: 3, family: 0x11, block: anyIPv4Block),
        proxyV2(command: 2, family: 0x11, block: anyIPv4Block),
        proxyV2(command: 0xF, family: 0x00),
        proxyV2(family: 0x12, block: anyIPv4Block),  // UDP
        proxyV2(family: 0x22, block: addressBlock(ipv6Source, ipv6Destination, 1, 2)),
        proxyV2(family: 0x10, block: anyIPv4Block),  // transport unspecified
        proxyV2(family: 0x41, block: anyIPv4Block),  // no such family
        proxyV2(family: 0x11, block: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1]),  // block too short
        proxyV2(family: 0x21, block: anyIPv4Block),  // IPv4-sized block for IPv6
        proxyV2(family: 0x31, block: Array(repeating: 0, count: 200)),
    ])
    func malformedV2HeaderIsInvalid(header: [UInt8]) {
        #expect(isInvalid(parse(header)))
    }

    @Test func oversizeV2HeaderIsInvalidWithoutWaitingForItsBytes() {
        let header = proxyV2(family: 0x11, length: ProxyHeaderParser.maximumV2Length - 16 + 1)
        #expect(isInvalid(parse(header)))
        let largest = proxyV2(family: 0x11, length: ProxyHeaderParser.maximumV2Length - 16)
        #expect(parse(largest) == .needMoreData)
    }

    @Test func parsingNeitherConsumesNorIgnoresTheReaderIndex() {
        var buffer = ByteBuffer(string: "xxPROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n")
        buffer.moveReaderIndex(forwardBy: 2)
        let before = buffer.readerIndex
        guard case .header(_, let length) = ProxyHeaderParser.parse(buffer) else {
            Issue.record("expected a header after the reader index")
            return
        }
        #expect(length == buffer.readableBytes)
        #expect(buffer.readerIndex == before)

        var binary = ByteBuffer(
            bytes: [0xAA] + proxyV2(family: 0x11, block: addressBlock([9, 9, 9, 9], [8, 8, 8, 8], 7, 6)))
        binary.moveReaderIndex(forwardBy: 1)
        let parsed = ProxyHeaderParser.parse(binary)
        #expect(
            parsed
                == .header(
                    ProxyHeader(
                        source: address("9.9.9.9", 7), destination: address("8.8.8.8", 6), version: 2),
                    length: 28))
    }
}

// MARK: - Handler

@Suite("PROXY protocol handler")
struct ProxyProtocolHandlerTests {
    @Test func v1TCP4HeaderAnnouncesItsSourceAndForwardsTheRequest() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + request)
        #expect(connection.recorder.addresses == [address("192.0.2.10", 56324)])
        #expect(try connection.forwardedReads() == [request])
        #expect(!connection.handlerIsInPipeline)
    }

    @Test func v1TCP6HeaderAnnouncesItsSource() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send("PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n" + request)
        #expect(connection.recorder.addresses == [address("2001:db8::1", 51000)])
        #expect(try connection.forwarded() == request)
    }

    @Test func v1UnknownHeaderAnnouncesThePeer() throws {
        let peer = address("10.1.2.3", 33000)
        let connection = try Connection(peer: peer)
        defer { connection.finish() }
        try connection.send("PROXY UNKNOWN\r\n" + request)
        #expect(connection.recorder.addresses == [peer])
        #expect(try connection.forwarded() == request)
    }

    @Test func v2ProxyIPv4HeaderAnnouncesItsSource() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send(
            proxyV2(family: 0x11, block: addressBlock([203, 0, 113, 7], [10, 0, 0, 1], 61000, 80)))
        try connection.send(request)
        #expect(connection.recorder.addresses == [address("203.0.113.7", 61000)])
        #expect(try connection.forwarded() == request)
        #expect(!connection.handlerIsInPipeline)
    }

    @Test func v2ProxyIPv6HeaderAnnouncesItsSource() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send(
            proxyV2(family: 0x21, block: addressBlock(ipv6Source, ipv6Destination, 40001, 443))
                + Array(request.utf8))
        #expect(connection.recorder.addresses == [address("2001:db8::1", 40001)])
        #expect(try connection.forwarded() == request)
    }

    @Test func v2LocalHeaderAnnouncesThePeer() throws {
        let peer = address("10.9.9.9", 1234)
        let connection = try Connection(peer: peer)
        defer { connection.finish() }
        try connection.send(proxyV2(command: 0, family: 0x00) + Array(request.utf8))
        #expect(connection.recorder.addresses == [peer])
        #expect(try connection.forwarded() == request)
    }

    @Test func v2HeaderWithTLVsForwardsOnlyWhatFollowsThem() throws {
        let connection = try Connection()
        defer { connection.finish() }
        let block = addressBlock([203, 0, 113, 7], [10, 0, 0, 1], 61000, 80)
        try connection.send(proxyV2(family: 0x11, block: block, tlvs: sampleTLVs) + Array(request.utf8))
        #expect(connection.recorder.addresses == [address("203.0.113.7", 61000)])
        #expect(try connection.forwarded() == request)
    }

    @Test func plainRequestWithoutHeaderIsForwardedUnchangedWithThePeerAddress() throws {
        let peer = address("198.51.100.20", 50505)
        let connection = try Connection(peer: peer)
        defer { connection.finish() }
        try connection.send(request)
        #expect(connection.recorder.addresses == [peer])
        #expect(try connection.forwardedReads() == [request])
        #expect(!connection.handlerIsInPipeline)
        #expect(connection.isOpen)
    }

    @Test func plainRequestStartingLikeTheSignatureIsForwardedWhole() throws {
        let connection = try Connection()
        defer { connection.finish() }
        let propfind = "PROPFIND /dav HTTP/1.1\r\nHost: x\r\n\r\n"
        try connection.sendByteByByte(Array(propfind.utf8))
        #expect(connection.recorder.addresses.count == 1)
        #expect(try connection.forwarded() == propfind)
    }

    @Test func v1HeaderSentOneByteAtATimeIsHonoured() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.sendByteByByte(
            Array(("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + request).utf8))
        #expect(connection.recorder.addresses == [address("192.0.2.10", 56324)])
        #expect(try connection.forwarded() == request)
    }

    @Test func v2HeaderSentOneByteAtATimeIsHonoured() throws {
        let connection = try Connection()
        defer { connection.finish() }
        let header = proxyV2(
            family: 0x21, block: addressBlock(ipv6Source, ipv6Destination, 7, 443), tlvs: sampleTLVs)
        try connection.sendByteByByte(header)
        #expect(connection.recorder.addresses == [address("2001:db8::1", 7)])
        #expect(try connection.forwarded() == "")
        try connection.sendByteByByte(Array(request.utf8))
        #expect(try connection.forwarded() == request)
    }

    @Test func nothingIsForwardedUntilTheHeaderIsComplete() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send("PROXY TCP4 192.0.2.10 198.51.")
        #expect(try connection.forwardedReads().isEmpty)
        #expect(connection.recorder.addresses.isEmpty)
        #expect(connection.handlerIsInPipeline)
        try connection.send("100.1 56324 443\r\nGET")
        #expect(try connection.forwarded() == "GET")
        #expect(connection.recorder.addresses == [address("192.0.2.10", 56324)])
    }

    @Test func truncatedHeaderThenCloseForwardsNothing() throws {
        let connection = try Connection()
        try connection.send("PROXY TCP4 192.0.2.10 198.51.100.1 563")
        connection.channel.close(promise: nil)
        #expect(!connection.isOpen)
        #expect(try connection.forwardedReads().isEmpty)
        #expect(connection.recorder.addresses.isEmpty)
        connection.finish()
    }

    @Test func garbageAfterV1SignatureClosesTheConnection() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send(Array("PROXY ".utf8) + [0x00, 0x01, 0xFE] + Array(request.utf8))
        #expect(!connection.isOpen)
        #expect(try connection.forwardedReads().isEmpty)
        #expect(connection.recorder.addresses.isEmpty)
    }

    @Test func oversizeV1LineClosesTheConnection() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.sendByteByByte(Array(("PROXY UNKNOWN " + String(repeating: "a", count: 200)).utf8))
        #expect(!connection.isOpen)
        #expect(try connection.forwardedReads().isEmpty)
    }

    @Test func malformedV2HeaderClosesTheConnection() throws {
        let connection = try Connection()
        defer { connection.finish() }
        try connection.send(proxyV2(family: 0x12, block: anyIPv4Block))
        #expect(!connection.isOpen)
        #expect(try connection.forwardedReads().isEmpty)
    }

    @Test func headerFromUntrustedPeerClosesTheConnection() throws {
        let connection = try Connection(peer: address("203.0.113.66", 4444), trusted: ["10.0.0.0/8"])
        defer { connection.finish() }
        try connection.send("PROXY TCP4 1.1.1.1 198.51.100.1 56324 443\r\n" + request)
        #expect(!connection.isOpen)
        #expect(connection.recorder.addresses.isEmpty)
        #expect(try connection.forwardedReads().isEmpty)
    }

    @Test func localHeaderFromUntrustedPeerClosesTheConnection() throws {
        let connection = try Connection(peer: address("203.0.113.66", 4444), trusted: ["10.0.0.0/8"])
        defer { connection.finish() }
        try connection.send(proxyV2(command: 0, family: 0x00) + Array(request.utf8))
        #expect(!connection.isOpen)
        #expect(try connection.forwardedReads().isEmpty)
    }

    @Test func untrustedPeerWithoutHeaderIsServed() throws {
        let peer = address("203.0.113.66", 4444)
        let connection = try Connection(peer: peer, trusted: ["10.0.0.0/8"])
        defer { connection.finish() }
        try connection.send(request)
        #expect(connection.isOpen)
        #expect(connection.recorder.addresses == [peer])
        #expect(try connection.forwarded() == request)
    }

    @Test(arguments: [
        (address("10.20.30.40", 5000), ["10.0.0.0/8"]),
        (address("192.168.1.1", 5000), ["10.0.0.0/8", "192.168.1.1"]),
        (address("fd00::17", 5000), ["fd00::/8"]),
        (address("::ffff:10.0.0.9", 5000), ["10.0.0.0/8"]),
    ])
    func headerFromTrustedPeerIsHonoured(peer: SocketAddress, trusted: [String]) throws {
        let connection = try Connection(peer: peer, trusted: trusted)
        defer { connection.finish() }
        try connection.send("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + request)
        #expect(connection.isOpen)
        #expect(connection.recorder.addresses == [address("192.0.2.10", 56324)])
        #expect(try connection.forwarded() == request)
    }

    @Test func unixSocketPeerIsTrustedOnlyWithoutAList() throws {
        let peer = try SocketAddress(unixDomainSocketPath: "/tmp/mothership-proxy-test.sock")
        let header = "PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"

        let open = try Connection(peer: peer)
        defer { open.finish() }
        try open.send(header + request)
        #expect(open.recorder.addresses == [address("192.0.2.10", 56324)])
        #expect(try open.forwarded() == request)

        let listed = try Connection(peer: peer, trusted: ["0.0.0.0/0", "::/0"])
        defer { listed.finish() }
        try listed.send(header + request)
        #expect(!listed.isOpen)
        #expect(try listed.forwardedReads().isEmpty)
    }

    @Test func bytesAfterTheHeaderAreForwardedIntactAndInOrder() throws {
        let connection = try Connection()
        defer { connection.finish() }
        let pipelined = request + "GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n"
        let body = (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try connection.send(Array(("PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + pipelined).utf8))
        try connection.send(body)
        try connection.send("tail")
        var reads: [ByteBuffer] = []
        while let read = try connection.channel.readInbound(as: ByteBuffer.self) { reads.append(read) }
        #expect(
            reads.map { Array($0.readableBytesView) } == [Array(pipelined.utf8), body, Array("tail".utf8)])
    }
}
