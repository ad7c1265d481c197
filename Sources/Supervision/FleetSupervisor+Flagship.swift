import ShipManifest

extension FleetSupervisor {
    // MARK: Election and prelaunch

    /// Runs the prelaunch jobs, or with `[mothership.flagship]` first elects: the flagship runs them
    /// and signals the outcome, an escort skips them (waiting for the flagship's signal where the
    /// election says so). Returns the failure, if any; nil also when a shutdown interrupted it.
    func electAndPrelaunch() async -> String? {
        guard let settings = manifest.settings.flagship else { return await runPrelaunch() }
        transition(.electing)
        guard let elector = ports.elector else {
            return "flagship election ([mothership.flagship]) has no elector in this build"
        }
        let role: FlagshipRole
        do {
            role = try await untilShutdown { try await elector.elect() }
        } catch {
            return shutdownRequested ? nil : "flagship election: \(error)"
        }
        switch role {
        case .flagship(let ticket):
            logger.notice("elected flagship for \(ticket): running prelaunch")
            transition(.prelaunch, detail: "flagship")
            return await prelaunchAsFlagship(ticket)
        case .escort(let watch):
            guard watch.waitsForFlagship else {
                logger.notice("escort for \(watch): skipping prelaunch")
                await watch.release()
                return nil
            }
            logger.notice(
                "escort for \(watch): waiting for the flagship's prelaunch (up to \(DurationText.format(settings.prelaunchTimeout)))"
            )
            transition(.prelaunch, detail: "escort: waiting for the flagship")
            do {
                try await untilShutdown { try await watch.awaitFlagship() }
            } catch {
                await watch.release()
                return shutdownRequested ? nil : "\(error)"
            }
            await watch.release()
            logger.notice("the flagship signalled ready: launching")
            return nil
        }
    }

    /// The flagship's prelaunch: the jobs, then the signal to the escorts, the lock released on every path.
    private func prelaunchAsFlagship(_ ticket: any FlagshipTicket) async -> String? {
        let failure = await runPrelaunch()
        if let failure {
            await ticket.prelaunchFailed(failure)
            await ticket.release()
            if ticket.signalsEscorts { logger.notice("escorts told to abort: \(failure)") }
            return failure
        }
        if shutdownRequested {
            await ticket.prelaunchFailed("the flagship was shut down before its prelaunch finished")
            await ticket.release()
            return nil
        }
        do {
            try await ticket.prelaunchSucceeded()
        } catch {
            await ticket.release()
            return "prelaunch succeeded but the escorts could not be told: \(error)"
        }
        await ticket.release()
        logger.notice(ticket.signalsEscorts ? "prelaunch done: escorts signalled ready" : "prelaunch done")
        return nil
    }

    /// Runs `operation` in a task that `requestShutdown()` and `killNow()` cancel.
    private func untilShutdown<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T)
        async throws
        -> T
    {
        let task = Task { try await operation() }
        cancelElection = { task.cancel() }
        defer { cancelElection = nil }
        if shutdownRequested { task.cancel() }
        return try await task.value
    }
}
