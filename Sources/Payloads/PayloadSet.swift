import Logging
import Relay
import ShipManifest
@_spi(Fuzzing) import WasmKit

#if canImport(Glibc)
    import Glibc
#endif

/// Every `[[modules]]` of a manifest, loaded and checked at start (SPEC §7), and the relay's hooks:
/// each relay thread (every worker, and every event loop serving TLS) gets its own instances
/// (`makeLoopHooks`), and the route patterns decide which
/// requests a module sees.
public final class PayloadSet: RelayHooks {
    let modules: [PayloadModule]
    let limits: PayloadLimits
    let logger: Logger
    /// Module indices by phase, in manifest order.
    let requestModules: [Int]
    let responseModules: [Int]
    /// Each module's config as the JSON `read_config` returns.
    let configs: [[UInt8]]
    let counters: [ModuleCounters]

    /// Checks every module: it parses and validates, imports only the host functions of the ABI with
    /// their signatures, exports its phase's entry point (and `memory` when it passes pointers), and
    /// instantiates within the limits. The error names the first module that does not.
    public init(
        modules: [PayloadModule], limits: PayloadLimits = PayloadLimits(),
        logger: Logger = Logger(label: "mothership.payloads")
    ) throws(PayloadLoadError) {
        self.modules = modules
        self.limits = limits
        self.logger = logger
        requestModules = modules.indices.filter { modules[$0].phase == .request }
        responseModules = modules.indices.filter { modules[$0].phase == .response }
        configs = modules.map { PayloadJSON.config($0.config) }
        counters = modules.map { ModuleCounters(module: $0.name, phase: $0.phase.rawValue) }
        for module in modules { try Self.check(module) }
        // One trial instantiation of everything, here on the caller's thread and then dropped.
        _ = try ModuleRunner(set: self)
    }

    /// The manifest's modules with their files read (paths relative to the manifest's directory);
    /// nil when it declares none.
    public static func load(
        manifest: Manifest, manifestDirectory: String, limits: PayloadLimits = PayloadLimits(),
        logger: Logger = Logger(label: "mothership.payloads")
    ) throws(PayloadLoadError) -> PayloadSet? {
        guard !manifest.modules.isEmpty else { return nil }
        var modules: [PayloadModule] = []
        for module in manifest.modules {
            let label = "\(module.manifestPath) '\(module.name)' (\(module.wasmPath))"
            let path =
                module.wasmPath.hasPrefix("/") ? module.wasmPath : manifestDirectory + "/" + module.wasmPath
            let bytes: [UInt8]
            do {
                bytes = try Self.readFile(path)
            } catch {
                throw PayloadLoadError(module: label, reason: "cannot read the WASM file \(path): \(error)")
            }
            modules.append(
                PayloadModule(
                    name: module.name, phase: module.phase, routes: module.routes, config: module.config,
                    wasm: bytes,
                    label: label))
        }
        return try PayloadSet(modules: modules, limits: limits, logger: logger)
    }

    /// Whether `other` has the same modules: names, phases, routes, config and WebAssembly bytes
    /// (a reload that leaves them alone keeps the running set, its instances and counters).
    public func hasSameModules(as other: PayloadSet) -> Bool {
        modules.count == other.modules.count
            && zip(modules, other.modules).allSatisfy { mine, theirs in
                mine.name == theirs.name && mine.phase == theirs.phase
                    && mine.routes.map(\.source) == theirs.routes.map(\.source)
                    && mine.config == theirs.config
                    && mine.wasm == theirs.wasm
            }
    }

    /// Counters per module, in manifest order.
    public var activity: [ModuleActivity] {
        zip(modules, counters).map { module, counters in
            ModuleActivity(
                name: module.name, phase: module.phase.rawValue, invocations: counters.invocationsSoFar,
                blocks: counters.blocksSoFar, errors: counters.errorsSoFar, fuelUsed: counters.fuelSoFar)
        }
    }

    // MARK: RelayHooks

    public func runsOnRequest(path: Substring) -> Bool {
        for index in requestModules where modules[index].applies(to: path) { return true }
        return false
    }

    public func runsOnResponse(path: Substring) -> Bool {
        for index in responseModules where modules[index].applies(to: path) { return true }
        return false
    }

    public func makeLoopHooks() throws -> any LoopHooks { try ModuleRunner(set: self) }

    // MARK: Checks

    private static func check(_ module: PayloadModule) throws(PayloadLoadError) {
        let parsed: WasmKit.Module
        do {
            parsed = try parseWasm(bytes: module.wasm)
        } catch {
            throw PayloadLoadError(module: module.label, reason: "not a valid WebAssembly module: \(error)")
        }
        var needsMemory = false
        for entry in parsed.imports {
            let name = "\(entry.module).\(entry.name)"
            guard entry.module == "env", let expected = HostFunctions.signatures[entry.name] else {
                throw PayloadLoadError(
                    module: module.label,
                    reason:
                        "imports \(name), which the host does not provide (it provides env.\(HostFunctions.signatures.keys.sorted().joined(separator: ", env.")); no WASI)"
                )
            }
            guard case .function(let typeIndex) = entry.descriptor,
                let type = parsed.functionType(at: typeIndex)
            else {
                throw PayloadLoadError(
                    module: module.label, reason: "imports \(name) as something other than a function")
            }
            guard type == expected else {
                throw PayloadLoadError(
                    module: module.label,
                    reason: "imports \(name) as \(describe(type)); the host provides \(describe(expected))")
            }
            if HostFunctions.touchMemory.contains(entry.name) { needsMemory = true }
        }
        let exportsMemory = parsed.exports.contains { export in
            if case .memory = export.descriptor { return export.name == "memory" }
            return false
        }
        if needsMemory && !exportsMemory {
            throw PayloadLoadError(
                module: module.label,
                reason: "passes pointers to the host but exports no memory named 'memory'")
        }
    }

    private static func describe(_ type: FunctionType) -> String {
        let parameters = type.parameters.map { "\($0)" }.joined(separator: ", ")
        let results = type.results.map { "\($0)" }.joined(separator: ", ")
        return "(\(parameters)) -> (\(results))"
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }
}
