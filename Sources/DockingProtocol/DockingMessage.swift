import NIOCore

/// One message of the docking protocol (SPEC §6), the link between mothership and a bay.
///
/// The JSON messages carry exactly the fields of the original's wire format; Cargo is binary and
/// its bytes are a slice of the buffer it arrived in (never copied while decoding).
public enum DockingMessage: Sendable, Equatable {
    /// Bay → mothership, first on the link: `{"version":1,"ship":"<name>"}`.
    case dock(Dock)
    /// Mothership → bay, the answer to Dock: `{"version":1,"config":{"k":"v"}}`.
    case moored(Moored)
    /// Mothership → bay: a WebSocket client connected.
    case boarding(Boarding)
    /// Either way: a client disconnected, or the bay wants it gone.
    case disembark(Disembark)
    /// Either way: one WebSocket message of one client.
    case cargo(connID: UInt32, payload: ByteBuffer)

    /// The type byte of each message on the wire.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case dock = 0x01
        case moored = 0x02
        case boarding = 0x10
        case disembark = 0x11
        case cargo = 0x12
    }

    public var kind: Kind {
        switch self {
        case .dock: .dock
        case .moored: .moored
        case .boarding: .boarding
        case .disembark: .disembark
        case .cargo: .cargo
        }
    }
}

/// What a bay says when it docks.
public struct Dock: Sendable, Equatable, Codable {
    public var version: Int
    public var ship: String
    /// Optional protocol features the bay asks for (`DockingFeature`); a bay for the original sends
    /// none, and the link then works exactly as the original's.
    public var features: [String]?

    public init(version: Int = 1, ship: String, features: [String]? = nil) {
        self.version = version
        self.ship = ship
        self.features = features
    }

    // Lenient: a bay that leaves a field out still docks (the original checks neither).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        version = try container.decodeIfPresent(Int.self, forKey: .version) ?? 1
        ship = try container.decodeIfPresent(String.self, forKey: .ship) ?? ""
        features = try container.decodeIfPresent([String].self, forKey: .features)
    }
}

/// Mothership's answer to Dock: the bay's `config` table, every value a string.
public struct Moored: Sendable, Equatable, Codable {
    public var version: Int
    public var config: [String: String]
    /// The features of the bay's Dock that mothership turns on; absent (not empty) when the bay
    /// asked for none, so an original bay sees the original Moored.
    public var features: [String]?

    public init(version: Int = 1, config: [String: String], features: [String]? = nil) {
        self.version = version
        self.config = config
        self.features = features
    }
}

/// Features a bay may ask for in Dock (`features`), each on only when Moored names it back.
public enum DockingFeature {
    /// Cargo says whether a message is text or binary: after the 4-byte conn_id comes one type
    /// byte, the WebSocket opcode (`CargoType`), then the message. A message may then be as large
    /// as 16 MiB (`DockingCodec.maxTypedMessage`).
    public static let typedCargo = "typed_cargo"

    /// Every feature this side implements.
    public static let all: Set<String> = [typedCargo]
}

/// The type byte of typed Cargo: the message's WebSocket opcode (RFC 6455 §5.2).
public enum CargoType: UInt8, Sendable {
    case text = 0x01
    case binary = 0x02
}

/// A new client: its conn_id, request target (path and query), address and headers (lower-case names).
public struct Boarding: Sendable, Equatable, Codable {
    public var connID: UInt32
    public var path: String
    public var remoteAddr: String
    public var headers: [String: String]

    public init(connID: UInt32, path: String, remoteAddr: String, headers: [String: String]) {
        self.connID = connID
        self.path = path
        self.remoteAddr = remoteAddr
        self.headers = headers
    }

    enum CodingKeys: String, CodingKey {
        case connID = "conn_id"
        case path
        case remoteAddr = "remote_addr"
        case headers
    }
}

/// A client leaves: the WebSocket close code and reason.
public struct Disembark: Sendable, Equatable, Codable {
    public var connID: UInt32
    public var code: UInt16
    public var reason: String

    public init(connID: UInt32, code: UInt16 = 1000, reason: String = "") {
        self.connID = connID
        self.code = code
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case connID = "conn_id"
        case code
        case reason
    }

    // A bay may leave out the code (normal closure) or the reason.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        connID = try container.decode(UInt32.self, forKey: .connID)
        code = try container.decodeIfPresent(UInt16.self, forKey: .code) ?? 1000
        reason = try container.decodeIfPresent(String.self, forKey: .reason) ?? ""
    }
}
