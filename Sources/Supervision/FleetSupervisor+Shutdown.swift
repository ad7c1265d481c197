import ShipManifest

extension FleetSupervisor {
    // MARK: Shutdown

    /// Stops every vessel in reverse dependency order: the stop signal to its process group, up to
    /// `stop_timeout`, then SIGKILL to the group.
    func stopAll() async {
        stopping = true
        for name in graph.nodes {
            resumeWaiters(name, with: false)
            if !records[name]!.hasProcess { records[name]!.task?.cancel() }
        }
        for layer in graph.layers().reversed() {
            await withTaskGroup(of: Void.self) { group in
                for name in layer {
                    group.addTask { await self.stop(name) }
                }
            }
        }
        for name in graph.nodes {
            records[name]!.task?.cancel()
            records[name]!.healthTask?.cancel()
        }
    }

    func stop(_ name: String) async {
        if !records[name]!.spare.isEmpty || (records[name]!.process == nil && records[name]!.hasProcess) {
            await stopEvery(name)
            return
        }
        guard let process = records[name]?.process else {
            if records[name]!.phase != .completed && records[name]!.phase != .failed {
                records[name]!.phase = .stopped
            }
            publish(name)
            return
        }
        let vessel = records[name]!.vessel
        records[name]!.phase = .stopping
        publish(name)
        process.signalGroup(vessel.stopSignal.number)
        let clock = self.clock
        let timeout = vessel.stopTimeout
        let ended: ProcessExit?? = await firstOf([
            { .some(await process.exitStatus()) },
            {
                do { try await clock.sleep(for: timeout) } catch { return nil }
                return .some(nil)  // timed out
            },
        ])
        if case .some(.some(let exit)) = ended {
            logger.info("\(vessel.kind.rawValue) '\(name)' stopped (\(exit))")
        } else {
            logger.warning(
                "\(vessel.kind.rawValue) '\(name)' did not stop within \(DurationText.format(timeout)) of SIG\(vessel.stopSignal.rawValue): sending SIGKILL"
            )
            process.signalGroup(9)
            _ = await process.exitStatus()
        }
        if records[name]!.process?.pid == process.pid {
            records[name]!.process = nil
            records[name]!.memory = nil
        }
        records[name]!.phase = .stopped
        publish(name)
    }

    /// `stop` for a ship with workers, or a bay during a phased replacement: every process at once,
    /// each up to `stop_timeout`.
    private func stopEvery(_ name: String) async {
        let vessel = records[name]!.vessel
        records[name]!.phase = .stopping
        publish(name)
        for slot in records[name]!.slots.indices {
            records[name]!.slots[slot].current?.healthTask?.cancel()
        }
        let clock = self.clock
        let timeout = vessel.stopTimeout
        let signal = vessel.stopSignal
        let logger = self.logger
        let count = records[name]!.processes.count
        await withTaskGroup(of: Void.self) { group in
            for process in records[name]!.processes {
                group.addTask {
                    process.signalGroup(signal.number)
                    let exited = await exits(process, within: timeout, on: clock)
                    if exited != true {
                        logger.warning(
                            "\(vessel.kind.rawValue) '\(name)' (pid \(process.pid)) did not stop within \(DurationText.format(timeout)) of SIG\(signal.rawValue): sending SIGKILL"
                        )
                        process.signalGroup(9)
                        _ = await process.exitStatus()
                    }
                }
            }
        }
        logger.info("\(vessel.kind.rawValue) '\(name)' stopped (\(count) process\(count == 1 ? "" : "es"))")
        for slot in records[name]!.slots.indices {
            records[name]!.slots[slot].current = nil
            records[name]!.slots[slot].retiring = []
        }
        records[name]!.spare = []
        records[name]!.process = nil
        records[name]!.memory = nil
        records[name]!.phase = .stopped
        publish(name)
    }

    // MARK: Prelaunch

    /// Runs the prelaunch jobs in dependency order, independent jobs together; the first failure aborts
    /// (the other running jobs are stopped, nothing else starts). Returns the failure, if any.
    func runPrelaunch() async -> String? {
        let jobs = manifest.prelaunch
        guard !jobs.isEmpty else { return nil }
        transition(.prelaunch)
        let jobGraph = DependencyGraph(
            nodes: jobs.map(\.name),
            dependencies: Dictionary(jobs.map { ($0.name, $0.dependsOn) }, uniquingKeysWith: { a, _ in a }))
        for layer in jobGraph.layers() {
            if shutdownRequested { return nil }
            let results = await withTaskGroup(of: (String, String?).self) { group in
                for name in layer {
                    let job = jobs.first { $0.name == name }!
                    group.addTask { (name, await self.runJob(job)) }
                }
                var results: [(String, String?)] = []
                for await result in group {
                    results.append(result)
                    if result.1 != nil { self.abortPrelaunch() }
                }
                return results
            }
            if shutdownRequested { return nil }
            if let failure = results.first(where: { $0.1 != nil }) { return failure.1 }
        }
        return nil
    }

    /// Runs one job to completion; nil on success, else what went wrong.
    func runJob(_ job: PrelaunchJob) async -> String? {
        let environment = VesselEnvironment.build(
            inherited: context.inheritedEnvironment, settings: manifest.settings, job: job,
            mothershipPID: context.mothershipPID)
        let outputLog = self.outputLog
        let echo = self.echo
        let request = LaunchRequest(
            name: job.name, command: job.command, arguments: job.arguments, environment: environment,
            workingDirectory: context.manifestDirectory,
            output: { line in
                outputLog.append(line)
                echo(line)
            })
        let process: any RunningProcess
        do {
            process = try await ports.launcher.launch(request)
        } catch {
            return "prelaunch job: \(error.description)"
        }
        if shutdownRequested { process.signalGroup(15) }
        prelaunchProcesses[job.name] = process
        logger.info("prelaunch job '\(job.name)' started (pid \(process.pid))")
        let exit = await process.exitStatus()
        prelaunchProcesses[job.name] = nil
        if exit.isSuccess {
            logger.info("prelaunch job '\(job.name)' succeeded")
            return nil
        }
        if shutdownRequested { return "prelaunch job '\(job.name)' was stopped" }
        return "prelaunch job '\(job.name)' \(exit)"
    }

    /// Stops the jobs still running after one failed.
    func abortPrelaunch() {
        for (name, process) in prelaunchProcesses {
            logger.warning("stopping prelaunch job '\(name)': another prelaunch job failed")
            process.signalGroup(15)
            killGroup(of: process, unlessExitedWithin: timing.prelaunchStopTimeout)
        }
    }

    /// SIGKILL to `process`'s group only if it outlives `timeout` (after its stop signal).
    func killGroup(of process: any RunningProcess, unlessExitedWithin timeout: Duration) {
        let clock = self.clock
        Task {
            if await exits(process, within: timeout, on: clock) == false { process.signalGroup(9) }
        }
    }
}

/// Whether `process` exits within `timeout`: true, false when the time ran out first, nil when the
/// wait was cancelled.
func exits<C: Clock>(_ process: any RunningProcess, within timeout: Duration, on clock: C) async -> Bool?
where C.Duration == Duration {
    await firstOf([
        {
            _ = await process.exitStatus()
            return true
        },
        {
            do { try await clock.sleep(for: timeout) } catch { return nil }
            return false
        },
    ])
}
