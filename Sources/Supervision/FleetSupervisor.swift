import Logging
import ShipManifest

/// What the supervisor needs to know about where it runs.
public struct FleetContext: Sendable {
    /// Relative `cwd`s are resolved against it; it is also the default working directory.
    public var manifestDirectory: String
    /// Mothership's own environment, inherited by every child.
    public var inheritedEnvironment: [String: String]
    public var mothershipPID: Int32
    /// The private docking directory of this run (bays).
    public var socketDirectory: String?

    public init(
        manifestDirectory: String, inheritedEnvironment: [String: String], mothershipPID: Int32,
        socketDirectory: String? = nil
    ) {
        self.manifestDirectory = manifestDirectory
        self.inheritedEnvironment = inheritedEnvironment
        self.mothershipPID = mothershipPID
        self.socketDirectory = socketDirectory
    }
}

/// The adapters the supervisor works through.
public struct FleetPorts: Sendable {
    public var launcher: any ProcessLauncher
    public var health: any HealthCheck
    public var uplinks: any UplinkCheck
    /// Needed when the manifest enables `[mothership.flagship]`.
    public var elector: (any FlagshipElector)?
    /// Docks bays; without it a bay counts as ready once spawned (nothing to dock with).
    public var bays: (any BayDocking)?
    /// The relay's requests in flight per instance: a phased restart waits for a replaced
    /// instance's to finish. Without it, a replaced instance is stopped at once.
    public var traffic: (any ShipTraffic)?

    public init(
        launcher: any ProcessLauncher, health: any HealthCheck, uplinks: any UplinkCheck,
        elector: (any FlagshipElector)? = nil, bays: (any BayDocking)? = nil,
        traffic: (any ShipTraffic)? = nil
    ) {
        self.launcher = launcher
        self.health = health
        self.uplinks = uplinks
        self.elector = elector
        self.bays = bays
        self.traffic = traffic
    }
}

/// Intervals and limits of SPEC §3; tests shorten them.
public struct FleetTiming: Sendable {
    public var readinessPollInterval: Duration = .milliseconds(100)
    public var firstHealthCheckDelay: Duration = .seconds(7)
    public var healthCheckInterval: Duration = .seconds(5)
    public var healthCheckTimeout: Duration = .seconds(2)
    /// Delays between the attempts of one health check (3 attempts: 2 delays).
    public var healthAttemptDelays: [Duration] = [.milliseconds(100), .seconds(1)]
    public var memorySampleInterval: Duration = .seconds(5)
    public var backoff = RestartBackoff()
    public var breaker = HealthBreaker()
    /// How long prelaunch jobs get to stop when the launch is aborted.
    public var prelaunchStopTimeout: Duration = .seconds(10)

    public init() {}
}

/// The fleet's life: launch phases, readiness-ordered starts, restarts with backoff, health-driven
/// restarts, lifecycle states and shutdown in reverse dependency order (SPEC §3).
///
/// One actor owns every vessel's record; each vessel has one task that starts it, waits for it and
/// decides what its exit means. State is re-checked after every `await`, since a shutdown may have
/// begun meanwhile.
public actor FleetSupervisor<C: Clock> where C.Duration == Duration {
    var manifest: Manifest
    let context: FleetContext
    let ports: FleetPorts
    let clock: C
    let timing: FleetTiming
    let logger: Logger
    let outputLog: OutputLog
    let echo: @Sendable (OutputLine) -> Void
    /// Called with a vessel's snapshot whenever its phase, health or memory changes (the relay's
    /// readiness board listens here).
    let onVesselChange: @Sendable (VesselStatus) -> Void
    let onLifecycleChange: @Sendable (LifecycleState) -> Void
    let origin: C.Instant
    var graph: DependencyGraph
    var metrics: FleetMetrics
    /// A reload is being applied (one at a time).
    var reloading = false

    private(set) var lifecycle: LifecycleState = .initializing
    var records: [String: VesselRecord] = [:]
    /// Set once: why the fleet is coming down (nil while it should keep running).
    var outcome: FleetOutcome?
    var shutdownRequested = false
    var stopping = false
    var changeWaiter: CheckedContinuation<Void, Never>?
    var changePending = false
    var prelaunchProcesses: [String: any RunningProcess] = [:]
    var sampler: Task<Void, Never>?
    /// Cancels the election or the escort's wait in progress (a shutdown must not wait for them).
    var cancelElection: (@Sendable () -> Void)?
    /// The last instance id given to a worker's process (the relay's instance sets name them).
    var nextInstanceID = 0

    public init(
        manifest: Manifest, context: FleetContext, ports: FleetPorts, clock: C,
        timing: FleetTiming = FleetTiming(),
        logger: Logger = Logger(label: "mothership"), outputLog: OutputLog = OutputLog(),
        echo: @escaping @Sendable (OutputLine) -> Void = { _ in },
        onLifecycleChange: @escaping @Sendable (LifecycleState) -> Void = { _ in },
        onVesselChange: @escaping @Sendable (VesselStatus) -> Void = { _ in }
    ) {
        self.manifest = manifest
        self.context = context
        self.ports = ports
        self.clock = clock
        self.timing = timing
        self.logger = logger
        self.outputLog = outputLog
        self.echo = echo
        self.onLifecycleChange = onLifecycleChange
        self.onVesselChange = onVesselChange
        self.origin = clock.now
        self.graph = DependencyGraph(
            nodes: manifest.vessels.map(\.name),
            dependencies: Dictionary(
                manifest.vessels.map { ($0.name, $0.dependsOn) }, uniquingKeysWith: { first, _ in first }))
        self.metrics = FleetMetrics(vessels: manifest.vessels)
        for vessel in manifest.vessels {
            records[vessel.name] = VesselRecord(vessel: vessel, backoff: timing.backoff)
        }
    }

    var now: Duration { origin.duration(to: clock.now) }

    // MARK: Public control

    /// Runs the fleet until it lands, fails to launch or crashes; returns how it ended.
    public func run() async -> FleetOutcome {
        metrics.publishInitial(records.values.map(\.vessel))
        if let failure = await preflight() { return await finish(.failed(failure)) }
        if let failure = await electAndPrelaunch() { return await finish(.failed(failure)) }
        if shutdownRequested { return await finish(.landed) }

        transition(manifest.bays.isEmpty ? .launching : .docking)
        sampler = Task { await self.sampleMemory() }
        for name in graph.nodes {
            records[name]!.task = Task { await self.supervise(name) }
        }
        while outcome == nil && !shutdownRequested {
            if lifecycle == .docking && manifest.bays.allSatisfy({ records[$0.name]!.settled }) {
                transition(.launching)
            }
            if lifecycle == .launching && records.values.allSatisfy(\.settled) { transition(.running) }
            await nextChange()
        }
        return await finish(outcome ?? .landed)
    }

    /// SIGTERM / SIGINT: land gracefully.
    public func requestShutdown() {
        guard !shutdownRequested else { return }
        shutdownRequested = true
        logger.notice("shutdown requested: landing the fleet")
        cancelElection?()
        for process in prelaunchProcesses.values { process.signalGroup(15) }
        changed()
    }

    /// A second SIGINT: kill every process group at once.
    public func killNow() {
        shutdownRequested = true
        logger.warning("killing every vessel now")
        cancelElection?()
        for record in records.values {
            for process in record.processes { process.signalGroup(9) }
        }
        for process in prelaunchProcesses.values { process.signalGroup(9) }
        changed()
    }

    /// A snapshot for the dashboard.
    public func status() -> FleetStatus {
        FleetStatus(
            lifecycle: lifecycle,
            vessels: graph.nodes.compactMap { name in records[name].map { $0.status() } },
            now: now)
    }

    public var state: LifecycleState { lifecycle }

    // MARK: Lifecycle

    /// Moves to `next` and logs it; `detail` (the flagship role) is appended in parentheses.
    func transition(_ next: LifecycleState, detail: String? = nil) {
        guard lifecycle != next else { return }
        lifecycle = next
        logger.info(
            "lifecycle: \(next.rawValue)\(detail.map { " (\($0))" } ?? "")",
            metadata: ["state": "\(next.statusWord)"])
        onLifecycleChange(next)
    }

    /// Wakes `run()` to re-evaluate.
    func changed() {
        if let waiter = changeWaiter {
            changeWaiter = nil
            waiter.resume()
        } else {
            changePending = true
        }
    }

    func nextChange() async {
        if changePending {
            changePending = false
            return
        }
        await withCheckedContinuation { changeWaiter = $0 }
    }

    /// Decides the outcome (first decision wins) and wakes `run()`.
    func decide(_ decided: FleetOutcome) {
        guard outcome == nil else { return }
        outcome = decided
        changed()
    }

    /// Stops everything still running and returns the final outcome.
    func finish(_ result: FleetOutcome) async -> FleetOutcome {
        let final = outcome ?? result
        switch final {
        case .failed(let error): logger.error("launch failed: \(error)")
        case .crashed(let vessel, let reason):
            logger.error("critical vessel '\(vessel)' \(reason): landing the fleet")
        case .landed: break
        }
        transition(.draining)
        await stopAll()
        sampler?.cancel()
        switch final {
        case .landed: transition(.landed)
        case .failed: transition(.failed)
        case .crashed: transition(.crashed)
        }
        return final
    }

    // MARK: Preflight

    func preflight() async -> String? {
        let uplinks = manifest.settings.uplinks
        guard !uplinks.isEmpty else { return nil }
        transition(.preflight)
        let reports = await ports.uplinks.check(uplinks, environment: context.inheritedEnvironment)
        var failures: [String] = []
        for report in reports {
            if let error = report.error {
                logger.error("uplink '\(report.name)' (\(report.address)): \(error)")
                failures.append("uplink '\(report.name)' (\(report.address)): \(error)")
            } else {
                logger.info("uplink '\(report.name)' (\(report.address)) is up (\(report.latency))")
            }
        }
        return failures.isEmpty ? nil : failures.joined(separator: "; ")
    }

}

/// Everything the supervisor tracks about one vessel.
struct VesselRecord {
    var vessel: Vessel
    var phase: VesselPhase = .waiting
    var process: (any RunningProcess)?
    var healthy: Bool?
    var restarts = 0
    var memory: MemoryUsage?
    var startedAt: Duration?
    /// Ready now (running and ready, or a completed oneshot).
    var ready = false
    /// Counted for the Launching → Running transition: ready once, or (non-critical) given its chance.
    var settled = false
    var readyWaiters: [CheckedContinuation<Bool, Never>] = []
    var backoff: RestartBackoff
    /// The current process is being restarted because its health checks failed.
    var healthRestart = false
    /// The current process is being restarted because the operator asked (`restart(_:)`).
    var requestedRestart = false
    /// Stopped by the operator (`stopVessel`): not started again until `startVessel`.
    var held = false
    /// A ship with workers: its slots (empty otherwise, and before it starts).
    var slots: [WorkerSlot] = []
    /// A phased restart of the ship (or replacement of the bay) is under way.
    var phasing = false
    /// A bay: which of its two socket paths its current process binds (0: `<name>.sock`, 1:
    /// `<name>.1.sock`); a phased replacement binds the other.
    var socketGeneration = 0
    /// A docked bay's link.
    var bayLink: (any BayLink)?
    /// A bay's processes besides `process` during a phased replacement: the replacement while it
    /// docks, then the process it replaced while that drains.
    var spare: [any RunningProcess] = []
    /// Tells the task holding a docked bay that a replacement took over.
    var bayReplaced: AsyncStream<Void>.Continuation?
    /// A bay's replacement starting and docking (not switched to yet).
    var bayReplacement = PendingReplacement()
    /// Which supervising task is the vessel's (a `startVessel` begins a new one; an older one still
    /// waiting for a dependency must then do nothing).
    var supervision = 0
    var task: Task<Void, Never>?
    var healthTask: Task<Void, Never>?

    init(vessel: Vessel, backoff: RestartBackoff) {
        self.vessel = vessel
        self.backoff = backoff
    }

    func status() -> VesselStatus {
        var status = VesselStatus(
            name: vessel.name, kind: vessel.kind, group: vessel.group, phase: phase, pid: process?.pid,
            healthy: healthy,
            restarts: restarts, memory: memory, startedAt: startedAt,
            routes: vessel.routes.map { "\($0.bind):\($0.pattern.source)" }, critical: vessel.critical)
        if vessel.kind == .bay, let process, !spare.isEmpty {
            status.instances = bayInstances(serving: process)
        }
        guard vessel.restartsInPhases else { return status }
        let instances =
            slots.compactMap { slot in slot.current?.status(draining: false, restarts: slot.restarts) }
            + slots.flatMap { slot in slot.retiring.map { $0.status(draining: true, restarts: slot.restarts) }
            }
        status.workers = vessel.workers
        status.instances = instances
        let serving = instances.filter { !$0.draining }
        status.pid = serving.first?.pid
        status.startedAt = serving.compactMap(\.startedAt).min()
        let memories = instances.compactMap(\.memory)
        status.memory =
            memories.isEmpty
            ? nil
            : MemoryUsage(
                residentBytes: memories.reduce(0) { $0 + $1.residentBytes },
                virtualBytes: memories.reduce(0) { $0 + $1.virtualBytes })
        let checked = serving.compactMap(\.healthy)
        status.healthy = checked.isEmpty ? nil : checked.allSatisfy { $0 }
        if [.starting, .running, .backingOff].contains(phase) {
            status.phase =
                serving.contains(where: \.ready) ? .running : (phase == .running ? .starting : phase)
        }
        return status
    }

    /// A bay during a phased restart, as a ship's instances show in one: the process clients board,
    /// and its replacement while that docks (starting) or the process it replaced while that drains
    /// (until its clients have left and it stopped).
    private func bayInstances(serving process: any RunningProcess) -> [InstanceStatus] {
        let current = InstanceStatus(
            id: Int(process.pid), slot: 0, address: nil, pid: process.pid, ready: phase == .running,
            healthy: healthy, memory: memory, startedAt: startedAt, restarts: restarts)
        return [current]
            + spare.map { other in
                InstanceStatus(
                    id: Int(other.pid), slot: 0, address: nil, pid: other.pid, ready: false,
                    draining: !bayReplacement.isPending, restarts: restarts)
            }
    }

    /// Whether a process of the vessel runs now (for a ship with workers, any of its instances).
    var hasProcess: Bool { process != nil || !spare.isEmpty || slots.contains { !$0.processes.isEmpty } }

    /// Every process of the vessel now.
    var processes: [any RunningProcess] {
        (process.map { [$0] } ?? []) + spare + slots.flatMap(\.processes)
    }
}
