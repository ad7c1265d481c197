import ShipManifest

/// Why the supervisor did not carry out an operator's action on a vessel (the control socket, its
/// commands and the dashboard report it as it is).
public enum ControlRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownVessel(String, suggestion: String?)
    /// The fleet is landing (or has failed): it takes no more actions.
    case landing
    /// Restart or stop of a vessel with no process now (waiting, backing off, done).
    case notRunning(String, VesselPhase)
    /// A restart of a vessel that is being restarted already.
    case alreadyRestarting(String)
    case alreadyStopped(String)
    /// Start of a vessel that was not stopped (or is not a completed oneshot).
    case notStopped(String, VesselPhase)
    /// A reload while another is being applied.
    case reloading
    /// A phased restart stopped: a replacement did not become ready (the others keep serving).
    case restartAborted(String)

    public var description: String {
        switch self {
        case .unknownVessel(let name, let suggestion):
            "unknown vessel '\(name)'" + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
        case .landing: "the fleet is landing"
        case .notRunning(let name, .stopped): "'\(name)' is stopped; start it instead"
        case .notRunning(let name, let phase): "'\(name)' has no running process (it is \(phase.rawValue))"
        case .alreadyRestarting(let name): "'\(name)' is being restarted already"
        case .alreadyStopped(let name): "'\(name)' is stopped already"
        case .notStopped(let name, let phase): "'\(name)' is \(phase.rawValue), not stopped"
        case .reloading: "a reload is being applied; try again when it is done"
        case .restartAborted(let reason): reason
        }
    }
}

extension FleetSupervisor {
    // MARK: Operator actions (control socket, dashboard)

    /// Restarts one running vessel: its stop signal to the process group, up to `stop_timeout`,
    /// then SIGKILL; the supervisor starts it again at once, without backoff and without treating
    /// the exit as a crash (a critical vessel does not take the fleet down). A second restart
    /// while the first is under way is refused: it never starts two processes.
    /// A ship with workers is restarted in phases instead (`phasedRestart`), and this returns when
    /// that is done.
    public func restartVessel(_ name: String) async throws(ControlRefusal) {
        let record = try acting(on: name)
        if record.vessel.restartsInPhases {
            _ = try await phasedRestart(name)
            return
        }
        if record.bayLink != nil {
            try await replaceBay(name)
            return
        }
        guard let process = record.process else { throw .notRunning(name, record.phase) }
        guard !record.requestedRestart else { throw .alreadyRestarting(name) }
        guard !record.held else { throw .notRunning(name, .stopped) }
        logger.notice("restarting \(record.vessel.kind.rawValue) '\(name)' on request")
        stopForRestart(name, process)
    }

    /// Ends the vessel's process (its stop signal, SIGKILL after `stop_timeout`) so that its
    /// supervising task starts it again at once, neither as a crash nor after a backoff.
    func stopForRestart(_ name: String, _ process: any RunningProcess) {
        let vessel = records[name]!.vessel
        records[name]!.requestedRestart = true
        records[name]!.healthTask?.cancel()
        records[name]!.phase = .stopping
        publish(name)
        process.signalGroup(vessel.stopSignal.number)
        killGroup(of: process, unlessExitedWithin: vessel.stopTimeout)
    }

    /// The dashboard's `r`: `restartVessel`, false when it was refused.
    @discardableResult
    public func restart(_ name: String) -> Bool {
        guard let record = records[name], graph.nodes.contains(name) else { return false }
        if record.vessel.restartsInPhases {
            guard !record.phasing, record.hasProcess else { return false }
            Task { _ = try? await self.phasedRestart(name) }
            return true
        }
        if record.bayLink != nil {
            guard !record.phasing, !record.requestedRestart, !record.held else { return false }
            Task { try? await self.replaceBay(name) }
            return true
        }
        guard let process = record.process, !record.requestedRestart, !record.held, !stopping,
            !shutdownRequested, outcome == nil
        else { return false }
        logger.notice("restarting \(record.vessel.kind.rawValue) '\(name)' on request")
        stopForRestart(name, process)
        return true
    }

    /// Stops one vessel and keeps it stopped until `startVessel`: its stop signal, up to
    /// `stop_timeout`, then SIGKILL. What depends on it keeps running (a ship's routes answer 503
    /// meanwhile); its exit is neither a crash nor a reason to restart it.
    public func stopVessel(_ name: String) throws(ControlRefusal) {
        let record = try acting(on: name)
        guard !record.held else { throw .alreadyStopped(name) }
        let vessel = record.vessel
        records[name]!.held = true
        records[name]!.requestedRestart = false
        logger.notice("stopping \(vessel.kind.rawValue) '\(name)' on request")
        if record.process == nil && record.hasProcess {
            // A ship with workers: every instance stops; its slots end as they exit.
            records[name]!.phase = .stopping
            publish(name)
            signalWorkers(name, stop: vessel)
        } else if let process = record.process {
            records[name]!.healthTask?.cancel()
            records[name]!.phase = .stopping
            publish(name)
            // A bay being replaced: its replacement and the process it replaced stop too.
            for process in [process] + record.spare {
                process.signalGroup(vessel.stopSignal.number)
                killGroup(of: process, unlessExitedWithin: vessel.stopTimeout)
            }
        } else {
            // Waiting for its dependencies, backing off or done: its task ends where it is.
            records[name]!.task?.cancel()
            held(name)
        }
    }

    /// Starts a vessel that `stopVessel` stopped (or runs a completed oneshot again). A vessel
    /// still stopping is started again as soon as it has exited.
    public func startVessel(_ name: String) throws(ControlRefusal) {
        let record = try acting(on: name)
        let vessel = record.vessel
        if record.held && record.hasProcess {
            // Still stopping: the supervising task starts it again once it has exited.
            records[name]!.held = false
            records[name]!.requestedRestart = true
            logger.notice("starting \(vessel.kind.rawValue) '\(name)' on request (once it has stopped)")
            return
        }
        guard record.held || record.phase == .completed else { throw .notStopped(name, record.phase) }
        records[name]!.held = false
        records[name]!.backoff = timing.backoff
        records[name]!.supervision += 1
        logger.notice("starting \(vessel.kind.rawValue) '\(name)' on request")
        records[name]!.task = Task { await self.supervise(name) }
    }

    /// The stop signal to every instance of a ship with workers, SIGKILL after `stop_timeout`.
    func signalWorkers(_ name: String, stop vessel: Vessel) {
        for slot in records[name]!.slots.indices {
            records[name]!.slots[slot].current?.healthTask?.cancel()
        }
        for process in records[name]!.processes {
            process.signalGroup(vessel.stopSignal.number)
            killGroup(of: process, unlessExitedWithin: vessel.stopTimeout)
        }
    }

    /// The record of `name` if the fleet takes actions now.
    func acting(on name: String) throws(ControlRefusal) -> VesselRecord {
        // A vessel a reload removed keeps its record, out of the graph.
        guard let record = records[name], graph.nodes.contains(name) else {
            throw .unknownVessel(name, suggestion: Suggestion.nearest(to: name, in: graph.nodes))
        }
        guard !stopping, !shutdownRequested, outcome == nil else { throw .landing }
        return record
    }

    /// A vessel stopped on request has no process now: it shows as stopped, counts as settled
    /// (the fleet still reaches Running), and is not ready for anything that starts later.
    func held(_ name: String) {
        records[name]!.phase = .stopped
        records[name]!.ready = false
        records[name]!.process = nil
        records[name]!.slots = []
        records[name]!.memory = nil
        records[name]!.healthy = nil
        publish(name)
        settle(name)
    }
}
