import ArgumentParser
import CMothershipSystem
import Control
import Dashboard
import FlagshipElection
import LogFiles
import Logging
import Metrics
import Payloads
import Probes
import ProcessControl
import Prometheus
import Relay
import ShipManifest
import Supervision
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// `mothership [run]`: launches the fleet, keeps it alive, lands it on SIGTERM/SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the fleet (the default).")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var filter: FilterOptions

    @Option(
        help: ArgumentHelp(
            "Run a Procfile directly, foreman-style (PORT 5000 + 100 × index; a .env beside it is read).",
            valueName: "Procfile"))
    var procfile: String?

    @Flag(help: "Show the full-screen dashboard.")
    var tui = false

    @Option(
        help: ArgumentHelp(
            "Log level: trace, debug, info, notice, warning, error (or MOTHERSHIP_LOG).", valueName: "level"))
    var logLevel: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel.lowercased()) == nil {
            throw ValidationError(
                "unknown log level '\(logLevel)'; expected trace, debug, info, notice, warning, error or critical"
            )
        }
    }

    func run() async throws {
        let (parsed, file) = try loadManifest(
            manifest, procfile: procfile, selection: filter.selection, purpose: .run)
        let level =
            Logger.Level(
                rawValue: (logLevel ?? FileSystem.environment["MOTHERSHIP_LOG"] ?? "info").lowercased())
            ?? .info
        let console = Console(
            colored: FileSystem.isTerminal(1),
            names: parsed.prelaunch.map(\.name) + parsed.vessels.map(\.name))
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, console: console, level: level) }
        var logger = Logger(label: "mothership")
        logger.logLevel = level
        // Raw mode and the alternate screen from here until the run is over, whichever way it ends.
        let terminal = tui ? TerminalDevice.open() : nil
        if tui && terminal == nil {
            logger.warning("--tui needs a terminal on stdin and stdout; showing plain output")
        }
        let outputLog = OutputLog()
        // From here on mothership's own lines go to the dashboard's "mothership" entry, never over it.
        if terminal != nil { console.divert(to: outputLog) }
        let outcome = await Launch(
            manifest: parsed, file: file, console: console, logger: logger, outputLog: outputLog,
            terminal: terminal, manifestPath: procfile ?? manifest.config, isProcfile: procfile != nil,
            selection: filter.selection
        ).run()
        if let terminal {
            // Restored already unless the launch failed before the dashboard started (idempotent).
            terminal.restore()
            console.divert(to: nil)
            // Say why a run that did not land ended.
            if case .crashed(let vessel, _) = outcome {
                for line in outputLog.lines(of: vessel).suffix(10) { console.echo(line) }
            }
            if outcome != .landed {
                for line in outputLog.lines(of: DashboardState.mothershipEntry).suffix(20) {
                    console.echo(line)
                }
            }
        }
        console.write(outcome.statusLine)
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}

/// The composition of one fleet run: adapters wired to Supervision's ports, the metrics endpoint,
/// signal handling, and the clean-up that guarantees no child outlives the run.
struct Launch {
    let manifest: Manifest
    let file: ManifestFile
    let console: Console
    let logger: Logger
    let outputLog: OutputLog
    /// Where to show the dashboard while the fleet runs (nil: plain output).
    let terminal: TerminalDevice?
    /// The manifest as given on the command line and the tag filter: a reload reads it the same way.
    let manifestPath: String
    /// `run --procfile`: `manifestPath` is a Procfile.
    var isProcfile = false
    let selection: TagSelection

    func run() async -> FleetOutcome {
        ProcessTable.becomeSubreaper()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(CataloguedMetricsFactory(registry: registry))
        let lifecycle = LifecycleBox()
        let systemd = SystemdNotifier(environment: FileSystem.environment)
        let watchdog = Task { await systemd?.watchdog() }
        defer { watchdog.cancel() }
        let directory = UpstreamDirectory(ships: manifest.ships.map(\.name))
        let socketDirectory = manifest.bays.isEmpty ? nil : makeSocketDirectory()
        defer { if let socketDirectory { removeSocketDirectory(socketDirectory) } }
        let bays = BayDirectory(bays: manifest.bays, logger: logger)

        // Log files before anything starts: a directory that cannot be written fails the launch.
        var logFiles: LogFiles?
        if let settings = manifest.settings.logs {
            let directory =
                settings.directory.hasPrefix("/")
                ? settings.directory : file.directory + "/" + settings.directory
            let logger = self.logger
            do {
                logFiles = try LogFiles(
                    directory: directory, sources: ["mothership"] + manifest.vessels.map(\.name),
                    format: settings.format == .json ? .json : .text, maxSize: settings.maxSize,
                    keep: settings.keep,
                    notice: { notice in
                        switch notice {
                        case .dropping(let source, let reason):
                            logger.warning("log file of '\(source)': dropping lines: \(reason)")
                        case .dropped(let source, let count):
                            logger.notice("log file of '\(source)': writing again, \(count) line(s) dropped")
                        }
                    })
            } catch {
                return .failed(error.description)
            }
            console.attach(logFiles)
            logger.info(
                "log files in \(directory) (\(settings.format.rawValue), rotated at \(settings.maxSize) bytes, \(settings.keep) kept)"
            )
        }
        let files = logFiles
        defer {
            console.attach(nil)
            files?.close()
        }

        let launcher = SystemProcessLauncher()
        var elector: (any FlagshipElector)?
        if let flagship = manifest.settings.flagship {
            do {
                elector = try ElectorChoice.elector(
                    for: flagship, deployment: manifest.settings.name, manifestText: file.text,
                    environment: FileSystem.environment, workingDirectory: file.directory, launcher: launcher,
                    logger: logger)
            } catch {
                return .failed(error.description)
            }
        }
        let supervisor = FleetSupervisor(
            manifest: manifest,
            context: FleetContext(
                manifestDirectory: file.directory, inheritedEnvironment: FileSystem.environment,
                mothershipPID: getpid(),
                socketDirectory: socketDirectory),
            ports: FleetPorts(
                launcher: launcher, health: NIOHealthCheck(), uplinks: NIOUplinkCheck(), elector: elector,
                bays: socketDirectory == nil ? nil : RelayBayDocking(bays: bays),
                traffic: RelayTraffic(directory: directory)),
            clock: ContinuousClock(), logger: logger, outputLog: outputLog,
            echo: { line in
                console.echo(line)
                files?.write(source: line.source, stream: line.stream.rawValue, text: line.text)
            },
            onLifecycleChange: {
                lifecycle.set($0)
                systemd?.lifecycle($0)
            },
            onVesselChange: { status in
                if status.workers != nil {
                    // Before the gate opens: an opening gate finds the instances that serve.
                    directory.set(
                        ship: status.name,
                        instances: status.instances.filter(\.serves).compactMap { instance in
                            instance.address.map { ShipInstance(id: instance.id, address: $0) }
                        })
                }
                directory.set(ship: status.name, ready: status.isUp)
            })
        directory.onStuck { ship, instance in
            Task { await supervisor.recycleStuck(ship, instance: instance) }
        }

        // The control socket first: a second run of the same manifest is refused before it binds
        // anything or starts a process.
        let relayHolder = RelayHolder()
        let reloader = Reloader(
            path: manifestPath, isProcfile: isProcfile, selection: selection, manifest: manifest,
            manifestDirectory: file.directory, supervisor: supervisor, systemd: systemd, logger: logger)
        var control: ControlServer?
        let commands = SupervisorControl(
            fleetName: manifest.settings.name, output: outputLog, supervisor: supervisor,
            relay: relayHolder, reloader: reloader, logFiles: logFiles)
        if let path = controlSocketPath() {
            do {
                control = try await ControlServer.start(path: path, control: commands, logger: logger)
                logger.info("control socket on \(path) (mothership status, restart, stop, start, logs, land)")
            } catch ControlSocketError.cannotListen(let path, let reason) {
                // A directory this run cannot write to (a read-only deployment, another user's):
                // the fleet runs, without commands.
                logger.warning(
                    "no control socket: cannot listen on \(path): \(reason); the fleet runs without `mothership status`, `restart`, … (set [mothership] control_socket to a writable path)"
                )
            } catch {
                return .failed("\(error)")
            }
        }
        defer {
            if let control {
                unlink(control.path)
                Task { await control.stop() }
            }
        }

        // Modules are loaded, and listeners bound, before anything starts: a module that cannot
        // load or a bind that cannot listen fails the launch.
        let payloads: PayloadSet?
        do {
            payloads = try PayloadSet.load(
                manifest: manifest, manifestDirectory: file.directory, logger: logger)
        } catch {
            return .failed("\(error)")
        }
        // The relay runs even without binds: a reload may add the first.
        var binds: [String] = []
        let frontDoor = RelayServer(
            manifest: manifest, directory: directory, bays: bays, manifestDirectory: file.directory,
            logger: logger, hooks: payloads)
        do {
            for (name, address) in try await frontDoor.start() {
                logger.info("bind '\(name)' listening on \(RelayServer.describe(address))")
                binds.append("\(name) \(RelayServer.describe(address))")
            }
        } catch {
            return .failed("\(error)")
        }
        reloader.attach(relay: frontDoor, payloads: payloads)

        var endpoint: MetricsEndpoint?
        if let port = manifest.settings.metricsPort {
            let exposition = MetricsExposition(registry: registry, durations: frontDoor.requestDurations)
            let settings = manifest.settings.dashboard
            let token = settings.token ?? Self.generatedToken()
            let dashboard = WebDashboard(
                console: WebConsoleAdapter(control: commands),
                settings: WebDashboardSettings(actions: settings.actions, token: token))
            let metrics = MetricsEndpoint(
                address: .tcp(host: "127.0.0.1", port: port), metrics: { exposition.render() },
                health: { lifecycle.health() }, dashboard: dashboard)
            do {
                _ = try await metrics.start()
                logger.info(
                    "metrics on http://127.0.0.1:\(port)/metrics, dashboard on http://127.0.0.1:\(port)/")
                if settings.actions && settings.token == nil {
                    logger.notice("dashboard actions on; token for this run: \(token)")
                } else if settings.actions {
                    logger.info("dashboard actions on (token from [mothership.dashboard] token)")
                }
                endpoint = metrics
            } catch {
                return .failed("cannot listen on metrics_port \(port): \(error)")
            }
        }

        let relay = frontDoor
        relayHolder.set(frontDoor)
        // SIGTERM, the first SIGINT and the dashboard's `q`: the front door closes first, so in-flight
        // requests finish while ships still run.
        let land: @Sendable () async -> Void = {
            await relay.drain()
            await supervisor.requestShutdown()
        }
        // Trapped now, before anything starts: a SIGTERM the moment the fleet is Running must land
        // it, not find the default action still in place (the task below may start later).
        let trapped = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup, .sigusr1, .sigusr2)
        let signals = Task {
            var interrupts = 0
            for await signal in trapped {
                if signal == .sigusr2 {
                    // SIGUSR2: reopen the log files (after logrotate moved them).
                    files?.reopen()
                    continue
                }
                if signal == .sigusr1 {
                    // SIGUSR1: every routed ship restarted, in phases where it has workers (SPEC §12.2).
                    Task { await supervisor.restartRoutedShips() }
                    continue
                }
                if signal == .sighup {
                    // SIGHUP: reload (SPEC §12.1); the outcome is logged.
                    Task { _ = await reloader.reload() }
                    continue
                }
                if signal == .sigint { interrupts += 1 }
                if interrupts >= 2 {
                    await supervisor.killNow()
                } else if interrupts <= 1 {
                    Task { await land() }
                }
            }
        }
        var screen: Task<Void, Never>?
        if let terminal {
            let feed = DashboardFeed(manifest: manifest, binds: binds, registry: registry, payloads: payloads)
            let services = DashboardServices(
                snapshot: { await feed.snapshot(supervisor.status()) }, logs: outputLog,
                restart: { await supervisor.restart($0) }, land: land)
            screen = Task { await DashboardRunner(services: services).run(on: terminal) }
        }
        // Said once everything is ready to launch (a launch that fails earlier has nothing to contain).
        let containment = ProcessTable.containment()
        if containment.complete {
            logger.info("\(containment.summary)")
        } else {
            logger.warning("\(containment.summary)")
        }
        if containment.staleRemoved > 0 {
            logger.notice(
                "removed \(containment.staleRemoved) cgroup(s) left by killed runs, with their processes")
        }
        let outcome = await supervisor.run()
        signals.cancel()
        await relay.drain()
        let leftovers = ProcessTable.killRemainingChildren(timeout: .seconds(2))
        if leftovers > 0 {
            logger.warning("killed \(leftovers) leftover process(es) that outlived their vessels")
        }
        await endpoint?.stop()
        await control?.stop()
        control = nil
        // The dashboard shows the landing to the end, then restores the terminal.
        screen?.cancel()
        await screen?.value
        return outcome
    }

    /// A token for the dashboard's actions when the manifest sets none: 24 random bytes, hex.
    static func generatedToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<24).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
    }

    /// The control socket's path (SPEC §12.1), nil when the manifest turns it off.
    func controlSocketPath() -> String? {
        switch manifest.settings.controlSocket {
        case .off: nil
        case .besideManifest: ControlSocket.path(setting: nil, manifestDirectory: file.directory)
        case .path(let path): ControlSocket.path(setting: path, manifestDirectory: file.directory)
        }
    }

    /// A private directory (mode 0700) for this run's docking sockets.
    func makeSocketDirectory() -> String? {
        var template = Array("/tmp/mothership-\(getpid())-XXXXXX".utf8CString)
        guard let pointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            return nil
        }
        return String(cString: pointer)
    }

    func removeSocketDirectory(_ path: String) {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

/// The lifecycle state as /health reports it, readable without awaiting the supervisor.
final class LifecycleBox: Sendable {
    private let state = Mutex(LifecycleState.initializing)

    func set(_ next: LifecycleState) { state.withLock { $0 = next } }

    /// 200 `{"status":"running"}` while Running, 503 with the current state otherwise.
    func health() -> (status: Int, body: String) {
        let current = state.withLock { $0 }
        let body = #"{"status":"# + JSONText.quote(current.statusWord) + "}"
        return (current == .running ? 200 : 503, body)
    }
}

/// The relay once it listens, for a landing asked for on the control socket.
final class RelayHolder: Sendable {
    private let relay = Mutex<RelayServer?>(nil)

    func set(_ server: RelayServer?) { relay.withLock { $0 = server } }
    var server: RelayServer? { relay.withLock { $0 } }
}

/// The control socket's view of the run: the supervisor's actions, its output, and the landing
/// SIGTERM starts (the front door drains first).
struct SupervisorControl: FleetControl {
    let fleetName: String
    let output: OutputLog
    let supervisor: FleetSupervisor<ContinuousClock>
    let relay: RelayHolder
    let reloader: Reloader
    let logFiles: LogFiles?

    func status() async -> FleetStatus { await supervisor.status() }
    func reload() async -> ReloadOutcome { await reloader.reload() }

    func reopenLogs() -> Bool {
        guard let logFiles else { return false }
        logFiles.reopen()
        return true
    }
    func restart(_ name: String) async throws(ControlRefusal) { try await supervisor.restartVessel(name) }
    func stop(_ name: String) async throws(ControlRefusal) { try await supervisor.stopVessel(name) }
    func start(_ name: String) async throws(ControlRefusal) { try await supervisor.startVessel(name) }

    func land() async {
        let (relay, supervisor) = (self.relay.server, self.supervisor)
        Task {
            await relay?.drain()
            await supervisor.requestShutdown()
        }
    }
}

/// The relay's requests in flight per ship instance, as the supervisor's phased restarts ask.
struct RelayTraffic: ShipTraffic {
    let directory: UpstreamDirectory

    func inFlight(ship: String, instance id: Int) -> Int { directory.inFlight(ship: ship, instance: id) }

    func forget(ship: String, instance id: Int) { directory.forget(ship: ship, instance: id) }
}
