/// The sandbox bounds of every module (SPEC §7): its linear memory and the work of one call.
public struct PayloadLimits: Sendable {
    /// The most linear memory one module instance may have (16 MiB by default). Growing past it
    /// fails the way `memory.grow` fails (it returns -1); a module whose initial memory is larger
    /// does not load.
    public var memoryBytes: Int
    /// The fuel of one call (`on_request` or `on_response`): about one unit per WebAssembly
    /// operator executed. An endless loop runs out of it and the call fails.
    public var fuelPerCall: UInt64
    /// Table elements one instance may have.
    public var tableElements: Int

    public init(
        memoryBytes: Int = 16 * 1024 * 1024, fuelPerCall: UInt64 = 10_000_000, tableElements: Int = 10_000
    ) {
        self.memoryBytes = memoryBytes
        self.fuelPerCall = fuelPerCall
        self.tableElements = tableElements
    }
}
