import Foundation
import MothershipTestSupport
import Testing

/// Containment through the binary (SPEC §3, issue 19): nothing a vessel starts outlives it or
/// mothership, whether it stays in the vessel's process group, calls setsid or double-forks; on a
/// plain host, as PID 1 of a container, and (with what still holds) as a user without privileges.
@Suite("Containment through the binary", .timeLimit(.minutes(3)))
struct ContainmentEndToEndTests {
    /// `sleep` arguments unique to one test run, so that parallel tests never count each other's.
    struct Markers {
        let base = Int.random(in: 800_000..<990_000) * 10
        /// Long-lived helpers of the `group`, `daemon` and `double` ships.
        var helpers: Int { base }
        /// What `leaky` starts beside its main process.
        var leaked: Int { base + 1 }
        /// `leaky`'s main process.
        var main: Int { base + 2 }
        /// The crash loop's setsid sleep.
        var loop: Int { base + 3 }
        var all: [Int] { [helpers, leaked, main, loop] }
        /// In the command line of the `sh -c` server and its python (a port alone is not unique:
        /// a test running beside this one may have been handed the same free port).
        var server: String { "served-\(base)" }
    }

    /// Living processes whose command line is exactly `sleep MARKER`.
    static func sleepers(_ marker: Int) -> [Int32] {
        let wanted = Array("sleep\u{0}\(marker)\u{0}".utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
                return false
            }
            return Array(data) == wanted && ProcessInspector.isAlive(pid)
        }
    }

    static func sleepers(_ markers: [Int]) -> [Int32] { markers.flatMap { sleepers($0) } }

    /// Processes whose command line contains `text` (NULs read as spaces).
    static func processes(containing text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
                return false
            }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) && ProcessInspector.isAlive(pid)
        }
    }

    /// A script that counts the living `sleep MARKER` processes, then starts what `leaky` leaves.
    static func leakyScript(_ markers: Markers, escaping: Bool) -> String {
        """
        n=0
        for f in /proc/[0-9]*/cmdline; do
          [ "$(tr '\\000' ' ' < "$f" 2>/dev/null)" = "sleep \(markers.leaked) " ] && n=$((n+1))
        done
        echo "leftovers=$n"
        \(escaping ? "setsid sleep \(markers.leaked) &\n(setsid sleep \(markers.leaked) &)" : "")
        sleep \(markers.leaked) &
        exec sleep \(markers.main)
        """
    }

    /// Ships that start grandchildren every way a process can: same group, setsid, double fork, a
    /// server under `sh -c` holding a port, one that leaks on every run, and a crash loop.
    static func fleet(_ markers: Markers, port: Int) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-containment")
        try directory.write("leaky.sh", leakyScript(markers, escaping: true))
        try directory.write(
            "ship-manifest.toml",
            """
            [[fleet.web]]
            name = "group"
            command = "/bin/sh"
            args = ["-c", "sleep \(markers.helpers) & sleep \(markers.helpers) & wait"]

            [[fleet.web]]
            name = "daemon"
            command = "/bin/sh"
            args = ["-c", "setsid sleep \(markers.helpers) & wait"]

            [[fleet.web]]
            name = "double"
            command = "/bin/sh"
            args = ["-c", "(setsid sleep \(markers.helpers) &); (sleep \(markers.helpers) &); exec sleep \(markers.helpers)"]

            [[fleet.web]]
            name = "server"
            command = "/bin/sh"
            args = ["-c", "python3 -m http.server $PORT --bind 127.0.0.1 --directory \(directory.path)/\(markers.server)"]
            bind = "127.0.0.1:\(port)"

            [[fleet.workers]]
            name = "leaky"
            command = "/bin/sh"
            args = ["leaky.sh"]
            critical = false

            [[fleet.workers]]
            name = "loop"
            command = "/bin/sh"
            args = ["-c", "setsid sleep \(markers.loop) & exit 1"]
            critical = false
            """)
        return directory
    }

    /// The whole scenario against a running mothership whose own pid (as this test sees it) is
    /// `mothershipPID()`: the crash loop never has two leftovers alive, a kill -9 of `leaky`'s main
    /// process finds no leftover at the restart, and a kill -9 of mothership leaves nothing alive.
    static func scenario(
        _ mothership: RunningMothership, markers: Markers, port: Int, mothershipPID: () -> Int32?
    )
        async throws
    {
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitFor("containment: cgroup")
        // group 2, daemon 1, double 3 helpers; leaky 3 leaked and its main.
        try await mothership.waitUntil("every helper to run", timeout: .seconds(20)) {
            sleepers(markers.helpers).count == 6 && sleepers(markers.leaked).count == 3
                && sleepers(markers.main).count == 1 && !processes(containing: markers.server).isEmpty
        }

        // The crash loop, sampled while it restarts four times.
        var most = 0
        try await mothership.waitUntil("four restarts of the crash loop", timeout: .seconds(30)) {
            most = max(most, sleepers(markers.loop).count)
            return mothership.output.components(separatedBy: "ship 'loop' started (pid").count > 5
        }
        #expect(most <= 1, "the crash loop had \(most) leftovers alive at once")

        // kill -9 of leaky's main process: its leftovers are dead before the restart counts them.
        let main = try #require(sleepers(markers.main).first)
        let firstLeaked = sleepers(markers.leaked)
        kill(main, SIGKILL)
        try await mothership.waitUntil("leaky's restart", timeout: .seconds(20)) {
            mothership.output.components(separatedBy: "leftovers=").count >= 3
        }
        let counts = mothership.lines.filter { $0.contains("leftovers=") }
        #expect(counts.count >= 2 && counts.allSatisfy { $0.hasSuffix("leftovers=0") }, "\(counts)")
        for pid in firstLeaked { #expect(!ProcessInspector.isAlive(pid)) }

        // kill -9 of mothership: nothing it started stays alive. The kernel (a PID namespace's end)
        // or the keeper (the cgroups) kills them at once; how long the teardown takes is the
        // machine's (over 2 s at load 9 in CI, every process gone a moment later), so the deadline
        // is generous: a leak is a process still there after it.
        try await mothership.waitUntil("leaky's second generation", timeout: .seconds(20)) {
            sleepers(markers.leaked).count == 3 && sleepers(markers.main).count == 1
        }
        let pid = try #require(mothershipPID())
        kill(pid, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(20)
        var alive: [Int32] = []
        repeat {
            alive = sleepers(markers.all) + processes(containing: markers.server)
            if alive.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < deadline
        #expect(alive.isEmpty, "alive 20 s after kill -9 of mothership: \(alive.map(describe))")
    }

    /// `PID (state, parent PID): command line`, for a failure message.
    static func describe(_ pid: Int32) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let command =
            (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?
            .replacingOccurrences(of: "\0", with: " ") ?? "?"
        return "\(pid) (\(fields.first ?? "?"), parent \(fields.dropFirst().first ?? "?")): \(command)"
    }

    static func cleanUp(_ markers: Markers) {
        for pid in sleepers(markers.all) { kill(pid, SIGKILL) }
    }

    @Test func nothingAVesselStartedOutlivesItOrAKilledMothership() async throws {
        guard getuid() == 0 else { return }  // reason: cgroups need root here; the non-root test covers the rest
        let markers = Markers()
        let port = ProcessInspector.freePort()
        let directory = try Self.fleet(markers, port: port)
        defer { directory.remove() }
        defer { Self.cleanUp(markers) }
        let mothership = try RunningMothership([], in: directory.path)
        defer { mothership.stop() }
        try await Self.scenario(mothership, markers: markers, port: port) { mothership.pid }
        _ = try await mothership.waitForExit()
    }

    @Test func theSameHoldsWithMothershipAsPIDOneOfAContainer() async throws {
        // reason: a PID namespace needs root (CAP_SYS_ADMIN) and util-linux's unshare
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return }
        let markers = Markers()
        let port = ProcessInspector.freePort()
        let directory = try Self.fleet(markers, port: port)
        defer { directory.remove() }
        defer { Self.cleanUp(markers) }
        let mothership = try RunningMothership(
            [], in: directory.path,
            launcher: ["/usr/bin/unshare", "--fork", "--pid", "--mount-proc", "--kill-child"])
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        // Inside, mothership is PID 1 (MS_PID); here it is unshare's only child.
        try await Self.scenario(mothership, markers: markers, port: port) {
            ProcessInspector.children(of: mothership.pid).first
        }
    }

    @Test func asAnUnprivilegedUserTheProcessGroupsStillDieAndTheWarningSaysWhatDoesNot() async throws {
        // reason: switching to `nobody` needs root; as non-root the whole suite already runs unprivileged
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return }
        let markers = Markers()
        let directory = try TemporaryDirectory(prefix: "mothership-nobody")
        defer { directory.remove() }
        defer { Self.cleanUp(markers) }
        chmod(directory.path, 0o755)
        try directory.write("leaky.sh", Self.leakyScript(markers, escaping: false))
        try directory.write(
            "ship-manifest.toml",
            """
            [[fleet.web]]
            name = "group"
            command = "/bin/sh"
            args = ["-c", "sleep \(markers.helpers) & sleep \(markers.helpers) & wait"]

            [[fleet.workers]]
            name = "leaky"
            command = "/bin/sh"
            args = ["leaky.sh"]
            critical = false
            """)
        chmod(directory.file("leaky.sh"), 0o644)
        chmod(directory.file("ship-manifest.toml"), 0o644)
        // setpriv execs (no intermediate process): the pid is mothership's.
        let mothership = try RunningMothership(
            [], in: directory.path,
            launcher: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        defer { mothership.stop() }
        try await mothership.waitFor("lifecycle: Running")
        try await mothership.waitFor("containment: process groups only")
        #expect(mothership.output.contains("(setsid, double fork) are not killed"))
        try await mothership.waitUntil("every helper to run", timeout: .seconds(20)) {
            Self.sleepers(markers.helpers).count == 2 && Self.sleepers(markers.leaked).count == 1
                && Self.sleepers(markers.main).count == 1
        }
        // A member of the main process's group is dead before the restart.
        kill(try #require(Self.sleepers(markers.main).first), SIGKILL)
        try await mothership.waitUntil("leaky's restart", timeout: .seconds(20)) {
            mothership.output.components(separatedBy: "leftovers=").count >= 3
        }
        let counts = mothership.lines.filter { $0.contains("leftovers=") }
        #expect(counts.allSatisfy { $0.hasSuffix("leftovers=0") }, "\(counts)")
        // kill -9 of mothership: the keeper (also unprivileged) kills every vessel's process group.
        try await mothership.waitUntil("leaky's second generation", timeout: .seconds(20)) {
            Self.sleepers(markers.leaked).count == 1 && Self.sleepers(markers.main).count == 1
        }
        mothership.signal(SIGKILL)
        let deadline = ContinuousClock.now + .seconds(2)
        var alive: [Int32] = []
        repeat {
            alive = Self.sleepers(markers.all)
            if alive.isEmpty { break }
            try await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < deadline
        #expect(alive.isEmpty, "alive 2 s after kill -9 of mothership: \(alive.map(Self.describe))")
    }
}
