import ShipManifest

/// What a reload did, by vessel name.
public struct ReloadSummary: Sendable, Equatable, CustomStringConvertible {
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [String] = []
    public var unchanged: [String] = []

    public init() {}

    /// `reload: 1 added, 1 removed, 2 changed, 5 unchanged` (SPEC §12.3).
    public var description: String {
        "reload: \(added.count) added, \(removed.count) removed, \(changed.count) changed, \(unchanged.count) unchanged"
    }
}

extension FleetSupervisor {
    // MARK: Reload (SPEC §12.3)

    /// Applies a new manifest (already through clearance) to the running fleet: removed vessels
    /// stop (reverse dependency order) and are forgotten, changed ones restart with their new
    /// definition (a stopped one stays stopped, a finished oneshot runs again), new ones start
    /// once their dependencies are ready, and unchanged ones are not touched.
    public func reload(_ next: Manifest) async throws(ControlRefusal) -> ReloadSummary {
        guard !stopping, !shutdownRequested, outcome == nil else { throw .landing }
        guard !reloading else { throw .reloading }
        reloading = true
        defer { reloading = false }

        var summary = ReloadSummary()
        let current = Set(graph.nodes)
        let incoming = Set(next.vessels.map(\.name))
        // `[mothership.env]` and `[mothership] env_file` reach every vessel: a change there changes them all.
        let sharedEnvironmentChanged = manifest.settings.environment != next.settings.environment
        summary.removed = graph.nodes.filter { !incoming.contains($0) }
        for vessel in next.vessels {
            if !current.contains(vessel.name) {
                summary.added.append(vessel.name)
            } else if !sharedEnvironmentChanged && records[vessel.name]!.vessel.hasSameDefinition(as: vessel)
            {
                summary.unchanged.append(vessel.name)
            } else {
                summary.changed.append(vessel.name)
            }
        }

        // Removed vessels go first, dependents before what they depend on.
        let removing = Set(summary.removed)
        for layer in graph.layers().reversed() {
            let names = layer.filter(removing.contains)
            guard !names.isEmpty else { continue }
            await withTaskGroup(of: Void.self) { group in
                for name in names { group.addTask { await self.retire(name) } }
            }
        }

        manifest = next
        graph = DependencyGraph(
            nodes: next.vessels.map(\.name),
            dependencies: Dictionary(
                next.vessels.map { ($0.name, $0.dependsOn) }, uniquingKeysWith: { a, _ in a }))
        var previous: [String: Vessel] = [:]
        for vessel in next.vessels where current.contains(vessel.name) {
            previous[vessel.name] = records[vessel.name]!.vessel
            records[vessel.name]!.vessel = vessel
        }

        for name in summary.changed {
            if previous[name]!.workers != records[name]!.vessel.workers {
                metrics.changeWorkers(of: records[name]!.vessel)
            }
            restartChanged(name, was: previous[name]!)
        }

        for vessel in next.vessels where !current.contains(vessel.name) {
            // A name that was removed by an earlier reload: its old task (if one still waits) must
            // find a different supervision when it wakes.
            let generation = (records[vessel.name]?.supervision ?? 0) + 1
            records[vessel.name] = VesselRecord(vessel: vessel, backoff: timing.backoff)
            records[vessel.name]!.supervision = generation
            metrics.add(vessel)
            publish(vessel.name)
            records[vessel.name]!.task = Task { await self.supervise(vessel.name) }
        }
        metrics.shipsTotal.record(next.vessels.count)
        logger.notice("\(summary.description)")
        changed()
        return summary
    }

    /// Stops a vessel the new manifest no longer has and takes it out of the fleet (its record
    /// stays, out of the graph, so that a task still waiting for a dependency finds it retired).
    private func retire(_ name: String) async {
        records[name]!.held = true
        records[name]!.requestedRestart = false
        records[name]!.supervision += 1
        records[name]!.healthTask?.cancel()
        let waiting = records[name]!.phase == .waiting
        if !records[name]!.hasProcess { records[name]!.task?.cancel() }
        await stop(name)
        // Its task ends now (a process it watched has exited, a backoff sleep was cancelled); one
        // waiting for a dependency ends when it wakes, finding a different supervision.
        if !waiting { await records[name]!.task?.value }
        resumeWaiters(name, with: false)
        records[name]!.phase = .stopped
        records[name]!.settled = true
        metrics.remove(name)
        logger.info("\(records[name]!.vessel.kind.rawValue) '\(name)' removed by the reload")
    }

    /// A vessel whose definition changed: restarted with it now if it runs; a stopped one keeps
    /// the new definition for its next start; a finished oneshot runs again.
    private func restartChanged(_ name: String, was previous: Vessel) {
        let record = records[name]!
        if record.held { return }
        if record.process == nil && record.hasProcess {
            let next = record.vessel
            if next.restartsInPhases && previous.restartsInPhases && next.workers == previous.workers
                && next.bind == previous.bind
            {
                // The same instances and addresses: replaced one at a time, as `restart` does.
                Task {
                    do {
                        _ = try await self.phasedRestart(name)
                    } catch {
                        self.logger.error("reload: '\(name)' was not restarted: \(error)")
                    }
                }
            } else {
                // The worker count or the address changed: every instance stops, then the new
                // definition starts (the slots' task starts them again).
                records[name]!.requestedRestart = true
                records[name]!.phase = .stopping
                publish(name)
                signalWorkers(name, stop: previous)
            }
            return
        }
        if record.bayLink != nil && !record.phasing {
            // A docked bay: its replacement docks beside it and takes the new clients.
            Task {
                do {
                    try await self.replaceBay(name)
                } catch {
                    self.logger.error("reload: '\(name)' was not restarted: \(error)")
                }
            }
            return
        }
        if let process = record.process {
            stopForRestart(name, process)
        } else if record.phase == .completed || record.phase == .failed {
            records[name]!.supervision += 1
            records[name]!.backoff = timing.backoff
            records[name]!.task = Task { await self.supervise(name) }
        }
        // Waiting or backing off: the next start takes the new definition.
    }
}
