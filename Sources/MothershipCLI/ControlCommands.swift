import ArgumentParser
import Control
import ShipManifest

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// The running fleet of a manifest, through its control socket (SPEC §12.1).
struct RunningFleet {
    let manifestPath: String
    let socketPath: String
    let client: ControlClient

    /// The socket `run` listens on for the manifest in `options` (read leniently: a manifest
    /// edited into errors since the run started still names its socket, or the default one).
    init(_ options: ManifestOptions) throws {
        manifestPath = options.config
        guard FileSystem.exists(options.config) else {
            throw CommandFailure("\(options.config): no such manifest file (pass -c FILE)")
        }
        let file = try ManifestFile.load(
            options.config, selection: TagSelection(only: nil, except: nil), purpose: .clearance)
        let setting: String?
        switch file.result.manifest?.settings.controlSocket ?? .besideManifest {
        case .off:
            throw CommandFailure("\(options.config) turns the control socket off (control_socket = false)")
        case .besideManifest: setting = nil
        case .path(let path): setting = path
        }
        socketPath = ControlSocket.path(setting: setting, manifestDirectory: file.directory)
        client = ControlClient(path: socketPath)
    }

    /// One request; a missing socket becomes the message every command gives.
    func request(_ method: String, _ target: String) throws -> ControlClient.Response {
        do {
            return try client.request(method, target)
        } catch {
            throw failure(error)
        }
    }

    func failure(_ error: ControlClient.Failure) -> CommandFailure {
        switch error {
        case .noMothership:
            CommandFailure(
                "no mothership is running for \(manifestPath) (no control socket at \(Self.shown(socketPath)))"
            )
        case .broken: CommandFailure(error.description)
        }
    }

    func fleet() throws -> FleetDocument {
        let response = try request("GET", "/v1/fleet")
        guard response.status == 200 else { throw CommandFailure(Self.message(of: response)) }
        do {
            return try JSONDecoder().decode(FleetDocument.self, from: Data(response.body.utf8))
        } catch {
            throw CommandFailure("the control socket's fleet document did not decode: \(error)")
        }
    }

    /// The `error` of a JSON error answer, or the status.
    static func message(of response: ControlClient.Response) -> String {
        struct ErrorDocument: Decodable { let error: String }
        if let document = try? JSONDecoder().decode(ErrorDocument.self, from: Data(response.body.utf8)) {
            return document.error
        }
        return "the control socket answered \(response.status)"
    }

    static func shown(_ path: String) -> String {
        path.hasPrefix("/") || path.hasPrefix(".") ? path : "./" + path
    }
}

/// A command's failure: its message on standard error, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

extension CommandFailure {
    /// Prints and exits 1 (ArgumentParser would print the message as a usage error otherwise).
    static func exit(_ message: String) -> Never {
        var standardError = StandardError()
        print("mothership: \(message)", to: &standardError)
        Glibc.exit(1)
    }
}

// MARK: - status

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running fleet: every vessel's state, pid, health and memory.")

    @OptionGroup var manifest: ManifestOptions

    @Flag(help: "Print the control socket's JSON document instead of the table.")
    var json = false

    func run() throws {
        do {
            let fleet = try RunningFleet(manifest)
            if json {
                let response = try fleet.request("GET", "/v1/fleet")
                guard response.status == 200 else { throw CommandFailure(RunningFleet.message(of: response)) }
                print(response.body, terminator: response.body.hasSuffix("\n") ? "" : "\n")
            } else {
                print(StatusTable(try fleet.fleet()).render(color: FileSystem.isTerminal(1)), terminator: "")
            }
        } catch {
            CommandFailure.exit("\(error)")
        }
    }
}

/// The status table: one line per vessel, columns aligned, states coloured on a terminal.
struct StatusTable {
    let document: FleetDocument

    init(_ document: FleetDocument) { self.document = document }

    func render(color: Bool) -> String {
        let header = ["VESSEL", "GROUP", "STATE", "PID", "HEALTH", "RESTARTS", "MEMORY", "UPTIME"]
        // A ship's workers follow it, indented.
        let listed = document.vessels.flatMap { vessel in
            [(vessel, "")] + vessel.workers.map { ($0, "  ") }
        }
        let rows = listed.map { vessel, indent in
            [
                indent + vessel.name, vessel.group, vessel.state, vessel.pid.map(String.init) ?? "-",
                vessel.healthy.map { $0 ? "healthy" : "unhealthy" } ?? "-",
                String(vessel.restarts),
                vessel.memoryRSSBytes.map(Self.bytes) ?? "-", vessel.uptimeSeconds.map(Self.duration) ?? "-",
            ]
        }
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        func line(_ cells: [String], paint: (Int, String) -> String) -> String {
            cells.indices.map { column in
                let padded =
                    column == cells.count - 1
                    ? cells[column]
                    : cells[column].padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
                return paint(column, padded)
            }.joined()
        }
        var text = "\(document.name): \(document.state)\n"
        text += line(header) { _, cell in color ? "\u{1B}[1m\(cell)\u{1B}[0m" : cell } + "\n"
        for (index, row) in rows.enumerated() {
            let state = listed[index].0.state
            text +=
                line(row) { column, cell in
                    guard color else { return cell }
                    if column == 2 { return Self.paint(state: state, cell) }
                    if column == 4 && row[4] == "unhealthy" { return "\u{1B}[31m\(cell)\u{1B}[0m" }
                    return cell
                } + "\n"
        }
        return text
    }

    static func paint(state: String, _ cell: String) -> String {
        let code =
            switch state {
            case "running", "completed": "32"
            case "failed": "31"
            case "stopped": "2"
            default: "33"
            }
        return "\u{1B}[\(code)m\(cell)\u{1B}[0m"
    }

    static func bytes(_ count: UInt64) -> String {
        let value = Double(count)
        let (mebibyte, gibibyte) = (1_048_576.0, 1_073_741_824.0)
        if value >= gibibyte { return String(format: "%.1f GB", value / gibibyte) }
        if value >= mebibyte { return String(format: "%.1f MB", value / mebibyte) }
        return String(format: "%.0f KB", value / 1024)
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m \(whole % 60)s" }
        if whole < 86400 { return "\(whole / 3600)h \(whole % 3600 / 60)m" }
        return "\(whole / 86400)d \(whole % 86400 / 3600)h"
    }
}

// MARK: - restart, stop, start

/// `restart`, `stop` and `start`: the action on each vessel named, then (unless `--no-wait`) a wait
/// until it has taken effect.
struct VesselActionOptions: ParsableArguments {
    @OptionGroup var manifest: ManifestOptions

    @Argument(help: "The vessels (ships, bays, workers, jobs) to act on.")
    var names: [String]

    @Flag(help: "Return once the action has begun, without waiting for it to take effect.")
    var noWait = false

    @Option(help: ArgumentHelp("How long to wait for each vessel, in seconds.", valueName: "seconds"))
    var timeout: Double = 120

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one vessel") }
    }

    func perform(_ action: String) {
        let fleet: RunningFleet
        do {
            fleet = try RunningFleet(manifest)
        } catch {
            CommandFailure.exit("\(error)")
        }
        var failed = false
        for name in names {
            do {
                let before = try fleet.fleet().vessels.first { $0.name == name }
                let target = "/v1/vessels/\(Self.escape(name))/\(action)"
                let response = try fleet.request("POST", target)
                guard response.status == 200 else { throw CommandFailure(RunningFleet.message(of: response)) }
                print(
                    try noWait
                        ? "\(name): \(action) requested" : wait(for: name, action, before: before, fleet))
            } catch {
                var standardError = StandardError()
                print("mothership: \(error)", to: &standardError)
                failed = true
            }
        }
        if failed { Glibc.exit(1) }
    }

    /// Polls the fleet until the action shows: a new running process, stopped, or running.
    private func wait(
        for name: String, _ action: String, before: FleetDocument.Vessel?, _ fleet: RunningFleet
    ) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let now = try fleet.fleet().vessels.first(where: { $0.name == name }) {
                switch action {
                case "restart" where now.state == "running" && now.pid != nil && now.pid != before?.pid:
                    return "\(name): restarted (pid \(before?.pid.map(String.init) ?? "-") → \(now.pid!))"
                case "stop" where now.state == "stopped":
                    return "\(name): stopped"
                case "start" where now.state == "running" || now.state == "completed":
                    return "\(name): \(now.state) (pid \(now.pid.map(String.init) ?? "-"))"
                case _ where now.state == "failed":
                    throw CommandFailure(
                        "\(name) failed while it was being \(action)ed; see `mothership logs \(name)`")
                default: break
                }
            }
            usleep(100_000)
        }
        throw CommandFailure(
            "\(name): not \(action == "stop" ? "stopped" : "running") after \(Int(timeout))s")
    }

    /// Percent-encodes all but letters, digits and `-_.` (a vessel name in a request target).
    static func escape(_ name: String) -> String {
        var text = ""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "."):
                text.append(Character(Unicode.Scalar(byte)))
            default:
                text += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return text
    }
}

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart", abstract: "Restart vessels of the running fleet (stop signal, then start).")
    @OptionGroup var options: VesselActionOptions
    func run() { options.perform("restart") }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop vessels of the running fleet; they stay stopped until `start`.")
    @OptionGroup var options: VesselActionOptions
    func run() { options.perform("stop") }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start vessels that `stop` stopped (or run a finished job again).")
    @OptionGroup var options: VesselActionOptions
    func run() { options.perform("start") }
}

// MARK: - logs

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the recent output of vessels of the running fleet (all by default).")

    @OptionGroup var manifest: ManifestOptions

    @Argument(help: "The vessels whose output to show (all when none is named).")
    var names: [String] = []

    @Flag(name: [.short, .long], help: "Keep printing new output as it comes (Ctrl-C to stop).")
    var follow = false

    @Option(
        name: [.customShort("n"), .customLong("lines")],
        help: "How many recent lines of each vessel to print first.")
    var lines: Int = 100

    @Flag(
        help: "Reopen the run's log files ([mothership.logs]; after logrotate moved them), as SIGUSR2 does.")
    var reopen = false

    func validate() throws {
        if lines < 0 { throw ValidationError("-n takes a number of lines, 0 or more") }
    }

    func run() {
        do {
            let fleet = try RunningFleet(manifest)
            if reopen {
                let response = try fleet.request("POST", "/v1/logs/reopen")
                guard response.status == 200 else { throw CommandFailure(RunningFleet.message(of: response)) }
                print("log files reopened")
                return
            }
            let width = max(
                names.map(\.count).max() ?? 0, try fleet.fleet().vessels.map(\.name.count).max() ?? 0)
            var target = "/v1/logs?lines=\(lines)"
            if !names.isEmpty {
                target += "&vessels=" + names.map(VesselActionOptions.escape).joined(separator: ",")
            }
            if follow { target += "&follow=1" }
            var status = 0
            var pending: [UInt8] = []
            var errorBody: [UInt8] = []
            let decoder = JSONDecoder()
            do {
                try fleet.client.exchange("GET", target) {
                    status = $0
                } body: { bytes in
                    guard status == 200 else {
                        errorBody += bytes
                        return
                    }
                    pending += bytes
                    while let end = pending.firstIndex(of: 10) {
                        let line = Array(pending[..<end])
                        pending.removeFirst(end + 1)
                        guard let entry = try? decoder.decode(LogLineDocument.self, from: Data(line)) else {
                            continue
                        }
                        print(
                            entry.vessel.padding(toLength: width, withPad: " ", startingAt: 0) + " | "
                                + entry.line)
                        fflush(nil)
                    }
                }
            } catch {
                throw fleet.failure(error)
            }
            if status != 200 {
                throw CommandFailure(
                    RunningFleet.message(
                        of: .init(status: status, body: String(decoding: errorBody, as: UTF8.self))))
            }
        } catch {
            CommandFailure.exit("\(error)")
        }
    }
}

// MARK: - reload

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Read the manifest again and apply it: new vessels start, removed ones stop, changed ones restart."
    )

    @OptionGroup var manifest: ManifestOptions

    func run() {
        do {
            let fleet = try RunningFleet(manifest)
            let response = try fleet.request("POST", "/v1/reload")
            struct Applied: Decodable { let summary: String }
            struct Refused: Decodable {
                let error: String
                let details: [String]
            }
            if response.status == 200,
                let applied = try? JSONDecoder().decode(Applied.self, from: Data(response.body.utf8))
            {
                print(applied.summary)
                return
            }
            if let refused = try? JSONDecoder().decode(Refused.self, from: Data(response.body.utf8)) {
                var standardError = StandardError()
                for line in refused.details { print(line, to: &standardError) }
                throw CommandFailure(refused.error)
            }
            throw CommandFailure(RunningFleet.message(of: response))
        } catch {
            CommandFailure.exit("\(error)")
        }
    }
}

// MARK: - land

struct LandCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "land", abstract: "Land the running fleet (as SIGTERM does), and wait until it has.")

    @OptionGroup var manifest: ManifestOptions

    @Option(help: ArgumentHelp("How long to wait for the landing, in seconds.", valueName: "seconds"))
    var timeout: Double = 300

    func run() {
        do {
            let fleet = try RunningFleet(manifest)
            let name = try fleet.fleet().name
            let response = try fleet.request("POST", "/v1/land")
            guard response.status == 202 else { throw CommandFailure(RunningFleet.message(of: response)) }
            print("landing \(name)…")
            fflush(nil)
            // The run removes its socket as it exits.
            let deadline = Date().addingTimeInterval(timeout)
            while ControlSocket.liveHolder(at: fleet.socketPath) != nil {
                guard Date() < deadline else {
                    throw CommandFailure("\(name) has not landed after \(Int(timeout))s")
                }
                usleep(100_000)
            }
            print("\(name) landed")
        } catch {
            CommandFailure.exit("\(error)")
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
