import Foundation
import Synchronization

/// A PostgreSQL server for the flagship election tests. `.ci/run` starts one and exports its URL as
/// `MOTHERSHIP_TEST_DATABASE_URL`; without it, the first test that asks starts a throwaway cluster
/// (initdb as the postgres user into a temp dir, a free loopback port, trust authentication) that is
/// stopped and removed when the test process exits. Failing to start is an error, never a skip.
public final class PostgresCluster: Sendable {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    public let url: String
    /// Nil for a server this process did not start.
    let directory: String?
    let binaries: String?

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The one server of this test run.
    public static func shared() async throws -> PostgresCluster {
        try await sharedStart.value
    }

    private static let sharedStart = Task.detached { () throws -> PostgresCluster in
        if let url = ProcessInfo.processInfo.environment["MOTHERSHIP_TEST_DATABASE_URL"], !url.isEmpty {
            return PostgresCluster(url: url, directory: nil, binaries: nil)
        }
        // initdb and pg_ctl take seconds: waited for on a thread of their own, never on one of the
        // few threads every test's async code shares (blocking those delayed other suites' timers).
        let cluster = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<PostgresCluster, any Error>) in
            Thread { continuation.resume(with: Result { try start() }) }.start()
        }
        started.withLock { $0 = cluster }
        atexit { PostgresCluster.started.withLock { $0 }?.stop() }
        return cluster
    }

    private static let started = Mutex<PostgresCluster?>(nil)

    init(url: String, directory: String?, binaries: String?) {
        self.url = url
        self.directory = directory
        self.binaries = binaries
    }

    /// The newest `/usr/lib/postgresql/N/bin` (or `$MOTHERSHIP_TEST_PG_BIN`).
    static func findBinaries() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["MOTHERSHIP_TEST_PG_BIN"] { return explicit }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(
            Int.init)
        for version in versions.sorted(by: >)
        where FileManager.default.isExecutableFile(
            atPath: "\(root)/\(version)/bin/initdb")
        {
            return "\(root)/\(version)/bin"
        }
        throw Failure(
            description:
                "PostgreSQL server binaries not found under \(root) (install postgresql, or set MOTHERSHIP_TEST_DATABASE_URL)"
        )
    }

    /// initdb + pg_ctl start on a free port; the data directory and socket live in a fresh temp dir.
    static func start() throws -> PostgresCluster {
        let binaries = try findBinaries()
        let directory = "/tmp/mothership-pg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        if getuid() == 0 {
            // initdb refuses to run as root; /tmp is traversable, so postgres can reach its own dir.
            try FileManager.default.setAttributes(
                [.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: directory)
        }
        let port = ProcessInspector.freePort()
        do {
            try run(
                binaries + "/initdb",
                ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            try run(
                binaries + "/pg_ctl",
                [
                    "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-t", "60", "-o",
                    "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    "start",
                ])
        } catch {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: directory)
            throw Failure(description: "\(error)\n\(log)")
        }
        return PostgresCluster(
            url: "postgres://postgres@127.0.0.1:\(port)/postgres", directory: directory, binaries: binaries)
    }

    /// Stops the server (immediate mode: it is throwaway) and removes its directory.
    public func stop() {
        guard let directory, let binaries else { return }
        try? Self.run(binaries + "/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a PostgreSQL tool (as the postgres user when we are root) and waits for it. posix_spawn
    /// and waitpid on its pid, not Foundation's Process: from a test's async context, Process at
    /// times never noticed the exit of a `runuser` whose grandchild (the server) daemonized.
    static func run(_ tool: String, _ arguments: [String]) throws {
        // The wrapper closes every descriptor the child inherited beyond stdio: the server daemonizes
        // from it and would otherwise hold other tests' sockets open for the whole run (a client's
        // close would never reach its peer). It starts from /tmp: the postgres user may not be
        // allowed into the current directory.
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", tool] : [tool]
        let script =
            #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; cd /tmp && exec "$@""#
        let argv = ["/bin/bash", "-c", script, "bash"] + command + arguments
        let logPath = "/tmp/mothership-pg-tool-\(UUID().uuidString.prefix(8)).log"
        defer { unlink(logPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else {
            throw Failure(description: "cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw Failure(
                description:
                    "\(tool) \(arguments.joined(separator: " ")) \(exited ? "exited with status \(code)" : "was killed by signal \(status & 0x7f)"):\n\(text)"
            )
        }
    }
}
