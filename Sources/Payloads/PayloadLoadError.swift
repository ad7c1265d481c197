/// Why a module cannot be loaded at start: the run stops with this message, which names the module
/// (its manifest path, its name and its file) and what is wrong.
public struct PayloadLoadError: Error, Sendable, CustomStringConvertible {
    /// `modules[0] 'auth' (./modules/auth.wasm)`.
    public var module: String
    public var reason: String

    public init(module: String, reason: String) {
        self.module = module
        self.reason = reason
    }

    public var description: String { "\(module): \(reason)" }
}
