import Crypto

/// Who takes part in an election: the deployment (`[mothership] name`) and this release of it
/// (`MS_DEPLOY_ID`, default the SHA-256 of the manifest text). The lock key and the notification
/// channel come from the deployment name, so two applications sharing a database do not collide; the
/// status row is keyed by both, so a late escort of this release finds the outcome already recorded.
public struct DeploymentIdentity: Sendable, Hashable {
    public var name: String
    public var deployID: String
    /// The session advisory lock key: the first 8 bytes of SHA-256("mothership flagship " + name).
    public var lockKey: Int64
    /// `mothership_flagship_` + 16 hex digits of the same hash: a valid, collision-resistant identifier.
    public var channel: String

    public init(name: String, deployID: String) {
        self.name = name
        self.deployID = deployID
        let digest = Array(SHA256.hash(data: Array("mothership flagship \(name)".utf8)))
        self.lockKey = Int64(bitPattern: digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        self.channel = "mothership_flagship_" + Self.hex(digest.prefix(8))
    }

    /// `MS_DEPLOY_ID` when set and not empty, else the SHA-256 of the manifest text.
    public init(name: String, environment: [String: String], manifestText: String) {
        let explicit = environment["MS_DEPLOY_ID"]?.trimmedWhitespace() ?? ""
        self.init(
            name: name,
            deployID: explicit.isEmpty ? Self.hex(SHA256.hash(data: Array(manifestText.utf8))) : explicit)
    }

    /// A short form for log lines.
    public var shortDeployID: String { deployID.count > 12 ? String(deployID.prefix(12)) : deployID }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return text
    }
}
