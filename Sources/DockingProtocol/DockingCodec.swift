import NIOCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The docking protocol's framing, as pure functions over byte buffers: a frame is a type byte, the
/// payload length as a big-endian u32 (payload only), then the payload (SPEC §6).
public enum DockingCodec {
    /// Payloads larger than this are a protocol error (the original's limit).
    public static let maxPayload = 16 * 1024 * 1024
    /// The largest message typed Cargo carries (`DockingFeature.typedCargo`): 16 MiB exactly.
    public static let maxTypedMessage = 16 * 1024 * 1024
    /// The largest payload on a link with typed Cargo: conn_id, type byte and the largest message.
    public static let maxTypedPayload = maxTypedMessage + 5
    /// Type byte and length.
    public static let headerSize = 5

    /// Takes one whole frame from the front of `buffer`; nil (and `buffer` untouched) when the frame
    /// has not fully arrived. A bad frame throws and leaves `buffer` untouched too.
    public static func decode(
        from buffer: inout ByteBuffer, maxPayload: Int = maxPayload
    ) throws(DockingError) -> DockingMessage? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        guard let kind = DockingMessage.Kind(rawValue: type) else { throw .unknownType(type) }
        guard Int(length) <= maxPayload else { throw .oversized(length: Int(length), limit: maxPayload) }
        guard buffer.readableBytes >= headerSize + Int(length) else { return nil }
        var payload = buffer.getSlice(at: buffer.readerIndex + headerSize, length: Int(length))!
        let message = try decodePayload(kind, &payload)
        buffer.moveReaderIndex(forwardBy: headerSize + Int(length))
        return message
    }

    static func decodePayload(
        _ kind: DockingMessage.Kind, _ payload: inout ByteBuffer
    ) throws(DockingError) -> DockingMessage {
        switch kind {
        case .cargo:
            guard let connID = payload.readInteger(as: UInt32.self) else { throw .shortCargo }
            return .cargo(connID: connID, payload: payload)
        case .dock: return .dock(try json(Dock.self, kind, payload))
        case .moored: return .moored(try json(Moored.self, kind, payload))
        case .boarding: return .boarding(try json(Boarding.self, kind, payload))
        case .disembark: return .disembark(try json(Disembark.self, kind, payload))
        }
    }

    private static func json<T: Decodable>(
        _ type: T.Type, _ kind: DockingMessage.Kind, _ payload: ByteBuffer
    ) throws(DockingError) -> T {
        do {
            return try payload.withUnsafeReadableBytes { bytes in
                try JSONDecoder().decode(T.self, from: Data(bytes))
            }
        } catch {
            throw .badJSON(kind: kind, reason: Self.describe(error))
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case .dataCorrupted: "not valid JSON"
        default: "\(error)"
        }
    }

    /// A typed Cargo frame (`DockingFeature.typedCargo`): header, conn_id, type byte, the message.
    public static func writeCargo(
        connID: UInt32, type: CargoType, payload: ByteBuffer, into buffer: inout ByteBuffer
    ) {
        buffer.writeInteger(DockingMessage.Kind.cargo.rawValue)
        buffer.writeInteger(UInt32(5 + payload.readableBytes))
        buffer.writeInteger(connID)
        buffer.writeInteger(type.rawValue)
        buffer.writeImmutableBuffer(payload)
    }

    /// Appends the frame of `message` to `buffer`.
    public static func encode(_ message: DockingMessage, into buffer: inout ByteBuffer) {
        switch message {
        case .cargo(let connID, let payload):
            writeCargo(connID: connID, payload: payload, into: &buffer)
        case .dock(let dock): writeJSON(dock, kind: .dock, into: &buffer)
        case .moored(let moored): writeJSON(moored, kind: .moored, into: &buffer)
        case .boarding(let boarding): writeJSON(boarding, kind: .boarding, into: &buffer)
        case .disembark(let disembark): writeJSON(disembark, kind: .disembark, into: &buffer)
        }
    }

    /// A Cargo frame: header, conn_id, the message bytes (the hot path: no intermediate value).
    public static func writeCargo(connID: UInt32, payload: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(DockingMessage.Kind.cargo.rawValue)
        buffer.writeInteger(UInt32(4 + payload.readableBytes))
        buffer.writeInteger(connID)
        buffer.writeImmutableBuffer(payload)
    }

    private static func writeJSON<T: Encodable>(
        _ value: T, kind: DockingMessage.Kind, into buffer: inout ByteBuffer
    ) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Plain strings, integers and string maps always encode.
        let data = try! encoder.encode(value)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(UInt32(data.count))
        buffer.writeBytes(data)
    }
}

/// Why a frame from the other end of the link is not acceptable; the link is closed over it.
public enum DockingError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownType(UInt8)
    case oversized(length: Int, limit: Int)
    case shortCargo
    case badJSON(kind: DockingMessage.Kind, reason: String)

    public var description: String {
        switch self {
        case .unknownType(let type):
            "unknown message type 0x\(String(type, radix: 16, uppercase: true))"
        case .oversized(let length, let limit):
            "frame payload of \(length) bytes is over the \(limit)-byte limit"
        case .shortCargo: "Cargo frame shorter than its 4-byte conn_id"
        case .badJSON(let kind, let reason): "bad \(kind) JSON: \(reason)"
        }
    }
}
