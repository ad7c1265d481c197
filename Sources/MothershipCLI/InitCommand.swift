import ArgumentParser
import ShipManifest

/// `mothership init`: writes a commented starter manifest that `clearance` accepts.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Write a commented starter ship-manifest.toml.")

    @OptionGroup var manifest: ManifestOptions

    @Flag(help: "Overwrite an existing manifest.")
    var force = false

    func run() throws {
        var standardError = StandardError()
        do {
            try FileSystem.write(StarterManifest.text, to: manifest.config, replace: force)
        } catch {
            if FileSystem.exists(manifest.config) && !force {
                print(
                    "error: \(manifest.config) already exists; use --force to overwrite it",
                    to: &standardError)
            } else {
                print("error: \(error.description)", to: &standardError)
            }
            throw ExitCode(1)
        }
        print(
            "Wrote \(manifest.config): a web ship and a worker. Next: `mothership clearance`, then `mothership`."
        )
    }
}
