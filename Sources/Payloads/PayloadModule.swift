import ShipManifest

/// One `[[modules]]` entry, with its WebAssembly bytes read: what every relay thread instantiates
/// (each worker thread, and each event loop serving a TLS bind).
public struct PayloadModule: Sendable {
    public var name: String
    public var phase: Module.Phase
    /// Path patterns (anchored) of the requests the module sees; none means it sees nothing.
    public var routes: [RoutePattern]
    /// `[base.module]` merged with the module's own `config`, as strings.
    public var config: [String: String]
    public var wasm: [UInt8]
    /// For messages: `modules[0] 'auth' (./modules/auth.wasm)`.
    public var label: String

    public init(
        name: String, phase: Module.Phase, routes: [RoutePattern], config: [String: String] = [:],
        wasm: [UInt8], label: String? = nil
    ) {
        self.name = name
        self.phase = phase
        self.routes = routes
        self.config = config
        self.wasm = wasm
        self.label = label ?? "module '\(name)'"
    }

    /// Whether the module sees requests for `path`.
    func applies(to path: Substring) -> Bool {
        for route in routes where route.matches(path) { return true }
        return false
    }

    /// The export the module's phase calls.
    var entryPoint: String { phase == .request ? "on_request" : "on_response" }
}
