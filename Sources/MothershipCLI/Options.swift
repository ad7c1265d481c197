import ArgumentParser
import ShipManifest

/// `-c/--config`, accepted by every subcommand (and before the subcommand: see `Mothership.main`).
struct ManifestOptions: ParsableArguments {
    @Option(name: [.short, .customLong("config")], help: "The manifest to use.")
    var config: String = Self.defaultPath

    static let defaultPath = "ship-manifest.toml"
}

/// `--only` / `--except`: which vessels a command considers.
struct FilterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Only vessels with any of these tags (comma-separated).", valueName: "tags"))
    var only: String?

    @Option(
        help: ArgumentHelp(
            "All vessels except those with any of these tags (comma-separated).", valueName: "tags"))
    var except: String?

    func validate() throws {
        if only != nil && except != nil {
            throw ValidationError("--only and --except cannot be used together")
        }
        for (flag, value) in [("--only", only), ("--except", except)] {
            if let value, value.split(separator: ",").allSatisfy({ $0.allSatisfy(\.isWhitespace) }) {
                throw ValidationError("\(flag) needs at least one tag")
            }
        }
    }

    var selection: TagSelection { TagSelection(only: only, except: except) }
}
