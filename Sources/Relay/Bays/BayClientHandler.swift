import DockingProtocol
import NIOCore
import NIOWebSocket

/// One WebSocket client of a bay, after the upgrade: its messages go to the bay as Cargo (one batch
/// per read), the bay's Cargo comes back as text or binary frames, and a close either way becomes
/// Disembark the other way. Ping, pong and fragmented messages never reach the bay.
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
    private var boarding: Boarding?
    private var context: ChannelHandlerContext?
    private var reference: BayClientRef?
    /// Cargo frames read in this batch, for the bay.
    private var cargo: ByteBuffer?
    private var cargoMessages = 0
    /// Written to since the last flush (set by the berth).
    var needsFlush = false
    /// The berth knows this client: until Disembark goes either way.
    private var aboard = true
    private var closeSent = false
    private var closeTimer: Scheduled<Void>?
    private var readsHeld = false
    private var pendingRead = false

    init(berth: BayBerth, boarding: Boarding, generation: UInt32) {
        self.berth = berth
        self.connID = boarding.connID
        self.generation = generation
        self.boarding = boarding
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
        self.context = nil
    }

    // MARK: From the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            guard !closeSent else { return }
            if cargo == nil { cargo = context.channel.allocator.buffer(capacity: frame.length + 9) }
            Self.writeCargo(frame, connID: connID, into: &cargo!)
            cargoMessages += 1
            if cargo!.readableBytes >= 64 * 1024 { shipCargo() }
        case .ping:
            guard !closeSent else { return }
            context.write(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)),
                promise: nil)
            needsFlush = true
        case .connectionClose:
            var data = frame.unmaskedData
            if closeSent {
                // The answer to our close: the handshake is complete.
                context.close(promise: nil)
                return
            }
            let code = data.readInteger(as: UInt16.self)
            let reason = data.readString(length: data.readableBytes) ?? ""
            shipCargo()
            disembark(code: code ?? 1005, reason: reason)
            closeSent = true
            var echo = context.channel.allocator.buffer(capacity: 2)
            if let code { echo.writeInteger(code) }
            let channel = context.channel
            context.writeAndFlush(
                wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo))
            )
            .whenComplete { _ in channel.close(promise: nil) }
        default:
            break  // pong, or an unknown opcode
        }
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
        switch error {
        case NIOWebSocketError.invalidFrameLength,
            NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge:
            closeClient(code: 1009, reason: "message too big", tellBay: true)
        case is NIOWebSocketError, is NIOWebSocketFrameAggregator.Error:
            closeClient(code: 1002, reason: "protocol error", tellBay: true)
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
        if berth.isLinkWritable {
            context.read()
            return
        }
        pendingRead = true
        if !readsHeld, let reference {
            readsHeld = true
            berth.withCore { $0.hold(reference) }
        }
    }

    func resumeReads() {
        readsHeld = false
        if pendingRead, let context {
            pendingRead = false
            read(context: context)
        }
    }

    private func shipCargo() {
        guard let frames = cargo else { return }
        cargo = nil
        let (messages, generation) = (cargoMessages, self.generation)
        cargoMessages = 0
        berth.withCore { $0.ship(frames, messages: messages, generation: generation) }
    }

    private func disembark(code: UInt16, reason: String) {
        guard aboard else { return }
        aboard = false
        let (connID, generation) = (self.connID, self.generation)
        berth.withCore { $0.leave(connID: connID, generation: generation, code: code, reason: reason) }
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
        let opcode: WebSocketOpcode = UTF8Check.isValid(payload) ? .text : .binary
        // Copied out of the link's read buffer (which it would otherwise keep alive for as long as
        // it waits here), with room in front for the frame header.
        var data = context.channel.allocator.buffer(capacity: payload.readableBytes + Self.headerRoom)
        data.moveWriterIndex(forwardBy: Self.headerRoom)
        data.moveReaderIndex(forwardBy: Self.headerRoom)
        data.writeImmutableBuffer(payload)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: data)), promise: nil)
    }

    func flush() { context?.flush() }

    /// The longest server frame header (no mask): the encoder writes it in place when it can.
    static let headerRoom = 10

    /// A Cargo frame for `frame`'s message, unmasked in place in `buffer` (one copy of the bytes).
    static func writeCargo(_ frame: WebSocketFrame, connID: UInt32, into buffer: inout ByteBuffer) {
        let length = frame.data.readableBytes
        buffer.writeInteger(DockingMessage.Kind.cargo.rawValue)
        buffer.writeInteger(UInt32(4 + length))
        buffer.writeInteger(connID)
        let start = buffer.writerIndex - buffer.readerIndex
        buffer.writeImmutableBuffer(frame.data)
        guard let key = frame.maskKey, length > 0 else { return }
        buffer.withUnsafeMutableReadableBytes { bytes in
            let message = UnsafeMutableRawBufferPointer(rebasing: bytes[start..<start + length])
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

/// Whether a bay's message goes out as a text frame.
enum UTF8Check {
    static func isValid(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            let count = bytes.count
            while index + 8 <= count {
                if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                    break
                }
                index += 8
            }
            while index < count && bytes[index] < 0x80 { index += 1 }
            if index == count { return true }
            return String(validating: bytes[index...], as: UTF8.self) != nil
        }
    }
}

extension BayBoarding {
    /// The handlers that carry a WebSocket accepted for `berth` (frames decoded, encoded and
    /// joined, then the bay's client), in pipeline order; either driver hands the connection to them.
    func handlers(for berth: BayBerth) -> [any ChannelHandler] {
        let limits = berth.limits
        return [
            ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: limits.maxMessageBytes)),
            WebSocketFrameEncoder(),
            NIOWebSocketFrameAggregator(
                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 100_000,
                maxAccumulatedFrameSize: limits.maxMessageBytes),
            BayClientHandler(berth: berth, boarding: boarding, generation: generation),
        ]
    }
}
