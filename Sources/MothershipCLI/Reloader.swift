import Control
import Logging
import ShipManifest
import Supervision
import Synchronization

/// `mothership reload`, `POST /v1/reload` and SIGHUP (SPEC §12.3): the manifest read again and
/// through clearance, then applied to the running fleet. Changes to the relay's part of the
/// manifest (binds, routes, static dirs, compression, CORS cache, rate limits, modules, relay
/// workers, metrics and control sockets) are refused for now, with nothing changed: the relay
/// cannot swap them in place yet.
final class Reloader: Sendable {
    private let path: String
    private let isProcfile: Bool
    private let selection: TagSelection
    private let running: Mutex<Manifest>
    private let supervisor: FleetSupervisor<ContinuousClock>
    private let systemd: SystemdNotifier?
    private let logger: Logger

    init(
        path: String, isProcfile: Bool = false, selection: TagSelection, manifest: Manifest,
        supervisor: FleetSupervisor<ContinuousClock>,
        systemd: SystemdNotifier?, logger: Logger
    ) {
        self.path = path
        self.isProcfile = isProcfile
        self.selection = selection
        running = Mutex(manifest)
        self.supervisor = supervisor
        self.systemd = systemd
        self.logger = logger
    }

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
        let changes = RelayShape(current).differences(from: RelayShape(next))
        guard changes.isEmpty else {
            return .refused(
                reason:
                    "reload cannot change the relay in place yet (\(changes.joined(separator: ", ")) changed); nothing changed: land the fleet and run it again to apply it",
                details: [])
        }
        do {
            let summary = try await supervisor.reload(next)
            running.withLock { $0 = next }
            return .applied(summary)
        } catch {
            return .refused(reason: "\(error.description); nothing changed", details: [])
        }
    }
}

/// The parts of a manifest the relay is built from, each as comparable text.
struct RelayShape: Equatable {
    let parts: [(name: String, text: String)]

    static func == (lhs: RelayShape, rhs: RelayShape) -> Bool { lhs.differences(from: rhs).isEmpty }

    init(_ manifest: Manifest) {
        let settings = manifest.settings
        // The chart lists binds, routes with their targets, static dirs and modules; vessels
        // without routes are the supervisor's alone, so they are left out of it.
        var routed = manifest
        routed.vessels = manifest.vessels.filter { !$0.routes.isEmpty }
        routed.filteredOut = []
        parts = [
            ("binds, routes, static dirs or modules", RoutingChart(manifest: routed).render(color: false)),
            (
                "a routed ship's address",
                manifest.ships.filter { !$0.routes.isEmpty }.map {
                    "\($0.name)=\($0.bind.map(String.init(describing:)) ?? "-")"
                }
                .joined(separator: ",")
            ),
            (
                "bays",
                manifest.bays.map { "\($0.name) deflate=\($0.permessageDeflate)" }.joined(separator: ",")
            ),
            ("compression", "\(settings.compression)"),
            ("cors_cache", String(describing: settings.corsCache)),
            ("rate_limiting", String(describing: settings.rateLimiting)),
            ("relay_workers", String(describing: settings.relayWorkers)),
            ("metrics_port", String(describing: settings.metricsPort)),
            ("control_socket", String(describing: settings.controlSocket)),
        ]
    }

    /// The names of the parts that differ.
    func differences(from other: RelayShape) -> [String] {
        zip(parts, other.parts).filter { $0.text != $1.text }.map(\.0.name)
    }
}
