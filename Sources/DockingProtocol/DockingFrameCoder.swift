import NIOCore

/// Decodes docking frames from a bay link's bytes (wrap in `ByteToMessageHandler`). A bad frame is
/// thrown as a `DockingError` through `errorCaught`.
public struct DockingFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = DockingMessage

    let maxPayload: Int

    public init(maxPayload: Int = DockingCodec.maxPayload) { self.maxPayload = maxPayload }

    public mutating func decode(buffer: inout ByteBuffer) throws -> DockingMessage? {
        try DockingCodec.decode(from: &buffer, maxPayload: maxPayload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> DockingMessage? {
        try decode(buffer: &buffer)
    }
}

/// Encodes docking messages onto a bay link (wrap in `MessageToByteHandler`).
public struct DockingFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = DockingMessage

    public init() {}

    public func encode(data: DockingMessage, out: inout ByteBuffer) throws {
        DockingCodec.encode(data, into: &out)
    }
}
