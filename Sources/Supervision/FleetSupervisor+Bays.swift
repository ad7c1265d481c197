import ShipManifest

/// What ended a docked bay's run: its process, or its link.
enum DockedEnd: Sendable {
    case exited(ProcessExit)
    case lost(String)
}

extension FleetSupervisor {
    // MARK: Bays

    /// Where and through what a bay docks; nil for ships, or when nothing docks bays.
    func berth(of vessel: Vessel) -> (docking: any BayDocking, socketPath: String)? {
        guard vessel.kind == .bay, let docking = ports.bays, let directory = context.socketDirectory else {
            return nil
        }
        return (docking, VesselEnvironment.socketPath(of: vessel.name, in: directory))
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
    /// (it is then restarted, or takes the fleet down, like any crash). Returns the exit and, when the
    /// link went first, why.
    func holdDocked(
        _ name: String, process: any RunningProcess, link: any BayLink
    ) async -> (ProcessExit, String?) {
        let end: DockedEnd? = await firstOf([
            { @Sendable in DockedEnd.exited(await process.exitStatus()) },
            { @Sendable in Task.isCancelled ? nil : DockedEnd.lost(await link.lost()) },
        ])
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
        case nil:
            return (await process.exitStatus(), nil)
        }
    }
}
