import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// Problems that depend on the machine the manifest is checked on: a command not found, a missing
/// WASM file, static directory, TLS file or working directory. Warnings for `clearance` (the manifest
/// may be checked elsewhere than where it runs), errors for `run`, except static directories and TLS
/// files, which the relay reports when it opens them.
struct MachineCheck {
    let manifestDirectory: String
    let environment: [String: String]
    let sourceMap: SourceMap
    let severity: Diagnostic.Severity

    func check(_ manifest: Manifest) -> [Diagnostic] {
        var found: [Diagnostic] = []
        func report(_ severity: Diagnostic.Severity, _ path: FieldPath, _ message: String) {
            found.append(Diagnostic(severity, path, message, at: sourceMap.nearestPosition(of: path)))
        }
        for vessel in manifest.vessels {
            let directory = vessel.workingDirectory.map { resolve($0) } ?? manifestDirectory
            if let cwd = vessel.workingDirectory, !FileSystem.isDirectory(directory) {
                report(
                    severity, vessel.manifestPath.appending("cwd"),
                    "working directory '\(cwd)' (\(directory)) does not exist")
                continue
            }
            let path =
                vessel.environment["PATH"] ?? manifest.settings.environment["PATH"] ?? environment["PATH"]
                ?? "/usr/bin:/bin"
            if let problem = commandProblem(vessel.command, workingDirectory: directory, searchPath: path) {
                report(severity, vessel.manifestPath.appending("command"), problem)
            }
        }
        for (index, job) in manifest.prelaunch.enumerated() {
            let path =
                job.environment["PATH"] ?? manifest.settings.environment["PATH"] ?? environment["PATH"]
                ?? "/usr/bin:/bin"
            if let problem = commandProblem(
                job.command, workingDirectory: manifestDirectory, searchPath: path)
            {
                report(
                    severity, FieldPath("mothership.prelaunch").appending(index: index).appending("command"),
                    problem)
            }
        }
        for module in manifest.modules where !FileSystem.exists(resolve(module.wasmPath)) {
            report(
                severity, module.manifestPath.appending("wasm"),
                "WASM file '\(module.wasmPath)' (\(resolve(module.wasmPath))) does not exist")
        }
        for (index, directory) in manifest.settings.staticDirectories.enumerated()
        where !FileSystem.isDirectory(resolve(directory.path)) {
            report(
                .warning, FieldPath("mothership.static_dirs").appending(index: index).appending("path"),
                "static directory '\(directory.path)' (\(resolve(directory.path))) does not exist; requests fall through to the routes"
            )
        }
        for listener in manifest.settings.listeners {
            guard let tls = listener.tls else { continue }
            for (key, file) in [("cert", tls.certificate), ("key", tls.key)]
            where !FileSystem.exists(resolve(file)) {
                report(
                    severity,
                    FieldPath("mothership.bind").appending(listener.name).appending("tls").appending(key),
                    "TLS file '\(file)' (\(resolve(file))) does not exist")
            }
        }
        return found
    }

    /// Relative paths in the manifest are relative to the manifest's directory.
    func resolve(_ path: String) -> String {
        FileSystem.absolute(path, base: manifestDirectory)
    }

    /// Nil when the command would start; otherwise what is wrong with it.
    func commandProblem(_ command: String, workingDirectory: String, searchPath: String) -> String? {
        if command.contains("/") {
            let resolved = FileSystem.absolute(command, base: workingDirectory)
            if !FileSystem.exists(resolved) { return "command '\(command)' (\(resolved)) does not exist" }
            if !FileSystem.isExecutableFile(resolved) {
                return "command '\(command)' (\(resolved)) is not an executable file"
            }
            return nil
        }
        for directory in searchPath.split(separator: ":")
        where FileSystem.isExecutableFile("\(directory)/\(command)") {
            return nil
        }
        return "command '\(command)' was not found on PATH"
    }
}
