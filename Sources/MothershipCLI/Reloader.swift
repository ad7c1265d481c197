import Control
import Logging
import Payloads
import Relay
import ShipManifest
import Supervision
import Synchronization

/// `mothership reload`, `POST /v1/reload` and SIGHUP (SPEC §12.3): the manifest read again and
/// through clearance, then applied to the running fleet. The relay's part (binds, routes, static
/// dirs, compression, CORS cache, rate limits, modules, TLS certificates) is swapped in place:
/// new binds listen and modules load before anything changes (a failure there changes nothing),
/// then the supervisor applies the fleet's difference, then every bind takes its new settings.
/// What is the process's own (relay workers, metrics port, control socket, log files) and the
/// set of bays (their sockets are made at launch) still needs a landing and a new run.
final class Reloader: Sendable {
    private let path: String
    private let isProcfile: Bool
    private let selection: TagSelection
    private let running: Mutex<Manifest>
    private let supervisor: FleetSupervisor<ContinuousClock>
    /// The relay and the modules it runs (a reload that changes them loads a new set); nil until
    /// the relay has started (a reload before then is refused).
    private let front = Mutex<(relay: RelayServer, payloads: PayloadSet?)?>(nil)
    private let manifestDirectory: String
    private let busy = Mutex(false)
    private let systemd: SystemdNotifier?
    private let logger: Logger

    init(
        path: String, isProcfile: Bool = false, selection: TagSelection, manifest: Manifest,
        manifestDirectory: String, supervisor: FleetSupervisor<ContinuousClock>,
        systemd: SystemdNotifier?, logger: Logger
    ) {
        self.path = path
        self.isProcfile = isProcfile
        self.selection = selection
        running = Mutex(manifest)
        self.manifestDirectory = manifestDirectory
        self.supervisor = supervisor
        self.systemd = systemd
        self.logger = logger
    }

    /// The relay has started: reloads can be applied from now on.
    func attach(relay: RelayServer, payloads: PayloadSet?) {
        front.withLock { $0 = (relay, payloads) }
    }

    /// The modules the relay runs now (the dashboard reads their counters).
    var currentPayloads: PayloadSet? { front.withLock { $0?.payloads } }

    func reload() async -> ReloadOutcome {
        systemd?.send("RELOADING=1\nSTATUS=Reloading")
        let outcome = await apply()
        systemd?.send("READY=1\nSTATUS=\(await supervisor.state.rawValue)")
        switch outcome {
        case .applied: break  // the supervisor logged the summary
        case .refused(let reason, let details):
            logger.error(
                "reload refused: \(reason)\(details.isEmpty ? "" : "\n" + details.joined(separator: "\n"))")
        }
        return outcome
    }

    private func apply() async -> ReloadOutcome {
        guard
            busy.withLock({ busy in
                defer { busy = true }; return !busy
            })
        else {
            return .refused(reason: "a reload is being applied; try again when it is done", details: [])
        }
        defer { busy.withLock { $0 = false } }
        guard let (relay, currentSet) = front.withLock({ $0 }) else {
            return .refused(
                reason: "the fleet is still starting; nothing changed: try again in a moment", details: [])
        }
        let file: ManifestFile
        do {
            file = try ManifestFile.load(path, procfile: isProcfile, selection: selection, purpose: .run)
        } catch {
            return .refused(reason: "\(error.description); nothing changed", details: [])
        }
        guard let next = file.manifest else {
            let errors = file.diagnostics.filter { $0.severity == .error }.map { $0.rendered(file: path) }
            return .refused(
                reason: "\(path): \(errors.count) error\(errors.count == 1 ? "" : "s"); nothing changed",
                details: errors)
        }
        let current = running.withLock { $0 }
        let fixed = FixedShape(current).differences(from: FixedShape(next))
        guard fixed.isEmpty else {
            return .refused(
                reason:
                    "reload cannot change \(fixed.joined(separator: ", ")) in place; nothing changed: land the fleet and run it again to apply it",
                details: [])
        }
        // Modules load before anything changes; an unchanged set keeps its instances and counters.
        var nextSet: PayloadSet?
        do {
            let loaded = try PayloadSet.load(
                manifest: next, manifestDirectory: manifestDirectory, logger: logger)
            if let loaded, let currentSet, loaded.hasSameModules(as: currentSet) {
                nextSet = currentSet
            } else {
                nextSet = loaded
            }
        } catch {
            return .refused(reason: "\(error); nothing changed", details: [])
        }
        let prepared: RelayServer.PreparedReload
        do {
            prepared = try await relay.prepare(next, hooks: nextSet)
        } catch {
            return .refused(reason: "\(error); nothing changed", details: [])
        }
        let summary: ReloadSummary
        do {
            summary = try await supervisor.reload(next)
        } catch {
            await relay.abandon(prepared)
            return .refused(reason: "\(error.description); nothing changed", details: [])
        }
        do {
            try await relay.commit(prepared)
        } catch {
            // Only the relay's first worker threads can fail here (a new plain bind when the
            // manifest had none): the fleet changed, the new bind does not serve.
            logger.error("reload: the relay could not take the new binds: \(error)")
        }
        logger.notice(
            "reload: relay: \(prepared.kept) bind\(prepared.kept == 1 ? "" : "s") took new settings, \(prepared.added.count) added, \(prepared.moved.count) moved, \(prepared.removed.count) removed"
        )
        front.withLock { $0 = (relay, nextSet) }
        running.withLock { $0 = next }
        return .applied(summary)
    }
}

/// What a reload cannot change in place, each part as comparable text: the process's own
/// settings, and the bays (their docking sockets are made at launch).
struct FixedShape: Equatable {
    let parts: [(name: String, text: String)]

    static func == (lhs: FixedShape, rhs: FixedShape) -> Bool { lhs.differences(from: rhs).isEmpty }

    init(_ manifest: Manifest) {
        let settings = manifest.settings
        parts = [
            (
                "the bays",
                manifest.bays.map { "\($0.name) deflate=\($0.permessageDeflate)" }.joined(separator: ",")
            ),
            ("relay_workers", String(describing: settings.relayWorkers)),
            ("metrics_port", String(describing: settings.metricsPort)),
            ("control_socket", String(describing: settings.controlSocket)),
            ("[mothership.logs]", String(describing: settings.logs)),
            // Compared, never shown: the token is a secret.
            ("[mothership.dashboard]", String(describing: settings.dashboard)),
        ]
    }

    /// The names of the parts that differ.
    func differences(from other: FixedShape) -> [String] {
        zip(parts, other.parts).filter { $0.text != $1.text }.map(\.0.name)
    }
}
