import CMothershipSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What keeps everything a vessel starts inside the vessel (SPEC §3): a cgroup per vessel process
/// below one per run, chosen once per process from a chain that works anywhere:
///
/// 1. cgroup v2 (the unified hierarchy, wherever it is mounted) when a subtree can be created under
///    our own cgroup and we may move processes into it (root, or a delegated subtree);
/// 2. else a cgroup v1 hierarchy with the `freezer` controller, else one with `pids`;
/// 3. else process groups only, with a warning saying what that leaves uncovered.
///
/// A cgroup holds a vessel's setsid and double-forked descendants too; `ms_spawn` puts the child in
/// it before its exec, so nothing escapes in between. A cgroup outlives its creator, so a keeper
/// process (keeper.c) kills the run's cgroups, and the process groups it was told about, when
/// mothership dies in any way. A run's cgroup is `mothership-PID-PIDNS` (the PID namespace's inode,
/// so runs in different containers never take each other's for stale); one left by a run that was
/// killed with its keeper is emptied and removed by the next start in the same PID namespace.
package final class Containment: Sendable {
    package enum Kind: String, Sendable, CaseIterable {
        case cgroup2 = "cgroup v2"
        case cgroup1 = "cgroup v1"
        case processGroups = "process groups"
    }

    package let kind: Kind
    /// This run's cgroup directory; nil with process groups only.
    package let root: String?
    /// Why each mechanism before `kind` could not be used.
    package let refusals: [String]
    /// How many cgroups of killed runs were found and removed at start-up.
    package let staleRemoved: Int
    /// 0 when the keeper could not be started.
    package let keeperPID: Int32
    private let keeperSocket: Int32
    private let sequence = Atomic<UInt64>(0)

    private init(
        kind: Kind, root: String?, refusals: [String], staleRemoved: Int, keeperPID: Int32,
        keeperSocket: Int32
    ) {
        self.kind = kind
        self.root = root
        self.refusals = refusals
        self.staleRemoved = staleRemoved
        self.keeperPID = keeperPID
        self.keeperSocket = keeperSocket
    }

    /// Closing the keeper's socket is what tells it to clear the run's cgroups (tests drop their own
    /// instances; the engine's lives as long as the process).
    deinit {
        guard keeperSocket >= 0 else { return }
        close(keeperSocket)
        // Its child, so its zombie is ours to collect (the engine's reaper leaves unknown children to
        // their owner); it exits once it has cleared the cgroups.
        var status: Int32 = 0
        while waitpid(keeperPID, &status, 0) < 0 && errno == EINTR {}
    }

    /// Picks the first of `kinds` that works here, creates the run's cgroup and starts the keeper.
    package static func setUp(trying kinds: [Kind] = Kind.allCases) -> Containment {
        var refusals: [String] = []
        var stale = 0
        for kind in kinds {
            let candidates: [(String, String)]
            switch kind {
            case .cgroup2: candidates = CgroupFiles.unified().map { [("cgroup v2", $0)] } ?? []
            case .cgroup1:
                candidates = ["freezer", "pids"].compactMap { controller in
                    CgroupFiles.legacy(controller).map { ("cgroup v1 \(controller)", $0) }
                }
            case .processGroups:
                return started(kind: kind, root: nil, refusals: refusals, stale: stale)
            }
            if candidates.isEmpty { refusals.append("\(kind.rawValue): not mounted") }
            for (label, base) in candidates {
                switch CgroupFiles.makeRunRoot(in: base) {
                case .success(let (root, removed)):
                    stale += removed
                    return started(kind: kind, root: root, refusals: refusals, stale: stale)
                case .failure(let reason):
                    refusals.append("\(label) at \(base): \(reason)")
                }
            }
        }
        return started(kind: .processGroups, root: nil, refusals: refusals, stale: stale)
    }

    private static func started(kind: Kind, root: String?, refusals: [String], stale: Int) -> Containment {
        var pid: pid_t = 0
        var socket: Int32 = -1
        let error = ms_start_keeper("/proc/self/exe", root, &pid, &socket)
        var refusals = refusals
        if error != 0 { refusals.append("keeper: \(SystemError.text(error))") }
        return Containment(
            kind: kind, root: root, refusals: refusals, staleRemoved: stale, keeperPID: error == 0 ? pid : 0,
            keeperSocket: error == 0 ? socket : -1)
    }

    /// Whether a vessel's setsid and double-forked descendants are contained.
    package var isComplete: Bool { root != nil && keeperPID != 0 }

    /// One line for the log: what a user gets here.
    package var summary: String {
        let keeper =
            keeperPID != 0
            ? "with mothership too, however it ends (keeper pid \(keeperPID))"
            : "but NOT when mothership is killed (no keeper: \(refusals.last ?? "?"))"
        if let root {
            return
                "containment: \(kind.rawValue) (\(root)): everything a vessel starts, setsid and double-forked processes included, is killed when it exits, restarts or stops, and \(keeper)"
        }
        return
            "containment: process groups only (\(refusals.joined(separator: "; "))): processes that leave their vessel's process group (setsid, double fork) are not killed when the vessel exits or restarts, nor when mothership is killed with SIGKILL; they are killed when mothership lands (it is their subreaper). A vessel's own process group is killed when it exits, \(keeper)"
    }

    // MARK: Cells

    /// A new cgroup for one process named `name` (its directory). Nil with process groups only.
    package func makeCell(for name: String) -> Result<String?, SpawnFailure> {
        guard let root else { return .success(nil) }
        let number = sequence.add(1, ordering: .relaxed).newValue
        let safe = String(
            String.UnicodeScalarView(
                name.unicodeScalars.prefix(64).map { scalar in
                    scalar.properties.isAlphabetic && scalar.isASCII || ("0"..."9").contains(scalar)
                        || scalar == "-" || scalar == "_" ? scalar : "_"
                }))
        let path = "\(root)/\(safe).\(number)"
        guard mkdir(path, 0o755) == 0 else {
            return .failure(
                SpawnFailure(.system("cannot create its cgroup \(path): \(SystemError.text(errno))")))
        }
        return .success(path)
    }

    /// Tells the keeper that process group `pgid` is a vessel's (`true`) or gone (`false`).
    package func track(_ pgid: Int32, _ ours: Bool) {
        guard keeperSocket >= 0 else { return }
        let message = "\(ours ? "+" : "-")\(pgid)"
        _ = message.withCString { ms_send(keeperSocket, $0, strlen($0)) }
    }
}

/// Why a cgroup hierarchy cannot contain our vessels.
package struct Refusal: Error, CustomStringConvertible {
    var text: String
    package var description: String { text }
}

/// Where the cgroup hierarchies are and the run's own directory in one of them.
package enum CgroupFiles {
    /// Our cgroup directory in the unified (v2) hierarchy, when one is mounted.
    static func unified() -> String? {
        directory(fileSystem: "cgroup2", controller: nil, membership: "0::")
    }

    /// Our cgroup directory in the v1 hierarchy of `controller`, when one is mounted.
    static func legacy(_ controller: String) -> String? {
        directory(fileSystem: "cgroup", controller: controller, membership: nil)
    }

    private static func directory(fileSystem: String, controller: String?, membership: String?) -> String? {
        guard let mounts = readText("/proc/self/mountinfo"), let groups = readText("/proc/self/cgroup") else {
            return nil
        }
        // Our path in that hierarchy: "0::/path" (v2) or "N:ctrl1,ctrl2:/path" (v1).
        var ownPath: String?
        for line in groups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if let membership, line.hasPrefix(membership) {
                ownPath = String(fields[2])
            } else if let controller, fields[1].split(separator: ",").contains(Substring(controller)) {
                ownPath = String(fields[2])
            }
        }
        guard let ownPath else { return nil }
        for line in mounts.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let left = halves[0].split(separator: " ")
            let right = halves[1].split(separator: " ")
            guard left.count >= 5, right.count >= 3, right[0] == fileSystem else { continue }
            if let controller, !right[2].split(separator: ",").contains(Substring(controller)) { continue }
            let mountRoot = String(left[3])
            let mountPoint = String(left[4])
            // A mount of a subtree (containers): our path is relative to its root.
            var relative = ownPath
            if mountRoot != "/" {
                guard ownPath == mountRoot || ownPath.hasPrefix(mountRoot + "/") else { continue }
                relative = String(ownPath.dropFirst(mountRoot.count))
            }
            let joined = mountPoint + (relative == "/" ? "" : relative)
            return joined
        }
        return nil
    }

    /// Removes the run cgroups in `base` whose mothership died (same PID namespace, pid gone), then
    /// creates ours and checks that processes can be moved into it.
    package static func makeRunRoot(in base: String) -> Result<(String, Int), Refusal> {
        let namespace = pidNamespace()
        var removed = 0
        var namespaces: Set<String>?
        if let directory = opendir(base) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                // mothership-PID-PIDNS, or mothership-PID-PIDNS-N for a process's later instances (tests).
                let parts = name.split(separator: "-")
                guard parts.count == 3 || parts.count == 4, parts[0] == "mothership",
                    let pid = Int32(parts[1]),
                    !(parts[2] == Substring(namespace) && pid == getpid())
                else { continue }
                let dead: Bool
                if parts[2] == Substring(namespace) {
                    dead = kill(pid, 0) != 0 && errno == ESRCH
                } else {
                    // Another PID namespace's run (a container's): from the initial namespace every
                    // process is visible, so a namespace no process is in any more is gone, with its
                    // mothership. From inside a container nothing can be told: left alone.
                    if namespace == initialPIDNamespace && namespaces == nil {
                        namespaces = livingNamespaces()
                    }
                    dead = namespace == initialPIDNamespace && namespaces?.contains(String(parts[2])) == false
                }
                if dead && ms_cgroup_clear("\(base)/\(name)", 1, 2000) == 0 { removed += 1 }
            }
            closedir(directory)
        }
        guard access("\(base)/cgroup.procs", W_OK) == 0 else {
            return .failure(
                Refusal(text: "cannot move processes (\(base)/cgroup.procs: \(SystemError.text(errno)))"))
        }
        let instance = instances.add(1, ordering: .relaxed).oldValue
        let root = "\(base)/mothership-\(getpid())-\(namespace)" + (instance == 0 ? "" : "-\(instance)")
        // Ours by name already: left by an earlier process with our pid, which is dead.
        _ = ms_cgroup_clear(root, 1, 2000)
        guard mkdir(root, 0o755) == 0 else { return .failure(Refusal(text: SystemError.text(errno))) }
        return .success((root, removed))
    }

    /// Containments made by this process so far: each gets its own run cgroup.
    private static let instances = Atomic<Int>(0)

    /// The initial PID namespace's inode (PROC_PID_INIT_INO), the host's.
    static let initialPIDNamespace = "4026531836"

    /// The PID namespaces some living process is in (read once per start-up, lazily).
    private static func livingNamespaces() -> Set<String> {
        var seen = Set<String>()
        for process in ProcStat.all() {
            var buffer = [CChar](repeating: 0, count: 64)
            let count = readlink("/proc/\(process.pid)/ns/pid", &buffer, buffer.count - 1)
            guard count > 0 else { continue }
            seen.insert(
                String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self).filter(
                    \.isNumber))
        }
        return seen
    }

    /// The inode of our PID namespace ("pid:[4026531836]" -> "4026531836").
    package static func pidNamespace() -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/self/ns/pid", &buffer, buffer.count - 1)
        guard count > 0 else { return "0" }
        let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(text.filter(\.isNumber))
    }

    static func readText(_ path: String) -> String? {
        let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
