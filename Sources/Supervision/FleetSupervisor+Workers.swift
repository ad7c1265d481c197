import ShipManifest

/// One process of a ship with `workers` (SPEC §12.2).
struct WorkerInstance {
    /// Its id in the relay's instance set: unique for the run, never reused.
    let id: Int
    let slot: Int
    /// Which of the slot's two addresses it took.
    let generation: Int
    let address: BindAddress?
    let process: any RunningProcess
    let startedAt: Duration
    var ready = false
    var healthy: Bool?
    var memory: MemoryUsage?
    var healthTask: Task<Void, Never>?
}

/// One of a ship's `workers` places: the instance serving in it, and the one it replaces while a
/// phased restart drains it.
struct WorkerSlot {
    var current: WorkerInstance?
    /// Replaced instances still finishing their requests (out of the relay's set).
    var retiring: [WorkerInstance] = []
    /// A phased restart's replacement not ready yet: a stop or a landing stops it too.
    var starting: WorkerInstance?
    var restarts = 0
    var backoff: RestartBackoff
    /// A phased restart starting this slot's replacement.
    var replacement = PendingReplacement()
    /// The current instance was killed by its health checks (a restart, not a crash).
    var healthRestart = false

    init(backoff: RestartBackoff) { self.backoff = backoff }

    var processes: [any RunningProcess] {
        ([current, starting].compactMap { $0?.process }) + retiring.map(\.process)
    }

    /// The generation a new instance takes: the one no live instance of the slot uses (a replacement
    /// must never find its predecessor on its address).
    var freeGeneration: Int? {
        let used = Set([current, starting].compactMap { $0?.generation } + retiring.map(\.generation))
        return [0, 1].first { !used.contains($0) }
    }
}

/// Why a worker's process did not start.
struct StartFailure: Error, CustomStringConvertible {
    var description: String
}

/// Why a phased restart did not replace every worker.
public struct PhasedRestartFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension FleetSupervisor {
    // MARK: Workers (SPEC §12.2)

    /// Runs the ship's instances, one task per slot, until the fleet stops or the ship is held; a
    /// stop-then-start of the whole ship (a reload that changed its worker count or address) runs
    /// them again from the new definition.
    func superviseWorkers(_ name: String, supervision: Int) async {
        while alive(name, supervision) && records[name]!.vessel.restartsInPhases {
            let count = records[name]!.vessel.workers ?? 1
            records[name]!.slots = (0..<count).map { _ in WorkerSlot(backoff: timing.backoff) }
            records[name]!.phase = .starting
            publish(name)
            await withTaskGroup(of: Void.self) { group in
                for slot in 0..<count {
                    group.addTask { await self.runSlot(name, slot, supervision: supervision) }
                }
            }
            guard records[name]!.supervision == supervision else { return }
            records[name]!.ready = false
            if records[name]!.held {
                logger.info("ship '\(name)' stopped on request")
                held(name)
                return
            }
            guard records[name]!.requestedRestart, alive(name, supervision) else { return }
            records[name]!.requestedRestart = false
            records[name]!.restarts += 1
            records[name]!.slots = []
            metrics.countRestart(name)
            logger.notice("ship '\(name)' stopped; starting it again as requested")
        }
    }

    /// Whether the vessel's supervising task `supervision` should go on.
    func alive(_ name: String, _ supervision: Int) -> Bool {
        !stopping && !shutdownRequested && outcome == nil && records[name]!.supervision == supervision
    }

    /// Keeps one slot's instance alive: starts it, waits for it to be ready, follows it through
    /// phased replacements, and restarts it (with backoff) when it exits on its own.
    private func runSlot(_ name: String, _ slot: Int, supervision: Int) async {
        while alive(name, supervision) && !records[name]!.held && !records[name]!.requestedRestart {
            let vessel = records[name]!.vessel
            let instance: WorkerInstance
            switch await startInstance(name, slot) {
            case .success(let started): instance = started
            case .failure(let failure):
                logger.error("\(failure.description)")
                guard await slotFailed(name, slot, uptime: .zero, reason: failure.description) else { return }
                continue
            }
            guard alive(name, supervision) && !records[name]!.held else {
                instance.process.signalGroup(9)
                _ = await instance.process.exitStatus()
                return
            }
            records[name]!.slots[slot].current = instance
            records[name]!.slots[slot].healthRestart = false
            publish(name)
            switch await readiness(of: vessel, at: instance.address, process: instance.process) {
            case .ready, .docked:
                instanceReady(name, slot, id: instance.id)
            case .exited:
                break  // handled below, as any exit
            case .timedOut:
                let reason =
                    "worker \(slot) did not become ready within \(DurationText.format(vessel.startTimeout))"
                logger.error("ship '\(name)' \(reason)")
                instance.process.signalGroup(9)
                if vessel.critical {
                    records[name]!.phase = .failed
                    publish(name)
                    fail(name, reason: reason)
                    return
                }
                settle(name)
            }
            // Waits for the slot's process to exit, following a phased restart's switch to its
            // replacement; a replacement being started when the current one exits is waited for.
            var watched = instance
            var exit: ProcessExit
            while true {
                exit = await watched.process.exitStatus()
                if records[name]!.slots[slot].current?.id == watched.id {
                    records[name]!.slots[slot].current!.healthTask?.cancel()
                    records[name]!.slots[slot].current = nil
                    publish(name)
                    if records[name]!.slots[slot].replacement.isPending {
                        await withCheckedContinuation { records[name]!.slots[slot].replacement.wait($0) }
                    }
                }
                guard let next = records[name]!.slots[slot].current else { break }
                watched = next
            }
            guard alive(name, supervision) else { return }
            if records[name]!.held || records[name]!.requestedRestart {
                logger.info("ship '\(name)' worker \(slot) stopped (\(exit))")
                return
            }
            let healthRestart = records[name]!.slots[slot].healthRestart
            let reason = "worker \(slot) " + (healthRestart ? "was unhealthy" : exit.description)
            guard
                await slotFailed(
                    name, slot, uptime: now - watched.startedAt, reason: reason, health: healthRestart)
            else { return }
        }
    }

    /// A slot's instance exited or could not start: a critical ship takes the fleet down (unless
    /// its health checks killed it), another waits out its backoff. False when the slot stops.
    private func slotFailed(
        _ name: String, _ slot: Int, uptime: Duration, reason: String, health: Bool = false
    ) async -> Bool {
        let vessel = records[name]!.vessel
        if vessel.critical && !health {
            records[name]!.phase = .failed
            publish(name)
            fail(name, reason: reason)
            return false
        }
        if health && vessel.critical { transition(.mayday) }
        if !vessel.critical { settle(name) }
        let delay = records[name]!.slots[slot].backoff.nextDelay(afterRunningFor: uptime)
        records[name]!.slots[slot].restarts += 1
        records[name]!.restarts += 1
        metrics.countRestart(name)
        metrics.countWorkerRestart(name, slot: slot)
        logger.warning(
            "'\(name)' \(reason); restarting it in \(DurationText.format(delay)) (restart #\(records[name]!.slots[slot].restarts) of worker \(slot))"
        )
        publish(name)
        return await waitOutBackoff(delay)
    }

    /// Launches a process for `slot` on the address of the generation no live instance of it uses,
    /// once nothing else answers there.
    private func startInstance(_ name: String, _ slot: Int) async -> Result<WorkerInstance, StartFailure> {
        let vessel = records[name]!.vessel
        guard let generation = records[name]!.slots[slot].freeGeneration else {
            return .failure(StartFailure(description: "worker \(slot) has two instances running already"))
        }
        let address = vessel.instanceAddress(slot: slot, generation: generation)
        if let address, await ports.health.accepts(address, timeout: .seconds(1)) {
            // Another process listens there: its answers would pass for the new instance's readiness.
            return .failure(
                StartFailure(
                    description:
                        "ship '\(name)' worker \(slot) cannot start: \(address) is in use by another process")
            )
        }
        var request = launchRequest(for: vessel)
        request.environment["MS_WORKER"] = String(slot)
        switch address {
        case .tcp(_, let port)?: request.environment["PORT"] = String(port)
        case .unix(let path)?: request.environment["MS_SOCKET_PATH"] = path
        case nil: break
        }
        do {
            let process = try await ports.launcher.launch(request)
            nextInstanceID += 1
            let instance = WorkerInstance(
                id: nextInstanceID, slot: slot, generation: generation, address: address, process: process,
                startedAt: now)
            logger.info(
                "ship '\(name)' worker \(slot) started (pid \(process.pid)\(address.map { ", \($0)" } ?? ""))"
            )
            return .success(instance)
        } catch {
            return .failure(StartFailure(description: error.description))
        }
    }

    /// The slot's current instance `id` answered its readiness check: it takes requests now, and the
    /// ship is ready once every slot has been.
    private func instanceReady(_ name: String, _ slot: Int, id: Int) {
        guard records[name]!.slots[slot].current?.id == id else { return }
        records[name]!.slots[slot].current!.ready = true
        let vessel = records[name]!.vessel
        if vessel.healthcheck != nil { records[name]!.slots[slot].current!.healthy = true }
        records[name]!.slots[slot].backoff = timing.backoff
        startHealthWatch(name, slot)
        logger.info("ship '\(name)' worker \(slot) is ready")
        if !records[name]!.ready && records[name]!.slots.allSatisfy({ $0.current?.ready == true }) {
            markReady(name)
        } else {
            publish(name)
        }
    }

    private func startHealthWatch(_ name: String, _ slot: Int) {
        guard let instance = records[name]!.slots[slot].current, records[name]!.vessel.healthcheck != nil,
            let address = instance.address
        else { return }
        records[name]!.slots[slot].current!.healthTask = Task {
            await self.watchInstanceHealth(name, slot, id: instance.id, address: address)
        }
    }

    /// `watchHealth` for one instance: an unhealthy instance takes no new request while the others
    /// serve; when its breaker opens, its process is killed and the slot restarts it.
    private func watchInstanceHealth(_ name: String, _ slot: Int, id: Int, address: BindAddress) async {
        guard let path = records[name]?.vessel.healthcheck else { return }
        var breaker = timing.breaker
        do {
            try await clock.sleep(for: timing.firstHealthCheckDelay)
            while !Task.isCancelled {
                let healthy = await check(address, path: path)
                guard !Task.isCancelled, let instance = records[name]?.slots[slot].current, instance.id == id
                else { return }
                if instance.healthy != healthy {
                    records[name]!.slots[slot].current!.healthy = healthy
                    publish(name)
                }
                if case .open = breaker.record(success: healthy, at: now) {
                    logger.error(
                        "ship '\(name)' worker \(slot) failed \(timing.breaker.threshold) health checks within \(DurationText.format(timing.breaker.window)): restarting it"
                    )
                    records[name]!.slots[slot].healthRestart = true
                    instance.process.signalGroup(9)
                    return
                } else if !healthy {
                    logger.warning("ship '\(name)' worker \(slot) failed its health check")
                }
                try await clock.sleep(for: timing.healthCheckInterval)
            }
        } catch {
            return
        }
    }

    // MARK: Phased restarts

    /// Replaces the ship's instances one slot at a time: the replacement starts on the other
    /// generation's address, takes requests once ready, and the instance it replaces stops once its
    /// requests have finished (up to `stop_timeout`). A replacement that does not get ready aborts
    /// the restart; the instances not yet replaced keep serving. Returns how many were replaced.
    public func phasedRestart(_ name: String) async throws(ControlRefusal) -> Int {
        let record = try acting(on: name)
        guard record.vessel.restartsInPhases else { throw .notRunning(name, record.phase) }
        guard !record.held else { throw .notRunning(name, .stopped) }
        guard !record.phasing, !record.requestedRestart else { throw .alreadyRestarting(name) }
        guard record.slots.contains(where: { $0.current?.ready == true }) else {
            throw .notRunning(name, record.phase)
        }
        records[name]!.phasing = true
        defer { records[name]?.phasing = false }
        let began = clock.now
        let count = records[name]!.slots.count
        logger.notice("phased restart of '\(name)' begun (\(count) worker\(count == 1 ? "" : "s"))")
        var replaced = 0
        for slot in 0..<count {
            guard !stopping, !shutdownRequested, outcome == nil else { throw .landing }
            guard slot < records[name]!.slots.count, !records[name]!.held else { break }
            // A slot without a ready instance is starting or backing off: it starts from the
            // current definition anyway.
            guard records[name]!.slots[slot].current?.ready == true else { continue }
            do {
                try await replace(name, slot)
            } catch {
                let message = "phased restart of '\(name)' aborted after \(replaced) of \(count): \(error)"
                logger.error("\(message); the workers not replaced keep serving")
                throw .restartAborted(message)
            }
            replaced += 1
        }
        if replaced > 0 {
            records[name]!.restarts += 1
            metrics.countRestart(name)
            publish(name)
        }
        let took = began.duration(to: clock.now)
        logger.notice(
            "phased restart of '\(name)' complete (\(replaced) worker\(replaced == 1 ? "" : "s") replaced in \(DurationText.format(took)))"
        )
        return replaced
    }

    /// Starts `slot`'s replacement, switches the relay to it once ready, then drains and stops the
    /// instance it replaced.
    func replace(_ name: String, _ slot: Int) async throws(PhasedRestartFailure) {
        records[name]!.slots[slot].replacement.begin()
        defer {
            if records[name] != nil, slot < records[name]!.slots.count {
                for waiter in records[name]!.slots[slot].replacement.settle() { waiter.resume() }
            }
        }
        let vessel = records[name]!.vessel
        let fresh: WorkerInstance
        switch await startInstance(name, slot) {
        case .success(let started): fresh = started
        case .failure(let failure): throw PhasedRestartFailure(description: failure.description)
        }
        records[name]!.slots[slot].starting = fresh
        let readiness = await readiness(of: vessel, at: fresh.address, process: fresh.process)
        if records[name] != nil, slot < records[name]!.slots.count {
            records[name]!.slots[slot].starting = nil
        }
        let abort: String? =
            switch readiness {
            case .ready, .docked: nil
            case .exited(let exit): "worker \(slot)'s replacement \(exit) before it was ready"
            case .timedOut:
                "worker \(slot)'s replacement did not become ready within \(DurationText.format(vessel.startTimeout))"
            }
        if abort != nil || stopping || shutdownRequested || outcome != nil || records[name]!.held {
            fresh.process.signalGroup(9)
            _ = await fresh.process.exitStatus()
            throw PhasedRestartFailure(description: abort ?? "the ship is stopping")
        }
        var serving = fresh
        serving.ready = true
        if vessel.healthcheck != nil { serving.healthy = true }
        let old = records[name]!.slots[slot].current
        if var old {
            old.healthTask?.cancel()
            old.healthTask = nil
            records[name]!.slots[slot].retiring.append(old)
        }
        records[name]!.slots[slot].current = serving
        records[name]!.slots[slot].healthRestart = false
        startHealthWatch(name, slot)
        logger.info(
            "ship '\(name)' worker \(slot) replaced by pid \(fresh.process.pid); draining the old one")
        publish(name)
        if let old { await drainAndStop(name, slot, old) }
    }

    /// Waits until the relay has no request in flight on `old` (up to `stop_timeout`), then stops it.
    private func drainAndStop(_ name: String, _ slot: Int, _ old: WorkerInstance) async {
        let vessel = records[name]!.vessel
        let traffic = ports.traffic
        let deadline = clock.now.advanced(by: vessel.stopTimeout)
        // Every relay thread takes the new set before it picks an instance; a sweep at most 100 ms away.
        try? await clock.sleep(for: .milliseconds(250))
        while let traffic, traffic.inFlight(ship: name, instance: old.id) > 0, clock.now < deadline {
            try? await clock.sleep(for: .milliseconds(50))
        }
        if let traffic, traffic.inFlight(ship: name, instance: old.id) > 0 {
            logger.warning(
                "ship '\(name)' worker \(slot): requests still in flight on the old instance after \(DurationText.format(vessel.stopTimeout)); stopping it"
            )
        }
        old.process.signalGroup(vessel.stopSignal.number)
        if await exits(old.process, within: vessel.stopTimeout, on: clock) != true {
            old.process.signalGroup(9)
            _ = await old.process.exitStatus()
        }
        traffic?.forget(ship: name, instance: old.id)
        if records[name] != nil, slot < records[name]!.slots.count {
            records[name]!.slots[slot].retiring.removeAll { $0.id == old.id }
        }
        publish(name)
    }

    /// The relay answered 504 for a request instance `id` of `name` held past `request_timeout`:
    /// with `recycle_stuck`, that slot alone gets a phased restart.
    public func recycleStuck(_ name: String, instance id: Int) {
        guard let record = records[name], record.vessel.recycleStuck, !stopping, !shutdownRequested,
            let slot = record.slots.firstIndex(where: { $0.current?.id == id }),
            !record.slots[slot].replacement.isPending, !record.phasing
        else { return }
        logger.warning("ship '\(name)' worker \(slot) held a request past its request_timeout: replacing it")
        Task {
            do {
                try await self.replace(name, slot)
                self.countRecycle(name)
            } catch {
                self.logger.error("ship '\(name)' worker \(slot) could not be replaced: \(error)")
            }
        }
    }

    private func countRecycle(_ name: String) {
        guard records[name] != nil else { return }
        records[name]!.restarts += 1
        metrics.countRestart(name)
        publish(name)
    }

    /// SIGUSR1: every routed ship and every docked bay restarted, one after another; in phases
    /// where it can be, else stop-then-start.
    public func restartRoutedShips() async {
        for name in graph.nodes {
            guard let record = records[name], !record.held,
                record.vessel.kind == .ship ? !record.vessel.routes.isEmpty : record.bayLink != nil
            else { continue }
            if record.vessel.kind == .ship && !record.vessel.restartsInPhases {
                logger.warning("ship '\(name)' has no workers: restarting it stop-then-start")
            }
            do {
                // In phases for a ship with workers and a docked bay (`restartVessel` chooses).
                try await restartVessel(name)
            } catch {
                logger.error("SIGUSR1: '\(name)' was not restarted: \(error)")
            }
        }
    }

    // MARK: Snapshots

    /// The phase a ship with workers shows: running while an instance serves.
    func workersPhase(_ record: VesselRecord) -> VesselPhase {
        if record.slots.contains(where: { $0.current?.ready == true }) { return .running }
        return record.phase == .running ? .starting : record.phase
    }
}

extension WorkerInstance {
    func status(draining: Bool, restarts: Int) -> InstanceStatus {
        InstanceStatus(
            id: id, slot: slot, address: address, pid: process.pid, ready: ready && !draining,
            healthy: healthy, memory: memory, startedAt: startedAt, draining: draining, restarts: restarts)
    }
}
