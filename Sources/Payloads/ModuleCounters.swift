import Metrics
import Synchronization

/// One module's counters (SPEC §10): Prometheus through swift-metrics, and atomics the dashboard
/// reads. Shared by every relay thread (the workers and the TLS event loops).
final class ModuleCounters: Sendable {
    private let invocations: Counter
    private let blocks: Counter
    private let errors: Counter
    private let fuel: Counter
    private let invocationCount = Atomic<UInt64>(0)
    private let blockCount = Atomic<UInt64>(0)
    private let errorCount = Atomic<UInt64>(0)
    private let fuelCount = Atomic<UInt64>(0)

    init(module: String, phase: String) {
        let dimensions = [("module", module), ("phase", phase)]
        invocations = Counter(label: "mothership_module_invocations_total", dimensions: dimensions)
        blocks = Counter(label: "mothership_module_blocks_total", dimensions: dimensions)
        errors = Counter(label: "mothership_module_errors_total", dimensions: dimensions)
        fuel = Counter(label: "mothership_module_fuel_used_total", dimensions: dimensions)
    }

    func recordCall(fuel used: UInt64) {
        invocations.increment()
        invocationCount.add(1, ordering: .relaxed)
        fuel.increment(by: Int64(clamping: used))
        fuelCount.add(used, ordering: .relaxed)
    }

    func recordBlock() {
        blocks.increment()
        blockCount.add(1, ordering: .relaxed)
    }

    func recordError() {
        errors.increment()
        errorCount.add(1, ordering: .relaxed)
    }

    var invocationsSoFar: UInt64 { invocationCount.load(ordering: .relaxed) }
    var blocksSoFar: UInt64 { blockCount.load(ordering: .relaxed) }
    var errorsSoFar: UInt64 { errorCount.load(ordering: .relaxed) }
    var fuelSoFar: UInt64 { fuelCount.load(ordering: .relaxed) }
}

/// What a module has done since start (for the dashboard and tests).
public struct ModuleActivity: Sendable, Equatable {
    public var name: String
    public var phase: String
    public var invocations: UInt64
    public var blocks: UInt64
    public var errors: UInt64
    public var fuelUsed: UInt64
}
