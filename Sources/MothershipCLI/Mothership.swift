import ArgumentParser
import CMothershipSystem
import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// `mothership`: launch, keep alive and expose a fleet described by `ship-manifest.toml`.
@main
struct Mothership: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mothership",
        abstract:
            "Process supervisor with HTTP exposure: launches your fleet, routes traffic, runs WASM payloads.",
        version: "0.1.0",
        subcommands: [
            RunCommand.self, InitCommand.self, ClearanceCommand.self, PreflightCommand.self,
            ChartCommand.self, StatusCommand.self, RestartCommand.self, StopCommand.self, StartCommand.self,
            LogsCommand.self, ReloadCommand.self, LandCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )

    static let subcommandNames: Set<String> = [
        "run", "init", "clearance", "preflight", "chart", "status", "restart", "stop", "start", "logs",
        "reload", "land",
        "help",
    ]
    /// Options that take a value, so that their value is never mistaken for a subcommand.
    static let optionsWithValues: Set<String> = [
        "-c", "--config", "--only", "--except", "--log-level", "-n", "--lines", "--timeout", "--procfile",
        "--from",
    ]

    /// Exit codes: 0 success, 1 configuration or runtime failure, 2 usage error.
    static func main() async {
        let arguments = normalize(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                // Usage errors (unknown flag, conflicting flags): ArgumentParser's message, exit 2.
                var standardError = StandardError()
                print(fullMessage(for: error), to: &standardError)
                print("Run 'mothership --help' for usage.", to: &standardError)
                Self.exit(withError: ExitCode(2))
            }
            Self.exit(withError: error)
        }
    }

    /// Accepts global options before the subcommand (`mothership -c app.toml chart`) by moving
    /// everything before the subcommand's name after it.
    static func normalize(_ arguments: [String]) -> [String] {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return arguments }
            if subcommandNames.contains(argument) {
                guard index > 0 else { return arguments }
                return [argument] + arguments[(index + 1)...] + arguments[..<index]
            }
            index += optionsWithValues.contains(argument) ? 2 : 1
        }
        return arguments
    }
}

/// Loads the manifest for a command, printing its diagnostics; throws exit 1 when it has errors.
func loadManifest(
    _ options: ManifestOptions, procfile: String? = nil, selection: TagSelection,
    purpose: ManifestFile.Purpose
) throws
    -> (Manifest, ManifestFile)
{
    var standardError = StandardError()
    let file: ManifestFile
    do {
        file = try ManifestFile.load(
            procfile ?? options.config, procfile: procfile != nil, selection: selection, purpose: purpose)
    } catch {
        print("error: \(error.description)", to: &standardError)
        throw ExitCode(1)
    }
    file.print(to: &standardError)
    guard let manifest = file.manifest else {
        let count = file.diagnostics.errors.count
        print(
            "\(procfile ?? options.config): \(count) error\(count == 1 ? "" : "s"); nothing was started",
            to: &standardError)
        throw ExitCode(1)
    }
    return (manifest, file)
}
