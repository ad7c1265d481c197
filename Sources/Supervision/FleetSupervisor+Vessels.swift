import ShipManifest

/// How a start attempt ended before the vessel became ready.
enum Readiness: Sendable {
    case ready
    /// A bay docked: ready, with its link.
    case docked(any BayLink)
    case exited(ProcessExit)
    case timedOut
}

extension FleetSupervisor {
    // MARK: One vessel's life

    /// Waits for the dependencies, then starts the vessel and keeps it alive until the fleet stops.
    func supervise(_ name: String) async {
        let supervision = records[name]!.supervision
        for dependency in records[name]!.vessel.dependsOn {
            guard await waitReady(dependency, for: name) else { return }
        }
        while !stopping && outcome == nil && !shutdownRequested {
            guard records[name]!.supervision == supervision else { return }
            // Read again each time round: a reload may have changed the definition.
            let vessel = records[name]!.vessel
            if records[name]!.held {
                held(name)
                return
            }
            if vessel.restartsInPhases {
                // Its instances run in slots; a reload that takes `workers` away comes back here.
                await superviseWorkers(name, supervision: supervision)
                guard alive(name, supervision), !records[name]!.held, !records[name]!.vessel.restartsInPhases
                else { return }
                continue
            }
            records[name]!.phase = .starting
            publish(name)
            let process: any RunningProcess
            var request = launchRequest(for: vessel)
            if let berth = berth(of: vessel) {
                berth.docking.prepare(bay: name, socketPath: berth.socketPath)
                request.environment["MS_SOCKET_PATH"] = berth.socketPath
            }
            do {
                process = try await ports.launcher.launch(request)
            } catch {
                logger.error("\(error.description)")
                if vessel.critical {
                    records[name]!.phase = .failed
                    publish(name)
                    fail(name, reason: error.description)
                    return
                }
                guard await restartAfterCrash(name, uptime: .zero, reason: error.description) else { return }
                continue
            }
            guard !stopping && !shutdownRequested && outcome == nil && !records[name]!.held else {
                process.signalGroup(9)
                _ = await process.exitStatus()
                if records[name]!.held { held(name) }
                return
            }
            let startedAt = now
            records[name]!.process = process
            records[name]!.startedAt = startedAt
            records[name]!.healthy = nil
            records[name]!.healthRestart = false
            records[name]!.requestedRestart = false
            logger.info("\(vessel.kind.rawValue) '\(name)' started (pid \(process.pid))")
            publish(name)

            var exit: ProcessExit
            /// Why the bay's link was lost, when that (not an exit) ended the process.
            var linkLost: String?
            switch await readiness(of: vessel, at: vessel.bind, process: process) {
            case .docked(let link):
                logger.info("bay '\(name)' docked")
                markReady(name)
                (exit, linkLost) = await holdDocked(name, process: process, link: link)
            case .ready:
                if vessel.oneshot {
                    markCompleted(name)
                    return
                }
                markReady(name)
                if vessel.healthcheck != nil, let address = vessel.bind {
                    records[name]!.healthTask = Task {
                        await self.watchHealth(name, address: address, process: process)
                    }
                }
                exit = await process.exitStatus()
                records[name]!.healthTask?.cancel()
                records[name]!.healthTask = nil
            case .exited(let status):
                exit = status
            case .timedOut:
                logger.error(
                    "\(vessel.kind.rawValue) '\(name)' did not become ready within \(DurationText.format(vessel.startTimeout))"
                )
                if vessel.critical {
                    fail(
                        name,
                        reason: "did not become ready within \(DurationText.format(vessel.startTimeout))")
                    return
                }
                settle(name)
                let waiting = graph.dependents(of: name)
                if !waiting.isEmpty {
                    logger.warning(
                        "'\(name)' is not ready: \(waiting.joined(separator: ", ")) keep waiting for it")
                }
                process.signalGroup(9)
                exit = await process.exitStatus()
            }
            records[name]!.process = nil
            records[name]!.ready = false
            records[name]!.memory = nil  // the next process is sampled afresh
            guard !stopping && !shutdownRequested && outcome == nil else { return }
            if records[name]!.held {
                logger.info("\(vessel.kind.rawValue) '\(name)' stopped on request (\(exit))")
                held(name)
                return
            }
            if records[name]!.requestedRestart {
                // Asked for, so neither a crash (critical or not) nor a reason to back off.
                records[name]!.requestedRestart = false
                records[name]!.restarts += 1
                metrics.countRestart(name)
                logger.notice("\(vessel.kind.rawValue) '\(name)' \(exit); restarting it as requested")
                continue
            }
            let reason = linkLost.map { "lost its docking link (\($0))" } ?? exit.description
            let healthRestart = records[name]!.healthRestart
            if vessel.critical && !healthRestart {
                records[name]!.phase = .failed
                publish(name)
                fail(name, reason: reason)
                return
            }
            if healthRestart && vessel.critical { transition(.mayday) }
            guard
                await restartAfterCrash(
                    // A bay's phased replacement started the process that ended later.
                    name, uptime: now - (records[name]!.startedAt ?? startedAt),
                    reason: healthRestart ? "was unhealthy" : reason)
            else { return }
        }
    }

    /// A critical vessel is gone: a startup failure before Running, a crash after.
    func fail(_ name: String, reason: String) {
        let kind = records[name]!.vessel.kind.rawValue
        if lifecycle == .running || lifecycle == .mayday {
            decide(.crashed(vessel: name, reason: reason))
        } else {
            decide(.failed("\(kind) '\(name)' \(reason)"))
        }
    }

    /// Counts the restart, waits out the backoff; false when the fleet is stopping meanwhile.
    func restartAfterCrash(_ name: String, uptime: Duration, reason: String) async -> Bool {
        let delay = records[name]!.backoff.nextDelay(afterRunningFor: uptime)
        records[name]!.restarts += 1
        metrics.countRestart(name)
        records[name]!.phase = .backingOff
        if !records[name]!.vessel.critical { settle(name) }
        let restarts = records[name]!.restarts
        logger.warning(
            "'\(name)' \(reason); restarting in \(DurationText.format(delay)) (restart #\(restarts))")
        publish(name)
        return await waitOutBackoff(delay)
    }

    /// Sleeps a restart delay; false when the fleet began stopping meanwhile (or the wait was cancelled).
    func waitOutBackoff(_ delay: Duration) async -> Bool {
        do {
            try await clock.sleep(for: delay)
        } catch {
            return false
        }
        return !stopping && !shutdownRequested && outcome == nil
    }

    /// Races readiness against the process exiting and the start timeout.
    func readiness(of vessel: Vessel, at address: BindAddress?, process: any RunningProcess) async
        -> Readiness
    {
        let clock = self.clock
        let timeout = vessel.startTimeout
        if let berth = berth(of: vessel) { return await docking(vessel, at: berth, process: process) }
        if vessel.oneshot {
            // A oneshot is ready when it exited 0; it may run longer than the start timeout.
            let exit = await process.exitStatus()
            return exit.isSuccess ? .ready : .exited(exit)
        }
        let health = ports.health
        let interval = timing.readinessPollInterval
        let probe: (@Sendable () async -> Bool)?
        if let address {
            if let path = vessel.healthcheck {
                probe = { await health.probe(address, path: path, timeout: .seconds(2)) }
            } else {
                probe = { await health.accepts(address, timeout: .seconds(1)) }
            }
        } else {
            probe = nil
        }
        guard let probe else { return .ready }
        let result: Readiness? = await firstOf([
            { .exited(await process.exitStatus()) },
            {
                while !Task.isCancelled {
                    if await probe() { return .ready }
                    do { try await clock.sleep(for: interval) } catch { return nil }
                }
                return nil
            },
            {
                do { try await clock.sleep(for: timeout) } catch { return nil }
                return .timedOut
            },
        ])
        return result ?? .timedOut
    }

    func markReady(_ name: String) {
        records[name]!.ready = true
        records[name]!.settled = true
        records[name]!.phase = .running
        let vessel = records[name]!.vessel
        if vessel.healthcheck != nil { records[name]!.healthy = true }
        logger.info("\(vessel.kind.rawValue) '\(name)' is ready")
        if lifecycle == .mayday,
            records.values.allSatisfy({ !$0.vessel.critical || $0.ready || $0.vessel.oneshot })
        {
            transition(.running)
        }
        resumeWaiters(name, with: true)
        publish(name)
        changed()
    }

    func markCompleted(_ name: String) {
        records[name]!.process = nil
        records[name]!.ready = true
        records[name]!.settled = true
        records[name]!.phase = .completed
        logger.info("oneshot '\(name)' completed")
        resumeWaiters(name, with: true)
        publish(name)
        changed()
    }

    func settle(_ name: String) {
        guard !records[name]!.settled else { return }
        records[name]!.settled = true
        changed()
    }

    /// Suspends until `dependency` is ready; false when the fleet stops first.
    func waitReady(_ dependency: String, for dependent: String) async -> Bool {
        guard !stopping && !shutdownRequested && outcome == nil else { return false }
        if records[dependency]?.ready == true { return true }
        guard records[dependency] != nil else { return true }
        return await withCheckedContinuation { records[dependency]!.readyWaiters.append($0) }
    }

    func resumeWaiters(_ name: String, with value: Bool) {
        let waiters = records[name]!.readyWaiters
        records[name]!.readyWaiters = []
        for waiter in waiters { waiter.resume(returning: value) }
    }

    // MARK: Health

    /// Checks a ready ship: first after `firstHealthCheckDelay`, then every `healthCheckInterval`; each
    /// check tries up to three times. When the breaker opens, the process is killed and restarted.
    func watchHealth(_ name: String, address: BindAddress, process: any RunningProcess) async {
        guard let path = records[name]?.vessel.healthcheck else { return }
        var breaker = timing.breaker
        do {
            try await clock.sleep(for: timing.firstHealthCheckDelay)
            while !Task.isCancelled {
                let healthy = await check(address, path: path)
                guard !Task.isCancelled, records[name]?.process?.pid == process.pid else { return }
                switch breaker.record(success: healthy, at: now) {
                case .healthy:
                    setHealthy(name, true)
                case .degraded(let failures):
                    setHealthy(name, healthy)
                    if !healthy {
                        logger.warning(
                            "ship '\(name)' failed its health check (\(failures) in the last minute)")
                    }
                case .open:
                    setHealthy(name, false)
                    logger.error(
                        "ship '\(name)' failed \(timing.breaker.threshold) health checks within \(DurationText.format(timing.breaker.window)): restarting it"
                    )
                    records[name]!.healthRestart = true
                    process.signalGroup(9)
                    return
                }
                try await clock.sleep(for: timing.healthCheckInterval)
            }
        } catch {
            return
        }
    }

    /// One health check: up to three attempts with a short backoff.
    func check(_ address: BindAddress, path: String) async -> Bool {
        var delays = timing.healthAttemptDelays[...]
        while true {
            if await ports.health.probe(address, path: path, timeout: timing.healthCheckTimeout) {
                return true
            }
            guard let delay = delays.popFirst(), !Task.isCancelled else { return false }
            do { try await clock.sleep(for: delay) } catch { return false }
        }
    }

    func setHealthy(_ name: String, _ healthy: Bool) {
        guard records[name]?.healthy != healthy else { return }
        records[name]!.healthy = healthy
        publish(name)
    }

    // MARK: Memory

    func sampleMemory() async {
        while !Task.isCancelled {
            for name in graph.nodes {
                guard let record = records[name] else { continue }
                if let process = record.process {
                    records[name]!.memory = process.memory()
                    publish(name)
                    continue
                }
                guard record.hasProcess else { continue }
                for slot in record.slots.indices {
                    if let process = record.slots[slot].current?.process {
                        records[name]!.slots[slot].current!.memory = process.memory()
                    }
                    for index in record.slots[slot].retiring.indices {
                        records[name]!.slots[slot].retiring[index].memory =
                            record.slots[slot].retiring[index].process.memory()
                    }
                }
                publish(name)
            }
            do { try await clock.sleep(for: timing.memorySampleInterval) } catch { return }
        }
    }

    // MARK: Launch requests and metrics

    func launchRequest(for vessel: Vessel) -> LaunchRequest {
        let environment = VesselEnvironment.build(
            inherited: context.inheritedEnvironment, settings: manifest.settings, vessel: vessel,
            mothershipPID: context.mothershipPID, socketDirectory: context.socketDirectory)
        let outputLog = self.outputLog
        let echo = self.echo
        return LaunchRequest(
            name: vessel.name, command: vessel.command, arguments: vessel.arguments, environment: environment,
            workingDirectory: resolve(vessel.workingDirectory),
            output: { line in
                outputLog.append(line)
                echo(line)
            })
    }

    /// A manifest path made absolute against the manifest's directory.
    func resolve(_ path: String?) -> String {
        guard let path else { return context.manifestDirectory }
        if path.hasPrefix("/") { return path }
        return context.manifestDirectory + "/" + path
    }

    func publish(_ name: String) {
        guard let record = records[name] else { return }
        let status = record.status()
        metrics.update(status)
        onVesselChange(status)
    }
}
