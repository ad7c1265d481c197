import CMothershipSystem
import Foundation
import ProcessControl
import Supervision
import Testing

/// Containment (SPEC §3): every process a vessel starts, inside or outside its process group, dies
/// with it, before it is restarted, and with mothership. These run as root on CI, where the engine
/// contains children in cgroups; elsewhere the cgroup tests say why they do not apply.
@Suite("Containment of a vessel's descendants")
struct ContainmentTests {
    /// Why the cgroup tests cannot run here, or nil.
    static var noCgroups: String? {
        if getuid() != 0 { return "not root: no cgroup can be created here" }
        if ProcessTable.containment().complete { return nil }
        return "the engine fell back: \(ProcessTable.containment().summary)"
    }

    /// The pids printed one per line on stdout until `count` have come.
    static func pids(_ recorder: OutputRecorder, count: Int) async -> [Int32] {
        _ = await eventually { recorder.texts(.stdout).count >= count }
        return recorder.texts(.stdout).compactMap { Int32($0) }
    }

    @Test(.timeLimit(.minutes(1)))
    func theEngineSaysHowItContains() {
        let containment = ProcessTable.containment()
        #expect(containment.summary.hasPrefix("containment: "))
        if getuid() == 0 {
            // A root process on a Linux host can always create a cgroup v2 or v1 subtree.
            #expect(containment.complete, "\(containment.summary)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func whatAnExitedProcessLeftBehindIsDeadWhenItsExitIsReported() async throws {
        let recorder = OutputRecorder()
        // A setsid daemon, a double fork and a member of the group, then the main process exits.
        let process = try await launch(
            shell(
                "setsid sleep 300 & echo $!; (sleep 300 & echo $!); sleep 300 & echo $!; exit 3",
                recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 3))
        let left = await Self.pids(recorder, count: 3)
        #expect(left.count == 3)
        if let reason = Self.noCgroups {
            // Process groups only: the group member is gone, the other two are documented as escaping.
            #expect(isDead(left[2]), "\(reason)")
            for pid in left { kill(pid, SIGKILL) }
            return
        }
        // Dead already when the exit is reported, not eventually: a restart never meets them.
        for pid in left { #expect(isDead(pid), "pid \(pid) outlived its vessel's main process") }
    }

    @Test(.timeLimit(.minutes(1)))
    func sigkillToTheGroupTakesTheWholeContainedSet() async throws {
        guard Self.noCgroups == nil else { return }
        let recorder = OutputRecorder()
        let process = try await launch(
            shell(
                "setsid sleep 300 & echo $!; (setsid sleep 300 & echo $!); exec sleep 300", recorder: recorder
            ))
        let escaped = await Self.pids(recorder, count: 2)
        #expect(escaped.count == 2)
        // Out of the group once setsid has run.
        for pid in escaped {
            #expect(await eventually { !isDead(pid) && StatFields(pid: pid)?.group != process.pid })
        }
        process.signalGroup(SIGKILL)
        #expect(await process.exitStatus() == .signaled(signal: SIGKILL))
        for pid in escaped { #expect(isDead(pid)) }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCgroupV1FreezerCellIsClearedAndTheKeeperClearsWhatIsLeftWhenItsOwnerGoes() async throws {
        guard getuid() == 0 else { return }  // reason: cgroup v1 directories belong to root
        var pids: [Int32] = []
        var root = ""
        do {
            let containment = Containment.setUp(trying: [.cgroup1])
            #expect(containment.kind == .cgroup1, "\(containment.refusals)")
            guard containment.kind == .cgroup1, let runRoot = containment.root else { return }
            root = runRoot
            #expect(containment.keeperPID > 0)
            // Two cells: one cleared by mothership's own path, one left to the keeper.
            for name in ["cleared", "kept"] {
                let cell = try #require(try containment.makeCell(for: name).get())
                let cellPath = cell
                let pid = DirectSpawn.spawn(
                    path: "/bin/sh", arguments: ["-c", "setsid sleep 300 & (sleep 300 &); exec sleep 300"],
                    cgroup: cell)
                let main = try #require(pid)
                pids.append(main)
                // The main process and its two escapees, all in the cell.
                #expect(
                    await eventually {
                        ((try? String(contentsOfFile: cellPath + "/cgroup.procs", encoding: .utf8)) ?? "")
                            .split(separator: "\n").count == 3
                    })
                let members = try String(contentsOfFile: cellPath + "/cgroup.procs", encoding: .utf8)
                    .split(separator: "\n").compactMap { Int32($0) }
                if name == "cleared" {
                    #expect(ms_cgroup_clear(cellPath, 1, 5000) == 0)
                    for member in members { #expect(await eventually { isDead(member) }) }
                    #expect(!FileManager.default.fileExists(atPath: cellPath))
                } else {
                    pids += members
                }
            }
        }
        // The containment is gone (its socket closed): the keeper kills the rest and removes the tree.
        for pid in pids {
            #expect(await eventually { isDead(pid) }, "pid \(pid) outlived the keeper's sweep")
        }
        #expect(await eventually { !FileManager.default.fileExists(atPath: root) })
        var status: Int32 = 0
        for pid in pids { waitpid(pid, &status, WNOHANG) }
    }

    @Test(.timeLimit(.minutes(1)))
    func processGroupsOnlyWarnsWhatIsNotCovered() {
        let containment = Containment.setUp(trying: [.processGroups])
        #expect(containment.kind == .processGroups)
        #expect(!containment.isComplete)
        #expect(containment.summary.contains("process groups only"))
        #expect(containment.summary.contains("setsid, double fork"))
        #expect(containment.summary.contains("not killed"))
    }

    @Test(.timeLimit(.minutes(1)))
    func aStartRemovesTheCgroupOfAKilledRunWithItsProcesses() async throws {
        guard Self.noCgroups == nil else { return }
        let probe = Containment.setUp(trying: [.cgroup2, .cgroup1])
        let root = try #require(probe.root)
        let slash = try #require(root.lastIndex(of: "/"))
        let base = String(root[..<slash])
        let namespace = CgroupFiles.pidNamespace()
        // Under a base of the test's own (a name no start sweeps): every start sweeps the shared
        // base, and one running beside this test (another test's, or an end-to-end mothership's)
        // would otherwise take the stale run first, and this start would count none.
        let own = "\(base)/ms-test-\(getpid())-sweep"
        _ = ms_cgroup_clear(own, 1, 2000)
        #expect(mkdir(own, 0o755) == 0)
        defer { _ = ms_cgroup_clear(own, 1, 2000) }
        // A run whose mothership is gone (a pid no process has) that left a process behind.
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = "\(own)/mothership-\(dead)-\(namespace)"
        #expect(mkdir(stale, 0o755) == 0 && mkdir(stale + "/web.1", 0o755) == 0)
        let left = try #require(
            DirectSpawn.spawn(path: "/bin/sleep", arguments: ["300"], cgroup: stale + "/web.1"))
        // What a start does in its base (Containment.setUp, above, in the shared one).
        let (next, removed) = try CgroupFiles.makeRunRoot(in: own).get()
        #expect(removed == 1)
        #expect(next.hasPrefix("\(own)/mothership-\(getpid())-\(namespace)"))
        #expect(await eventually { isDead(left) })
        #expect(!FileManager.default.fileExists(atPath: stale))
        var status: Int32 = 0
        waitpid(left, &status, 0)
    }
}
