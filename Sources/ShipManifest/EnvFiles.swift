/// What the caller found at an `env_file` path: its text, or why it could not be read.
public enum EnvFileRead: Sendable, Equatable {
    case text(String)
    /// `no such file`, `permission denied`…
    case failed(String)
}

/// Reads an `env_file` as written in the manifest (relative paths are the caller's to resolve).
/// The loader never touches files: the CLI passes a closure over the file system, tests a dictionary.
public typealias EnvFileReader = @Sendable (String) -> EnvFileRead

extension TableReader {
    /// `env_file = ".env"` or `env_file = [".env", ".env.local"]`.
    func envFilePaths() -> [String]? {
        guard let node = entries["env_file"] else { return nil }
        if case .string(let path) = node {
            if path.allSatisfy(\.isWhitespace) {
                context.error(self.path.appending("env_file"), "must not be empty")
                return nil
            }
            return [path]
        }
        guard case .array = node else {
            typeError("env_file", expected: "a path or an array of paths", found: node)
            return nil
        }
        return strings("env_file")
    }

    /// Reads and parses the table's `env_file`s (later files win), reporting a file that cannot be read
    /// or has a malformed line as an error at `env_file` naming the file and the line.
    func envFileValues(reader: EnvFileReader, environment: [String: String]) -> (
        paths: [String]?, values: [String: String]
    ) {
        guard let paths = envFilePaths() else { return (nil, [:]) }
        let isList: Bool = if case .some(.array) = entries["env_file"] { true } else { false }
        var values: [String: String] = [:]
        for (index, file) in paths.enumerated() {
            let at = isList ? path.appending("env_file").appending(index: index) : path.appending("env_file")
            switch reader(file) {
            case .failed(let reason):
                context.error(at, "env file '\(file)' cannot be read: \(reason)")
            case .text(let text):
                let parsed = Dotenv.parse(
                    text, environment: environment.merging(values) { _, new in new })
                for failure in parsed.failures {
                    context.error(at, "\(file):\(failure.line): \(failure.message)")
                }
                values.merge(parsed.values) { _, new in new }
            }
        }
        return (paths, values)
    }
}
