import ShipManifest

#if canImport(Glibc)
    import Glibc
#endif

/// Reads and validates the manifest file for a command, adding the checks that depend on this machine
/// (commands on PATH, files and directories that must exist).
struct ManifestFile {
    /// As given on the command line, for messages.
    let path: String
    /// The directory relative paths in the manifest are resolved against.
    let directory: String
    /// The manifest's text (its SHA-256 is the flagship election's default deploy id).
    let text: String
    let result: ManifestLoader.Result
    /// The loader's diagnostics plus this machine's, in document order.
    let diagnostics: [Diagnostic]

    enum Purpose {
        /// Offline validation: machine-dependent problems are warnings.
        case clearance
        /// About to run: an undefined variable, a missing command or WASM file are errors.
        case run
    }

    /// With `procfile`, `path` is a Procfile, run foreman-style (`run --procfile`).
    static func load(_ path: String, procfile: Bool = false, selection: TagSelection, purpose: Purpose)
        throws(FileSystem.Failure) -> ManifestFile
    {
        if procfile {
            let source = try ProcfileSource.read(path)
            return load(
                text: source.foremanManifest, path: path, directory: source.directory, selection: selection,
                purpose: purpose)
        }
        guard FileSystem.exists(path) else {
            throw FileSystem.Failure(
                description:
                    "\(path): no such manifest file (create one with `mothership init`, or pass -c FILE)")
        }
        let text = try FileSystem.read(path)
        return load(
            text: text, path: path, directory: FileSystem.directory(of: path), selection: selection,
            purpose: purpose)
    }

    /// A manifest that is not (or not yet) a file: `run --procfile` builds one in memory. `path` names it
    /// in messages; `directory` is what relative paths (env files, commands) are resolved against.
    static func load(
        text: String, path: String, directory: String, selection: TagSelection, purpose: Purpose
    ) -> ManifestFile {
        let environment = FileSystem.environment
        let options = ManifestLoader.Options(
            selection: selection, strictEnvironment: purpose == .run,
            defaultName: FileSystem.lastComponent(directory),
            envFiles: { file in
                let resolved = FileSystem.absolute(file, base: directory)
                guard FileSystem.exists(resolved) else { return .failed("\(resolved) does not exist") }
                do {
                    return .text(try FileSystem.read(resolved))
                } catch {
                    return .failed("\(error)")
                }
            })
        let result = ManifestLoader.load(text: text, environment: environment, options: options)
        var diagnostics = result.diagnostics
        if let manifest = result.manifest, let sourceMap = result.sourceMap {
            let checker = MachineCheck(
                manifestDirectory: directory, environment: environment, sourceMap: sourceMap,
                severity: purpose == .run ? .error : .warning)
            diagnostics += checker.check(manifest)
        }
        return ManifestFile(
            path: path, directory: directory, text: text, result: result, diagnostics: diagnostics)
    }

    /// The manifest when there were no errors at all (the machine's included).
    var manifest: Manifest? { diagnostics.hasErrors ? nil : result.manifest }

    func print(to stream: inout some TextOutputStream) {
        for diagnostic in diagnostics { Swift.print(diagnostic.rendered(file: path), to: &stream) }
    }
}

/// Standard error as a text stream.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes {
                Glibc.write(2, $0.baseAddress! + offset, $0.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// Standard output as a text stream (for `print(..., to:)` symmetry).
struct StandardOutput: TextOutputStream {
    mutating func write(_ string: String) {
        Swift.print(string, terminator: "")
    }
}
