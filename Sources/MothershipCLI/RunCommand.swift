import ArgumentParser
import ShipManifest

/// `mothership [run]`: launches the fleet. (Supervision lands with issue #3; until then this validates
/// the manifest as `run` will and says so.)
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the fleet (the default).")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var filter: FilterOptions

    @Flag(help: "Show the full-screen dashboard.")
    var tui = false

    @Option(
        help: ArgumentHelp(
            "Log level: trace, debug, info, notice, warning, error (or MOTHERSHIP_LOG).", valueName: "level"))
    var logLevel: String?

    func run() async throws {
        _ = try loadManifest(manifest, selection: filter.selection, purpose: .run)
        var standardError = StandardError()
        print(
            "error: mothership run: the manifest is valid, but launching a fleet is not built yet in this version",
            to: &standardError)
        throw ExitCode(1)
    }
}
