import Logging
import Relay
import ShipManifest
@_spi(Fuzzing) import WasmKit

/// The modules of one relay thread (a worker, or an event loop serving TLS): one engine, one store
/// and instance per module, one interpreter stack. Confined to its thread (WasmKit is built without its MultiThread trait: nothing here may
/// be touched from another thread). An instance that failed is dropped, because a trap can leave
/// its memory and globals half-updated; the next call instantiates the module again.
final class ModuleRunner: LoopHooks {
    private let set: PayloadSet
    private let engine: Engine
    private var stack: ExecutionStack
    private var slots: [Slot?]
    private let context: CallContext
    private let limiter: SandboxLimiter

    /// One module's instance in its own store (dropping the store frees the instance).
    struct Slot {
        let store: Store
        let entry: Function
        let memory: Memory?
    }

    /// Instantiates every module (running start functions, bounded like a call).
    init(set: PayloadSet) throws(PayloadLoadError) {
        self.set = set
        // Software bounds checks: the mprotect scheme reserves over 4 GiB of address space per
        // memory and traps through a SIGSEGV handler, neither welcome in a process supervisor;
        // the modules are small and their memory accesses few.
        engine = Engine(
            configuration: EngineConfiguration(memoryBoundsChecking: .software, fuelMetering: true))
        stack = ExecutionStack(engine: engine)
        context = CallContext(logger: set.logger)
        limiter = SandboxLimiter(limits: set.limits)
        slots = Array(repeating: nil, count: set.modules.count)
        for index in set.modules.indices {
            let module = set.modules[index]
            do {
                slots[index] = try instantiate(module)
            } catch {
                throw PayloadLoadError(module: module.label, reason: Self.describe(error))
            }
        }
    }

    private func instantiate(_ module: PayloadModule) throws -> Slot {
        let parsed = try parseWasm(bytes: module.wasm)
        let store = Store(engine: engine)
        store.resourceLimiter = limiter
        store.fuel = Fuel(remaining: set.limits.fuelPerCall)
        context.begin(.none)
        context.enter(module: module.name, memory: nil, config: [])
        defer { context.end() }
        let instance = try parsed.instantiate(
            store: store, imports: HostFunctions.imports(store: store, context: context))
        guard let entry = instance.exports[function: module.entryPoint] else {
            throw ModuleFault(
                "exports no function '\(module.entryPoint)' (its \(module.phase.rawValue) phase calls it)")
        }
        let type = entry.type
        guard type.parameters.isEmpty, type.results.isEmpty || type.results == [.i32] else {
            throw ModuleFault("'\(module.entryPoint)' must take no parameters and return nothing (or an i32)")
        }
        return Slot(store: store, entry: entry, memory: instance.exports[memory: "memory"])
    }

    // MARK: LoopHooks

    func request(_ request: inout HookRequest) -> HookRequestOutcome {
        let path = Substring(request.path)
        context.begin(.request(request))
        defer { context.end() }
        for index in set.requestModules where set.modules[index].applies(to: path) {
            guard call(index) else { return .fail(module: set.modules[index].name) }
            if context.blocks {
                set.counters[index].recordBlock()
                let name = set.modules[index].name
                return .block(
                    context.block
                        ?? HookBlock(
                            status: 403, body: Array("403 Forbidden: blocked by module '\(name)'\n".utf8)))
            }
        }
        guard context.changed, let edited = context.request else { return .proceed(changed: false) }
        request = edited
        return .proceed(changed: true)
    }

    func response(_ response: inout HookResponse) -> Bool {
        let path = Substring(response.path)
        context.begin(.response(response))
        defer { context.end() }
        for index in set.responseModules where set.modules[index].applies(to: path) {
            let before = context.subject
            let changedBefore = context.changed
            if !call(index) {
                // A failing response module leaves the response as the modules before it left it.
                context.begin(before)
                context.changed = changedBefore
            }
        }
        guard context.changed, let edited = context.response else { return false }
        response = edited
        return true
    }

    /// Calls module `index`'s entry point within its fuel; false when it failed (logged, counted).
    private func call(_ index: Int) -> Bool {
        let module = set.modules[index]
        let counters = set.counters[index]
        let slot: Slot
        if let existing = slots[index] {
            slot = existing
        } else {
            do {
                slot = try instantiate(module)
                slots[index] = slot
            } catch {
                counters.recordError()
                set.logger.error(
                    "module '\(module.name)' cannot be instantiated again: \(Self.describe(error))",
                    metadata: ["module": "\(module.name)"])
                return false
            }
        }
        context.enter(module: module.name, memory: slot.memory, config: set.configs[index])
        let budget = set.limits.fuelPerCall
        slot.store.fuel = Fuel(remaining: budget)
        do {
            _ = try slot.entry.invoke([], on: &stack)
            counters.recordCall(fuel: budget - (slot.store.fuel?.remaining ?? budget))
            return true
        } catch {
            counters.recordCall(fuel: budget - (slot.store.fuel?.remaining ?? budget))
            counters.recordError()
            slots[index] = nil
            let outcome = module.phase == .request ? "request answered 500" : "response left unchanged"
            set.logger.error(
                "module '\(module.name)' failed in \(module.entryPoint): \(Self.describe(error)); \(outcome)",
                metadata: ["module": "\(module.name)"])
            return false
        }
    }

    /// The first line of an error (a trap's backtrace follows it).
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        return text.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? text
    }
}

/// Memory and table growth within the sandbox's bounds: past them `memory.grow` returns -1.
final class SandboxLimiter: ResourceLimiter {
    let limits: PayloadLimits

    init(limits: PayloadLimits) { self.limits = limits }

    func limitMemoryGrowth(to desired: Int) throws -> Bool { desired <= limits.memoryBytes }
    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= limits.tableElements }
}
