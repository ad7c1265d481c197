import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The static files one thread served lately, kept open with what their answers need (SPEC §5.1):
/// a file asked for again costs one `fstat` of its descriptor instead of a walk of its path, an
/// `open` and a `close`, and its ETag, date and type are not formatted again.
///
/// Never stale past what a `fstat` can see: every request checks the descriptor, so a file changed
/// in place or truncated is answered with its new size and validators, and a file deleted or
/// renamed over (no link left to the open file) is looked up again by its path. What only the path
/// shows (a file renamed away, a symbolic link pointed elsewhere, a new `index.html`) is seen within
/// `revalidation`, when the path is walked again. Bounded: at most `capacity` files per thread,
/// the least recently used closed first; only files found are kept, so a flood of distinct
/// missing paths leaves it as it was. One per thread (`LoopContext`): never locked.
final class StaticFileCache {
    static let capacity = 256
    static let revalidation = TimeAmount.seconds(1)

    struct Entry {
        var descriptor: CInt
        var file: StaticFiles.File
        var etag: String
        var lastModified: String
        /// When the path was last walked (monotonic nanoseconds).
        var walked: UInt64
    }

    /// What a lookup found.
    enum Found {
        case file(Entry)
        case missing
        case refused
        case directory
    }

    private struct Key: Hashable {
        let root: String
        let path: String
    }

    private var entries = LRUCache<Key, Entry>(capacity: StaticFileCache.capacity)

    var count: Int { entries.count }

    /// The file `files` serves for `path` under `mount`, open. `now`: monotonic nanoseconds.
    func find(path: Substring, in mount: StaticFiles.Mount, of files: StaticFiles, now: UInt64) -> Found {
        let key = Key(root: mount.root, path: String(path))
        if var entry = entries.get(key) {
            var info = stat()
            if now &- entry.walked < UInt64(Self.revalidation.nanoseconds),
                fstat(entry.descriptor, &info) == 0, info.st_nlink > 0
            {
                if Int(info.st_size) != entry.file.size || Int64(info.st_mtim.tv_sec) != entry.file.modified
                    || Int(info.st_mtim.tv_nsec) != entry.file.modifiedNanoseconds
                {
                    entry.update(info)
                    entries.set(key, entry)
                }
                return .file(entry)
            }
            close(entry.descriptor)
            entries.remove(key)
        }
        switch files.lookup(path: path, in: mount) {
        case .file(let file):
            let descriptor = open(file.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { return .missing }
            var info = stat()
            // The file opened must be the one the walk checked: a path swapped in between (for a
            // link out of the directory) is not served.
            guard fstat(descriptor, &info) == 0, UInt64(info.st_dev) == file.device,
                UInt64(info.st_ino) == file.inode, info.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG)
            else {
                close(descriptor)
                return .missing
            }
            var entry = Entry(descriptor: descriptor, file: file, etag: "", lastModified: "", walked: now)
            entry.update(info)
            if let evicted = entries.set(key, entry) { close(evicted.descriptor) }
            return .file(entry)
        case .missing: return .missing
        case .refused: return .refused
        case .directory: return .directory
        }
    }

    /// Closes every descriptor (the thread ends).
    func closeAll() {
        for key in entries.keysByRecency {
            if let entry = entries.get(key) { close(entry.descriptor) }
        }
        entries = LRUCache(capacity: Self.capacity)
    }
}

extension StaticFileCache.Entry {
    /// Takes the file's size and modification time from `info`, and the validators made of them.
    fileprivate mutating func update(_ info: stat) {
        file.size = Int(info.st_size)
        file.modified = Int64(info.st_mtim.tv_sec)
        file.modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        etag = StaticPlan.etag(
            modified: file.modified, nanoseconds: file.modifiedNanoseconds, size: file.size)
        lastModified = HTTPDate.format(file.modified)
    }
}
