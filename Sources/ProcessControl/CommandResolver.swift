import Supervision

#if canImport(Glibc)
    import Glibc
#endif

/// Finds the file to exec for a manifest command, before forking, so that the common mistakes get
/// precise errors: a command with a `/` is a path (relative ones against the working directory); a
/// bare name is searched on PATH like execvp does.
enum CommandResolver {
    static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

    static func resolve(_ command: String, searchPath: String?, workingDirectory: String)
        -> Result<String, SpawnFailure>
    {
        guard !command.isEmpty else { return .failure(SpawnFailure(.notFound)) }
        if command.contains("/") {
            return executable(at: join(workingDirectory, command))
        }
        var denied = false
        for directory in (searchPath ?? defaultSearchPath).split(
            separator: ":", omittingEmptySubsequences: false)
        {
            // An empty entry means the current directory, as in execvp.
            let base = directory.isEmpty ? workingDirectory : join(workingDirectory, String(directory))
            switch executable(at: join(base, command)) {
            case .success(let path): return .success(path)
            case .failure(let failure) where failure.reason == .permissionDenied: denied = true
            case .failure: continue
            }
        }
        return .failure(SpawnFailure(denied ? .permissionDenied : .notFound))
    }

    /// Whether `directory` exists and is a directory.
    static func isDirectory(_ directory: String) -> Bool {
        var info = stat()
        return stat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    private static func executable(at path: String) -> Result<String, SpawnFailure> {
        var info = stat()
        guard stat(path, &info) == 0 else { return .failure(SpawnFailure(reason(errno))) }
        // execve refuses directories with EACCES.
        guard info.st_mode & S_IFMT != S_IFDIR else { return .failure(SpawnFailure(.permissionDenied)) }
        guard access(path, X_OK) == 0 else { return .failure(SpawnFailure(reason(errno))) }
        return .success(path)
    }

    private static func reason(_ code: Int32) -> SpawnError.Reason {
        switch code {
        case ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG: .notFound
        case EACCES, EPERM: .permissionDenied
        default: .system(SystemError.text(code))
        }
    }

    /// `path` if absolute, else `directory/path`.
    private static func join(_ directory: String, _ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }
}

/// `SpawnError.Reason` as an `Error`, for `Result` inside this module (the name and command are
/// added where the failure is reported).
package struct SpawnFailure: Error {
    package var reason: SpawnError.Reason
    /// execve failed with ETXTBSY (worth retrying).
    var textBusy = false

    init(_ reason: SpawnError.Reason) {
        self.reason = reason
    }
}
