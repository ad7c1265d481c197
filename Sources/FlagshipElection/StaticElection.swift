import ShipManifest
import Supervision
import Synchronization

/// `election = "static"`: each instance decides alone, from an environment value or a command's
/// output. An escort skips prelaunch and launches at once; nobody is told anything.
public struct StaticElection: FlagshipElector {
    public var rule: StaticFlagship
    public var deployment: String
    /// Mothership's environment: `$VAR`s are expanded from it and the command inherits it.
    public var environment: [String: String]
    public var workingDirectory: String
    /// Runs the `{ command }` form (the same launcher that starts vessels, so one reaper sees it).
    public var launcher: any ProcessLauncher

    public init(
        rule: StaticFlagship, deployment: String, environment: [String: String], workingDirectory: String,
        launcher: any ProcessLauncher
    ) {
        self.rule = rule
        self.deployment = deployment
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.launcher = launcher
    }

    public func elect() async throws -> FlagshipRole {
        let decided = try await decision()
        let label = "deployment '\(deployment)' (static election: \(decided.reason))"
        return decided.isFlagship
            ? .flagship(StaticTicket(description: label)) : .escort(StaticEscort(description: label))
    }

    /// Whether this instance is the flagship, and why (for the log).
    public func decision() async throws -> (isFlagship: Bool, reason: String) {
        switch rule {
        case .value(let text):
            let value = EnvironmentExpansion(expanding: text, environment: environment).value
            let truthy = StaticFlagship.isTruthy(value)
            return (truthy, "static_flagship \(text) = '\(value)' is \(truthy ? "" : "not ")true, 1 or yes")
        case .command(let line, let equals):
            let output = try await run(line)
            let matches = output == equals.trimmedWhitespace()
            return (matches, "'\(line)' printed '\(output)', \(matches ? "" : "not ")'\(equals)'")
        }
    }

    /// Runs `line` through `/bin/sh -c`; its stdout, trimmed. The exit status does not matter
    /// (`printenv DYNO` fails where DYNO is unset, which simply means "not the flagship").
    func run(_ line: String) async throws -> String {
        let lines = Mutex<[String]>([])
        let request = LaunchRequest(
            name: "static_flagship", command: "/bin/sh", arguments: ["-c", line], environment: environment,
            workingDirectory: workingDirectory,
            output: { output in
                if output.stream == .stdout { lines.withLock { $0.append(output.text) } }
            })
        let process: any RunningProcess
        do {
            process = try await launcher.launch(request)
        } catch {
            throw FlagshipElectionError.staticCommand(command: line, error: error.description)
        }
        _ = await withTaskCancellationHandler {
            await process.exitStatus()
        } onCancel: {
            process.signalGroup(9)
        }
        return lines.withLock { $0.joined(separator: "\n") }.trimmedWhitespace()
    }
}

/// A static flagship tells nobody: escorts did not wait.
struct StaticTicket: FlagshipTicket {
    var description: String
    var signalsEscorts: Bool { false }
    func prelaunchSucceeded() async throws {}
    func prelaunchFailed(_ reason: String) async {}
    func release() async {}
}

/// A static escort launches at once.
struct StaticEscort: EscortWatch {
    var description: String
    var waitsForFlagship: Bool { false }
    func awaitFlagship() async throws {}
    func release() async {}
}
