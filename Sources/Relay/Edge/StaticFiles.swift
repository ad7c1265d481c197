#if canImport(Glibc)
    import Glibc
#endif

/// The static directories of one bind (SPEC §5.1) and the lookup of a request path in them: the
/// longest matching prefix wins; the rest of the path, percent-decoded, is looked up under the
/// directory; a missing file falls through to the routes. Nothing outside the directory is ever
/// served: a `..` segment (also percent-encoded) or a symbolic link whose target lies outside is
/// refused.
///
/// The lookup is one `lstat` per path segment below the directory (`realpath` only when a symbolic
/// link is on the way), made on the event loop as nginx makes its own; `StaticFileCache` keeps
/// what it found open, per thread, so that a file asked for again costs one `fstat`.
struct StaticFiles: Sendable {
    struct Mount: Sendable, Equatable {
        /// The URL prefix, without a trailing `/` (empty for `/`).
        var prefix: String
        /// The directory, resolved (no symbolic links, absolute).
        var root: String
    }

    /// Longest prefix first.
    let mounts: [Mount]

    /// `directories` are (prefix, directory) pairs; directories that do not exist are left out (a
    /// clearance warning said so).
    init(_ directories: [(prefix: String, path: String)]) {
        var mounts: [Mount] = []
        for (prefix, path) in directories {
            guard let root = Self.realPath(path) else { continue }
            var trimmed = Substring(prefix)
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            mounts.append(Mount(prefix: String(trimmed), root: root))
        }
        // Stable: of two equal prefixes, the first declared wins.
        self.mounts = mounts.enumerated().sorted {
            $0.element.prefix.utf8.count != $1.element.prefix.utf8.count
                ? $0.element.prefix.utf8.count > $1.element.prefix.utf8.count : $0.offset < $1.offset
        }.map(\.element)
    }

    /// A file found for a request.
    struct File: Sendable, Equatable {
        /// Its resolved path.
        var path: String
        var size: Int
        /// Modification time, seconds and nanoseconds since the epoch.
        var modified: Int64
        var modifiedNanoseconds: Int
        var contentType: String
        /// Its identity: the descriptor opened for it must be this file.
        var device: UInt64 = 0
        var inode: UInt64 = 0
    }

    enum Lookup: Equatable {
        /// Serve this file.
        case file(File)
        /// Not under any prefix, or no such file: the routes decide.
        case missing
        /// An attempt to leave the directory (dot segments, a link out, a malformed escape).
        case refused
        /// A directory with an `index.html`, asked for without its trailing slash: 301 to the
        /// slashed path, as nginx answers (the page's relative links need it).
        case directory
    }

    /// The mount that serves `path`, longest prefix first.
    func mount(for path: Substring) -> Mount? {
        mounts.first { Self.matches(path, prefix: $0.prefix) }
    }

    /// Finds the file for `path` (the request target without its query).
    func lookup(path: Substring) -> Lookup {
        guard let mount = mount(for: path) else { return .missing }
        return lookup(path: path, in: mount)
    }

    func lookup(path: Substring, in mount: Mount) -> Lookup {
        guard let relative = Self.segments(of: path.dropFirst(mount.prefix.utf8.count)) else {
            return .refused
        }
        return Self.walk(relative, under: mount.root, allowIndex: true, slashed: path.hasSuffix("/"))
    }

    /// The fast way: one `lstat` per segment below the (already resolved) root. A symbolic link on
    /// the way hands over to `resolve`, which checks where it really leads.
    private static func walk(
        _ relative: [String], under root: String, allowIndex: Bool, slashed: Bool = true
    ) -> Lookup {
        var path = root
        var info = stat()
        if relative.isEmpty {
            guard stat(root, &info) == 0 else { return .missing }
        }
        for segment in relative {
            path += "/"
            path += segment
            guard lstat(path, &info) == 0 else { return .missing }
            let type = info.st_mode & mode_t(S_IFMT)
            if type == mode_t(S_IFLNK) {
                return resolve(
                    root + "/" + relative.joined(separator: "/"), under: root, allowIndex: allowIndex,
                    slashed: slashed)
            }
        }
        let type = info.st_mode & mode_t(S_IFMT)
        if type == mode_t(S_IFREG) { return .file(file(at: path, info: info)) }
        if type == mode_t(S_IFDIR) && allowIndex {
            let index = walk(relative + ["index.html"], under: root, allowIndex: false)
            if case .file = index, !slashed { return .directory }
            return index
        }
        return .missing
    }

    private static func file(at path: String, info: stat) -> File {
        let name = path.split(separator: "/").last ?? ""
        return File(
            path: path, size: Int(info.st_size), modified: Int64(info.st_mtim.tv_sec),
            modifiedNanoseconds: Int(info.st_mtim.tv_nsec), contentType: MediaType.forFile(name),
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// `/assets` matches `/assets` and `/assets/x`, not `/assetsx`.
    static func matches(_ path: Substring, prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == "/"
    }

    /// The decoded path segments, without empty and `.` ones; nil when a segment is `..`, an escape
    /// is malformed, or a decoded byte is NUL or `/` or `\` (a segment must stay one segment).
    static func segments(of path: Substring) -> [String]? {
        var result: [String] = []
        for raw in path.split(separator: "/", omittingEmptySubsequences: true) {
            guard let decoded = percentDecoded(raw) else { return nil }
            if decoded == "." { continue }
            if decoded == ".." { return nil }
            result.append(decoded)
        }
        return result
    }

    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                if byte == UInt8(ascii: "\\") { return nil }
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(HexDigit.value),
                let low = iterator.next().flatMap(HexDigit.value)
            else {
                return nil
            }
            let decoded = high << 4 | low
            if decoded == 0 || decoded == UInt8(ascii: "/") || decoded == UInt8(ascii: "\\") { return nil }
            bytes.append(decoded)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// `candidate` if it is a regular file (a directory: its `index.html`) whose real path lies under
    /// `root`.
    private static func resolve(
        _ candidate: String, under root: String, allowIndex: Bool, slashed: Bool = true
    ) -> Lookup {
        guard let real = realPath(candidate) else { return .missing }
        guard real == root || real.hasPrefix(root == "/" ? "/" : root + "/") else { return .refused }
        var info = stat()
        guard stat(real, &info) == 0 else { return .missing }
        let type = info.st_mode & mode_t(S_IFMT)
        if type == mode_t(S_IFREG) { return .file(file(at: real, info: info)) }
        if type == mode_t(S_IFDIR) && allowIndex {
            let index = resolve(real + "/index.html", under: root, allowIndex: false)
            if case .file = index, !slashed { return .directory }
            return index
        }
        return .missing
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
