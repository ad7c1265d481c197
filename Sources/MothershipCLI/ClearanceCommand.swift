import ArgumentParser
import ShipManifest

/// `mothership clearance`: validates the manifest offline and prints every problem.
struct ClearanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clearance", abstract: "Validate the manifest offline (no network, starts nothing).")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var filter: FilterOptions

    func run() throws {
        let file: ManifestFile
        do {
            file = try ManifestFile.load(manifest.config, selection: filter.selection, purpose: .clearance)
        } catch {
            var standardError = StandardError()
            print("error: \(error.description)", to: &standardError)
            throw ExitCode(1)
        }
        var output = StandardOutput()
        file.print(to: &output)
        let errors = file.diagnostics.errors.count
        let warnings = file.diagnostics.warnings.count
        guard let parsed = file.manifest else {
            print("clearance denied: \(plural(errors, "error")), \(plural(warnings, "warning"))")
            throw ExitCode(1)
        }
        var summary = "clearance granted: " + Self.summary(of: parsed)
        if warnings > 0 { summary += "; \(plural(warnings, "warning"))" }
        print(summary)
    }

    /// `3 ships in 2 groups, 1 bay, 2 prelaunch jobs, 1 module, 2 binds, 4 routes, 1 uplink`.
    static func summary(of manifest: Manifest) -> String {
        let ships = manifest.ships
        let groups = Set(ships.map(\.group)).count
        var parts = [
            "\(plural(ships.count, "ship")) in \(plural(groups, "group"))",
            plural(manifest.bays.count, "bay"),
        ]
        parts.append(plural(manifest.prelaunch.count, "prelaunch job"))
        parts.append(plural(manifest.modules.count, "module"))
        parts.append(plural(manifest.settings.listeners.count, "bind"))
        parts.append(plural(manifest.vessels.reduce(0) { $0 + $1.routes.count }, "route"))
        parts.append(plural(manifest.settings.uplinks.count, "uplink"))
        if !manifest.filteredOut.isEmpty {
            parts.append("\(manifest.filteredOut.count) left out by the tag filter")
        }
        return parts.joined(separator: ", ")
    }
}

func plural(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}
