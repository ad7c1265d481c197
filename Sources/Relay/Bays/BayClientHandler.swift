import DockingProtocol
import NIOCore
import NIOWebSocket

/// One WebSocket client of a bay, after the upgrade: its frames are held to RFC 6455's rules
/// (`WebSocketRules`: a violation fails the connection with the code the RFC names, and nothing
/// of it reaches the bay), its messages go to the bay as Cargo (one batch per read), the bay's
/// Cargo comes back as text or binary frames, and a close either way becomes Disembark the other
/// way. Ping, pong and fragments never reach the bay.
///
/// Flow control: a client whose unsent bytes exceed the limit is closed with 1008 (it cannot stall
/// the bay or the other clients); while the bay's socket is full, the client is not read.
final class BayClientHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let berth: BayBerth
    let connID: UInt32
    let generation: UInt32
    /// Whether Cargo carries the message type both ways (`DockingFeature.typedCargo`).
    let typedCargo: Bool
    private var boarding: Boarding?
    private var context: ChannelHandlerContext?
    private var reference: BayClientRef?
    private var rules: WebSocketRules
    /// The fragments so far of a fragmented message, unmasked.
    private var fragments: ByteBuffer?
    /// permessage-deflate's streams, when it was agreed in the 101.
    private let deflate: MessageDeflate?
    /// The message in progress is compressed (RSV1 on its first frame).
    private var inflating = false
    /// What the compressed message in progress inflated to so far.
    private var inflated: ByteBuffer?
    /// Cargo frames read in this batch, for the bay.
    private var cargo: ByteBuffer?
    private var cargoMessages = 0
    /// Written to since the last flush (set by the berth).
    var needsFlush = false
    /// The berth knows this client: until Disembark goes either way.
    private var aboard = true
    private var closeSent = false
    /// The connection was failed: it closes once the close frame is out, and nothing more is read.
    private var failed = false
    private var closeTimer: Scheduled<Void>?
    private var readsHeld = false
    private var pendingRead = false

    init(berth: BayBerth, boarding: BayBoarding) {
        self.berth = berth
        self.connID = boarding.boarding.connID
        self.generation = boarding.generation
        self.typedCargo = boarding.typedCargo
        self.boarding = boarding.boarding
        self.rules = WebSocketRules(
            maxMessageBytes: berth.limits.maxMessageBytes(typedCargo: boarding.typedCargo),
            compressionNegotiated: boarding.deflate != nil)
        self.deflate = boarding.deflate.map { MessageDeflate(parameters: $0) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let reference = BayClientRef(
            handler: NIOLoopBound(self, eventLoop: context.eventLoop), loop: context.eventLoop)
        self.reference = reference
        guard let boarding else { return }
        self.boarding = nil
        let generation = self.generation
        berth.withCore { $0.board(reference, boarding: boarding, generation: generation) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        deflate?.release()
        inflated = nil
        self.context = nil
    }

    // MARK: From the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let frame = unwrapInboundIn(data)
        let verdict = rules.frame(
            fin: frame.fin, rsv1: frame.rsv1, rsv2: frame.rsv2, rsv3: frame.rsv3, opcode: frame.opcode,
            masked: frame.maskKey != nil, length: frame.length)
        switch verdict {
        case .data(let opcode, let first, let last):
            guard !closeSent else { return }
            if let violation = take(frame, opcode: opcode, first: first, last: last, context: context) {
                fail(violation)
            }
        case .ping:
            guard !closeSent else { return }
            context.write(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)),
                promise: nil)
            needsFlush = true
        case .pong:
            break
        case .close:
            if closeSent {
                // The answer to our close: the handshake is complete.
                context.close(promise: nil)
                return
            }
            switch WebSocketRules.close(payload: frame.unmaskedData) {
            case .violation(let violation):
                fail(violation)
            case .valid(let code, let reason):
                shipCargo()
                disembark(code: code ?? 1005, reason: reason)
                closeSent = true
                // The echo carries the client's code (none when it sent none), then the connection
                // closes (§5.5.1: the server closes the TCP connection first).
                var echo = context.channel.allocator.buffer(capacity: 2)
                if let code { echo.writeInteger(code) }
                let channel = context.channel
                context.writeAndFlush(
                    wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo))
                )
                .whenComplete { _ in channel.close(promise: nil) }
            }
        case .violation(let violation):
            fail(violation)
        }
    }

    /// A data frame that passed the rules: an unfragmented message goes straight into the batch
    /// for the bay; fragments gather until the last. Text is checked as it comes (a fragment that
    /// cannot be UTF-8 fails the connection before the rest of its message arrives).
    private func take(
        _ frame: WebSocketFrame, opcode: WebSocketOpcode, first: Bool, last: Bool,
        context: ChannelHandlerContext
    ) -> WebSocketRules.Violation? {
        if first { inflating = frame.rsv1 }
        if inflating { return takeCompressed(frame, opcode: opcode, last: last, context: context) }
        let isText = opcode == .text
        if first && last {
            if cargo == nil { cargo = context.channel.allocator.buffer(capacity: frame.length + 10) }
            let start = cargo!.writerIndex
            writeCargoHeader(length: frame.length, opcode: opcode, into: &cargo!)
            let offset = Self.appendUnmasked(frame, to: &cargo!).lowerBound - cargo!.readerIndex
            if isText,
                let violation = cargo!.withUnsafeReadableBytes({
                    rules.checkText(UnsafeRawBufferPointer(rebasing: $0[offset...]), last: true)
                })
            {
                cargo!.moveWriterIndex(to: start)
                return violation
            }
            cargoMessages += 1
            if cargo!.readableBytes >= 64 * 1024 { shipCargo() }
            return nil
        }
        if first { fragments = context.channel.allocator.buffer(capacity: max(frame.length, 256)) }
        let offset = Self.appendUnmasked(frame, to: &fragments!).lowerBound - fragments!.readerIndex
        if isText,
            let violation = fragments!.withUnsafeReadableBytes({
                rules.checkText(UnsafeRawBufferPointer(rebasing: $0[offset...]), last: last)
            })
        {
            fragments = nil
            return violation
        }
        guard last, let message = fragments else { return nil }
        fragments = nil
        if cargo == nil { cargo = context.channel.allocator.buffer(capacity: message.readableBytes + 10) }
        writeCargoHeader(length: message.readableBytes, opcode: opcode, into: &cargo!)
        cargo!.writeImmutableBuffer(message)
        cargoMessages += 1
        if cargo!.readableBytes >= 64 * 1024 { shipCargo() }
        return nil
    }

    /// A frame of a compressed message (RFC 7692 §7.2.2): inflated as it comes, with the message
    /// limit and text's UTF-8 checked on what it inflates to, so neither a bomb nor bad text is
    /// ever held whole.
    private func takeCompressed(
        _ frame: WebSocketFrame, opcode: WebSocketOpcode, last: Bool, context: ChannelHandlerContext
    ) -> WebSocketRules.Violation? {
        // The rules let RSV1 through only when deflate was agreed.
        guard let deflate else { return .protocolError("RSV1 without permessage-deflate") }
        let limit = rules.maxMessageBytes
        if inflated == nil {
            inflated = context.channel.allocator.buffer(capacity: min(limit, max(256, frame.length * 4)))
        }
        let isText = opcode == .text
        let payload = frame.unmaskedData
        var message = inflated!
        inflated = nil
        var violation = payload.withUnsafeReadableBytes { bytes in
            deflate.inflate(bytes, end: last, into: &message, limit: limit) { piece in
                isText ? rules.checkText(piece, last: false) : nil
            }
        }
        if violation == nil && last && isText {
            violation = rules.checkText(UnsafeRawBufferPointer(start: nil, count: 0), last: true)
        }
        if let violation { return violation }
        guard last else {
            inflated = message
            return nil
        }
        inflating = false
        if cargo == nil { cargo = context.channel.allocator.buffer(capacity: message.readableBytes + 10) }
        writeCargoHeader(length: message.readableBytes, opcode: opcode, into: &cargo!)
        cargo!.writeImmutableBuffer(message)
        cargoMessages += 1
        if cargo!.readableBytes >= 64 * 1024 { shipCargo() }
        return nil
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        shipCargo()
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        disembark(code: 1006, reason: "")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The frame decoder's own rules (its errors leave the rest of the stream unread).
        switch error {
        case NIOWebSocketError.invalidFrameLength:
            fail(WebSocketRules.Violation(code: 1009, reason: "message too big"))
        case NIOWebSocketError.fragmentedControlFrame:
            fail(.protocolError("a fragmented control frame"))
        case NIOWebSocketError.multiByteControlFrameLength:
            fail(.protocolError("a control frame longer than 125 bytes"))
        case is NIOWebSocketError:
            fail(.protocolError("protocol error"))
        default:
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RelayDrainEvent {
            closeClient(code: 1001, reason: "going away", tellBay: true)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Not read while the bay's socket is full; the berth resumes it.
    func read(context: ChannelHandlerContext) {
        if berth.isLinkWritable(generation: generation) {
            context.read()
            return
        }
        pendingRead = true
        if !readsHeld, let reference {
            readsHeld = true
            let generation = self.generation
            berth.withCore { $0.hold(reference, generation: generation) }
        }
    }

    /// The berth found this client's link taking bytes: the read held back goes ahead.
    func resumeReads() {
        readsHeld = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    private func shipCargo() {
        guard let frames = cargo else { return }
        cargo = nil
        let (messages, generation) = (cargoMessages, self.generation)
        cargoMessages = 0
        guard frames.readableBytes > 0 else { return }
        berth.withCore { $0.ship(frames, messages: messages, generation: generation) }
    }

    private func disembark(code: UInt16, reason: String) {
        guard aboard else { return }
        aboard = false
        let (connID, generation) = (self.connID, self.generation)
        berth.withCore { $0.leave(connID: connID, generation: generation, code: code, reason: reason) }
    }

    /// Fails the connection (RFC 6455 §7.1.7) for a broken rule: what the client sent before goes
    /// to the bay, then Disembark with the code; the client gets a close frame with the code and
    /// the reason, then the TCP connection closes without waiting for an answer.
    private func fail(_ violation: WebSocketRules.Violation) {
        guard !failed else { return }
        failed = true
        fragments = nil
        inflated = nil
        if !closeSent { shipCargo() }
        disembark(code: violation.code, reason: violation.reason)
        guard let context else { return }
        let channel = context.channel
        guard !closeSent else {
            channel.close(promise: nil)
            return
        }
        closeSent = true
        context.writeAndFlush(
            wrapOutboundOut(
                WebSocketFrame(
                    fin: true, opcode: .connectionClose,
                    data: Self.closeData(
                        code: violation.code, reason: violation.reason, allocator: channel.allocator)))
        )
        .whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: From the bay (on this client's loop)

    /// One message from the bay; flushed by `flush()` after the batch.
    func deliver(_ payload: ByteBuffer) {
        guard !closeSent, let context else { return }
        // Below the write high-water mark (32 KiB) there is nothing to count.
        if !context.channel.isWritable,
            ((try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0)
                + payload.readableBytes
                > berth.limits.clientOutgoingBytes
        {
            berth.logger.warning(
                "closing a slow client of bay '\(berth.bay)' (conn_id \(connID)): over \(berth.limits.clientOutgoingBytes) bytes unsent"
            )
            closeClient(code: 1008, reason: "too slow: outgoing buffer full", tellBay: true)
            return
        }
        var message = payload
        let opcode: WebSocketOpcode
        if typedCargo {
            // The berth checked the type byte.
            opcode = message.readInteger(as: UInt8.self) == CargoType.text.rawValue ? .text : .binary
        } else {
            opcode = UTF8Check.isValid(message) ? .text : .binary
        }
        if let frame = compressed(message, opcode: opcode, context: context) {
            context.write(wrapOutboundOut(frame), promise: nil)
            return
        }
        // Copied out of the link's read buffer (which it would otherwise keep alive for as long as
        // it waits here), with room in front for the frame header.
        var data = context.channel.allocator.buffer(capacity: message.readableBytes + Self.headerRoom)
        data.moveWriterIndex(forwardBy: Self.headerRoom)
        data.moveReaderIndex(forwardBy: Self.headerRoom)
        data.writeImmutableBuffer(message)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: data)), promise: nil)
    }

    /// A message compressed (RSV1 set, RFC 7692 §7.2.1), when deflate was agreed and the message
    /// is long enough to gain from it (`MessageDeflate.minimumCompressedBytes`).
    private func compressed(
        _ message: ByteBuffer, opcode: WebSocketOpcode, context: ChannelHandlerContext
    ) -> WebSocketFrame? {
        guard let deflate, message.readableBytes >= MessageDeflate.minimumCompressedBytes,
            let data = deflate.deflate(
                message, headerRoom: Self.headerRoom, allocator: context.channel.allocator)
        else { return nil }
        return WebSocketFrame(fin: true, rsv1: true, opcode: opcode, data: data)
    }

    func flush() { context?.flush() }

    /// The longest server frame header (no mask): the encoder writes it in place when it can.
    static let headerRoom = 10

    /// A Cargo frame's header for a message of `length` bytes (with its type byte on a typed link).
    private func writeCargoHeader(length: Int, opcode: WebSocketOpcode, into buffer: inout ByteBuffer) {
        buffer.writeInteger(DockingMessage.Kind.cargo.rawValue)
        if typedCargo {
            buffer.writeInteger(UInt32(5 + length))
            buffer.writeInteger(connID)
            buffer.writeInteger(opcode == .text ? CargoType.text.rawValue : CargoType.binary.rawValue)
        } else {
            buffer.writeInteger(UInt32(4 + length))
            buffer.writeInteger(connID)
        }
    }

    /// Appends `frame`'s payload to `buffer`, unmasked in place (one copy of the bytes); returns
    /// where it went (writer indices).
    @discardableResult
    static func appendUnmasked(_ frame: WebSocketFrame, to buffer: inout ByteBuffer) -> Range<Int> {
        let length = frame.data.readableBytes
        let start = buffer.writerIndex
        buffer.writeImmutableBuffer(frame.data)
        guard let key = frame.maskKey, length > 0 else { return start..<buffer.writerIndex }
        let offset = start - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            let message = UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<offset + length])
            var index = 0
            var wide: UInt64 = 0
            withUnsafeMutableBytes(of: &wide) { pattern in
                for offset in 0..<8 { pattern[offset] = key[offset % 4] }
            }
            while index + 8 <= length {
                let word = message.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                message.storeBytes(of: word ^ wide, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < length {
                message[index] ^= key[index % 4]
                index += 1
            }
        }
        return start..<buffer.writerIndex
    }

    /// Closes the client with `code` (the bay's Disembark, 1011 when the bay went away, 1008 when
    /// too slow); `tellBay` sends Disembark with the same code when the bay did not ask for it.
    func closeClient(code: UInt16, reason: String, tellBay: Bool) {
        // What the client sent before goes to the bay before its Disembark.
        if !closeSent { shipCargo() }
        if tellBay {
            disembark(code: code, reason: reason)
        } else {
            aboard = false
        }
        guard !closeSent, let context else { return }
        closeSent = true
        context.writeAndFlush(
            wrapOutboundOut(
                WebSocketFrame(
                    fin: true, opcode: .connectionClose,
                    data: Self.closeData(code: code, reason: reason, allocator: context.channel.allocator))),
            promise: nil)
        // The client answers with its own close frame; one that does not is closed anyway.
        let channel = context.channel
        closeTimer = context.eventLoop.scheduleTask(in: berth.limits.closeHandshakeTimeout) {
            channel.close(promise: nil)
        }
    }

    /// A close frame's payload: the code, then the reason cut to fit 125 bytes at a character boundary.
    static func closeData(code: UInt16, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        let sendable = WebSocketCloseCode.sendable(code)
        var data = allocator.buffer(capacity: 2 + min(reason.utf8.count, 123))
        data.writeInteger(sendable)
        var cut = Substring(reason)
        while cut.utf8.count > 123 { cut = cut.dropLast() }
        data.writeSubstring(cut)
        return data
    }
}

/// Close codes as a close frame may carry them (RFC 6455 §7.4).
enum WebSocketCloseCode {
    /// 1005, 1006 and 1015 are for reporting only, and codes outside 1000-4999 are invalid: such a
    /// code from the bay goes out as 1000.
    static func sendable(_ code: UInt16) -> UInt16 {
        switch code {
        case 1005, 1006, 1015: 1000
        case 1000...4999: code
        default: 1000
        }
    }
}

/// Whether a bay's message goes out as a text frame (an old bay's Cargo says nothing of its type).
enum UTF8Check {
    static func isValid(_ buffer: ByteBuffer) -> Bool {
        var stream = UTF8Stream()
        return buffer.withUnsafeReadableBytes { stream.feed($0) } && stream.isComplete
    }
}

extension BayBoarding {
    /// The handlers that carry a WebSocket accepted for `berth` (frames decoded and encoded, then
    /// the bay's client, which holds them to the RFC's rules and joins fragments), in pipeline order; either driver hands the connection to them.
    func handlers(for berth: BayBerth) -> [any ChannelHandler] {
        [
            ByteToMessageHandler(
                WebSocketFrameDecoder(maxFrameSize: berth.limits.maxMessageBytes(typedCargo: typedCargo))),
            WebSocketFrameEncoder(),
            BayClientHandler(berth: berth, boarding: self),
        ]
    }
}
