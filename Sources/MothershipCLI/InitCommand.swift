import ArgumentParser
import ShipManifest

/// `mothership init`: writes a commented starter manifest that `clearance` accepts; with
/// `--from Procfile`, one that runs the Procfile's processes, written beside it.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a commented starter ship-manifest.toml (or one from a Procfile).")

    @OptionGroup var manifest: ManifestOptions

    @Flag(help: "Overwrite an existing manifest.")
    var force = false

    @Option(
        name: .customLong("from"),
        help: ArgumentHelp(
            "A Procfile to translate; the manifest is written beside it (unless -c names another path).",
            valueName: "Procfile"))
    var procfile: String?

    func run() throws {
        var standardError = StandardError()
        var text = StarterManifest.text
        var destination = manifest.config
        var summary = "a web ship and a worker"
        if let procfile {
            let loaded: ProcfileSource
            do {
                loaded = try ProcfileSource.read(procfile)
            } catch {
                print("error: \(error.description)", to: &standardError)
                throw ExitCode(1)
            }
            text = Procfile.manifest(
                loaded.entries, style: .manifest, envFile: loaded.hasDotenv ? ".env" : nil,
                source: FileSystem.lastComponent(procfile))
            if manifest.config == ManifestOptions.defaultPath {
                destination = loaded.directory + "/" + ManifestOptions.defaultPath
            }
            summary = "\(plural(loaded.entries.count, "process type")) from \(procfile)"
        }
        do {
            try FileSystem.write(text, to: destination, replace: force)
        } catch {
            if FileSystem.exists(destination) && !force {
                print(
                    "error: \(destination) already exists; use --force to overwrite it",
                    to: &standardError)
            } else {
                print("error: \(error.description)", to: &standardError)
            }
            throw ExitCode(1)
        }
        print(
            "Wrote \(destination): \(summary). Next: `mothership clearance`, then `mothership`."
        )
    }
}

/// A Procfile read from disk: its entries, its directory and whether a `.env` sits beside it.
struct ProcfileSource {
    let entries: [Procfile.Entry]
    let directory: String
    let hasDotenv: Bool

    /// Fails when the file is missing, malformed (every bad line named) or has no entries.
    static func read(_ path: String) throws(FileSystem.Failure) -> ProcfileSource {
        guard FileSystem.exists(path) else {
            throw FileSystem.Failure(description: "\(path): no such Procfile")
        }
        let parsed = Procfile.parse(try FileSystem.read(path))
        if !parsed.failures.isEmpty {
            throw FileSystem.Failure(
                description: parsed.failures.map { "\(path):\($0.line): \($0.message)" }.joined(
                    separator: "\nerror: "))
        }
        if parsed.entries.isEmpty {
            throw FileSystem.Failure(description: "\(path) has no process types ('type: command' lines)")
        }
        let directory = FileSystem.directory(of: path)
        return ProcfileSource(
            entries: parsed.entries, directory: directory, hasDotenv: FileSystem.exists(directory + "/.env"))
    }

    /// The manifest text `run --procfile` runs. Like foreman, `$PORT` in mothership's environment, when
    /// set, replaces 5000 as the base port.
    var foremanManifest: String {
        let base = FileSystem.environment["PORT"].flatMap { Int($0) }.flatMap {
            (1...65535).contains($0) ? $0 : nil
        }
        return Procfile.manifest(
            entries, style: .foreman, envFile: hasDotenv ? ".env" : nil,
            basePort: base ?? Procfile.defaultBasePort)
    }
}
