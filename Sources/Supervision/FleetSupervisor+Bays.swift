import ShipManifest

/// What ended a docked bay's run: its process, or its link.
enum DockedEnd: Sendable {
    case exited(ProcessExit)
    case lost(String)
    /// A phased replacement took over.
    case replaced
}

extension FleetSupervisor {
    // MARK: Bays

    /// Where and through what a bay docks (its current socket path, see `socketGeneration`); nil
    /// for ships, or when nothing docks bays.
    func berth(of vessel: Vessel) -> (docking: any BayDocking, socketPath: String)? {
        guard vessel.kind == .bay, let docking = ports.bays, let directory = context.socketDirectory else {
            return nil
        }
        let generation = records[vessel.name]?.socketGeneration ?? 0
        return (docking, VesselEnvironment.socketPath(of: vessel.name, in: directory, generation: generation))
    }

    /// A bay is ready once it has docked; the docking attempt races the process exiting (the
    /// attempt retries until the start timeout on its own).
    func docking(
        _ vessel: Vessel, at berth: (docking: any BayDocking, socketPath: String), process: any RunningProcess
    ) async -> Readiness {
        let (docking, socketPath) = berth
        let name = vessel.name
        let config = vessel.config
        let timeout = vessel.startTimeout
        let logger = self.logger
        let result: Readiness? = await firstOf([
            { .exited(await process.exitStatus()) },
            {
                do {
                    let link = try await docking.dock(
                        bay: name, socketPath: socketPath, config: config, timeout: timeout)
                    if Task.isCancelled {
                        link.close()
                        return nil
                    }
                    return .docked(link)
                } catch {
                    if Task.isCancelled { return nil }
                    logger.error("bay '\(name)' did not dock: \(error)")
                    return .timedOut
                }
            },
        ])
        return result ?? .timedOut
    }

    /// Keeps a docked bay until its process exits or its link is lost; a lost link stops the process
    /// (it is then restarted, or takes the fleet down, like any crash). A phased replacement hands
    /// the hold over to the new process and its link. Returns the exit and, when the link went
    /// first, why.
    func holdDocked(
        _ name: String, process: any RunningProcess, link: any BayLink
    ) async -> (ProcessExit, String?) {
        var (process, link) = (process, link)
        while true {
            records[name]!.bayLink = link
            let (replaced, signal) = AsyncStream<Void>.makeStream()
            records[name]!.bayReplaced = signal
            let (held, heldLink) = (process, link)
            let end: DockedEnd? = await firstOf([
                { @Sendable in DockedEnd.exited(await held.exitStatus()) },
                { @Sendable in Task.isCancelled ? nil : DockedEnd.lost(await heldLink.lost()) },
                { @Sendable in
                    for await _ in replaced { return DockedEnd.replaced }
                    return nil
                },
            ])
            records[name]!.bayReplaced = nil
            // The held process (or its link) ended while its replacement was docking: whether that
            // docks decides what the end means.
            if case .replaced? = end {
            } else if records[name]!.bayReplacement.isPending {
                await withCheckedContinuation { records[name]!.bayReplacement.wait($0) }
            }
            if let next = records[name]!.process, next.pid != process.pid,
                let nextLink = records[name]!.bayLink
            {
                (process, link) = (next, nextLink)
                continue
            }
            records[name]!.bayLink = nil
            link.close()
            switch end {
            case .exited(let exit)?: return (exit, nil)
            case .lost(let reason)?:
                guard !stopping && !shutdownRequested && outcome == nil else {
                    return (await process.exitStatus(), nil)
                }
                logger.error("bay '\(name)' lost its docking link: \(reason); stopping it")
                process.signalGroup(9)
                return (await process.exitStatus(), reason)
            case .replaced?, nil:
                return (await process.exitStatus(), nil)
            }
        }
    }

    /// The replacement docked and took over, or will not: the tasks waiting for that go on.
    private func bayDockingSettled(_ name: String) {
        for waiter in records[name]!.bayReplacement.settle() { waiter.resume() }
    }

    // MARK: Phased replacement (SPEC §12.2)

    /// Replaces a docked bay without closing its clients at once: the new process binds the other
    /// of the bay's two socket paths and docks; from then on new clients board it, while the old
    /// process keeps the clients it has until they leave (up to `stop_timeout`, after which they
    /// are closed with 1001 and may reconnect); then the old process is stopped. A replacement that
    /// does not dock within `start_timeout` aborts the restart, and the old process keeps serving.
    func replaceBay(_ name: String) async throws(ControlRefusal) {
        let record = try acting(on: name)
        guard !record.held else { throw .notRunning(name, .stopped) }
        guard !record.phasing, !record.requestedRestart else { throw .alreadyRestarting(name) }
        guard record.ready, let old = record.process, let oldLink = record.bayLink,
            let docking = ports.bays, let directory = context.socketDirectory
        else { throw .notRunning(name, record.phase) }
        records[name]!.phasing = true
        records[name]!.bayReplacement.begin()
        defer {
            if records[name] != nil {
                records[name]!.phasing = false
                bayDockingSettled(name)
            }
        }
        let began = clock.now
        let vessel = record.vessel
        let generation = 1 - record.socketGeneration
        let socketPath = VesselEnvironment.socketPath(of: name, in: directory, generation: generation)
        logger.notice("phased restart of bay '\(name)' begun")
        docking.prepare(bay: name, socketPath: socketPath)
        var request = launchRequest(for: vessel)
        request.environment["MS_SOCKET_PATH"] = socketPath
        let fresh: any RunningProcess
        do {
            fresh = try await ports.launcher.launch(request)
        } catch {
            throw abortBayRestart(name, "its replacement did not start: \(error.description)")
        }
        records[name]!.spare.append(fresh)
        logger.info("bay '\(name)' replacement started (pid \(fresh.pid), \(socketPath))")
        let readiness = await self.docking(vessel, at: (docking, socketPath), process: fresh)
        var link: (any BayLink)?
        var failure: String?
        switch readiness {
        case .docked(let docked): link = docked
        case .exited(let exit): failure = "its replacement \(exit) before it docked"
        case .timedOut, .ready:
            failure =
                "its replacement did not dock on \(socketPath) within \(DurationText.format(vessel.startTimeout)) (a bay must bind $MS_SOCKET_PATH)"
        }
        if stopping || shutdownRequested || outcome != nil || records[name]!.held {
            failure = "the bay is stopping"
        }
        guard let link, failure == nil else {
            link?.close()
            fresh.signalGroup(9)
            _ = await fresh.exitStatus()
            records[name]?.spare.removeAll { $0.pid == fresh.pid }
            throw abortBayRestart(name, failure ?? "its replacement did not dock")
        }
        // The relay sends new clients to the new link since it moored; the supervisor follows.
        records[name]!.spare.removeAll { $0.pid == fresh.pid }
        records[name]!.spare.append(old)
        records[name]!.process = fresh
        records[name]!.bayLink = link
        records[name]!.socketGeneration = generation
        records[name]!.startedAt = now
        records[name]!.memory = nil
        records[name]!.bayReplaced?.yield()
        bayDockingSettled(name)
        logger.info("bay '\(name)' replaced by pid \(fresh.pid): new clients board it; draining the old one")
        publish(name)
        await drainBay(name, old, link: oldLink)
        records[name]!.restarts += 1
        metrics.countRestart(name)
        publish(name)
        logger.notice(
            "phased restart of bay '\(name)' complete (replaced in \(DurationText.format(began.duration(to: clock.now))))"
        )
    }

    private func abortBayRestart(_ name: String, _ reason: String) -> ControlRefusal {
        let message = "phased restart of bay '\(name)' aborted: \(reason)"
        logger.error("\(message); the old process keeps serving")
        return .restartAborted(message)
    }

    /// Waits until the replaced process's clients have left (up to `stop_timeout`), closes the rest
    /// with 1001, then stops the process.
    private func drainBay(_ name: String, _ old: any RunningProcess, link: any BayLink) async {
        let vessel = records[name]!.vessel
        let deadline = clock.now.advanced(by: vessel.stopTimeout)
        var left = await link.passengers()
        while left > 0, clock.now < deadline, !stopping, !shutdownRequested, !records[name]!.held {
            try? await clock.sleep(for: .milliseconds(100))
            left = await link.passengers()
        }
        if left > 0 {
            logger.warning(
                "bay '\(name)': \(left) client\(left == 1 ? "" : "s") still on the old process after \(DurationText.format(vessel.stopTimeout)); closing them (1001, they may reconnect)"
            )
        }
        await link.retire()
        old.signalGroup(vessel.stopSignal.number)
        if await exits(old, within: vessel.stopTimeout, on: clock) != true {
            old.signalGroup(9)
            _ = await old.exitStatus()
        }
        records[name]?.spare.removeAll { $0.pid == old.pid }
        publish(name)
    }
}
