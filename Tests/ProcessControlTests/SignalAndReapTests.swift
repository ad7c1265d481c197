import Foundation
import ProcessControl
import Supervision
import Synchronization
import Testing

@Suite("Process groups, signals and reaping")
struct SignalAndReapTests {
    @Test(.timeLimit(.minutes(1)))
    func childLeadsItsOwnProcessGroup() async throws {
        let process = try await launch(request("/bin/sleep", ["300"]))
        let fields = StatFields(pid: process.pid)
        #expect(fields?.group == process.pid)
        #expect(fields?.parent == getpid())
        process.signalGroup(SIGKILL)
        #expect(await process.exitStatus() == .signaled(signal: SIGKILL))
    }

    @Test(.timeLimit(.minutes(1)))
    func signalGroupReachesGrandchildren() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("sleep 300 & echo $!; wait", recorder: recorder))
        let line = await recorder.first { $0.stream == .stdout }
        let grandchild = try #require(line.flatMap { Int32($0.text) })
        #expect(StatFields(pid: grandchild)?.group == process.pid)
        process.signalGroup(SIGKILL)
        #expect(await process.exitStatus() == .signaled(signal: SIGKILL))
        #expect(await eventually { isDead(grandchild) })
        process.signalGroup(SIGKILL)  // harmless after exit
    }

    @Test(.timeLimit(.minutes(1)))
    func childStartsWithDefaultSignalsAndEmptyMask() async throws {
        signal(SIGPIPE, SIG_IGN)  // ignored here; must not be in the child
        let process = try await launch(request("/bin/sleep", ["300"]))
        let status = try String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)
        let fields = Dictionary(
            status.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { return nil }
                return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
            }, uniquingKeysWith: { first, _ in first })
        #expect(fields["SigIgn"] == "0000000000000000")
        #expect(fields["SigBlk"] == "0000000000000000")
        process.signalGroup(SIGTERM)
        #expect(await process.exitStatus() == .signaled(signal: SIGTERM))
    }

    @Test(.timeLimit(.minutes(1)))
    func memoryIsReportedWhileRunningAndNilAfterExit() async throws {
        let process = try await launch(request("/bin/sleep", ["300"]))
        let usage = try #require(process.memory())
        #expect(usage.residentBytes > 0)
        #expect(usage.virtualBytes > usage.residentBytes)
        process.signalGroup(SIGKILL)
        _ = await process.exitStatus()
        #expect(process.memory() == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func memorySumsTheWholeGroup() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("sleep 300 & sleep 300 & echo ready; wait", recorder: recorder))
        _ = await recorder.first { $0.text == "ready" }
        let group = try #require(process.memory())
        let alone = try await launch(request("/bin/sleep", ["300"]))
        let single = try #require(alone.memory())
        #expect(group.residentBytes > single.residentBytes)
        process.signalGroup(SIGKILL)
        alone.signalGroup(SIGKILL)
        _ = await (process.exitStatus(), alone.exitStatus())
    }

    @Test(.timeLimit(.minutes(1)))
    func manyConcurrentShortLivedChildrenAreAllReaped() async throws {
        let results = try await withThrowingTaskGroup(of: (Int32, Int32, ProcessExit).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let code = Int32(index % 50)
                    let process = try await launch(shell("exit \(code)"))
                    return (process.pid, code, await process.exitStatus())
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.2 == .exited(code: $0.1) })
        let pids = Set(results.map(\.0))
        let zombies = pids.filter { pid in
            guard let fields = StatFields(pid: pid) else { return false }
            return fields.parent == getpid() && fields.state == "Z"
        }
        #expect(zombies.isEmpty)
    }

    @Test(.timeLimit(.minutes(1)))
    func aGrandchildHoldingStdoutDiesWithTheLeaderAndDoesNotDelayExitStatus() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("sleep 300 & echo $!", recorder: recorder))
        let start = ContinuousClock.now
        #expect(await process.exitStatus() == .exited(code: 0))
        // The bound leaves room for a loaded machine, and is still far below the 300 s the
        // grandchild would hold the pipe.
        #expect(ContinuousClock.now - start < .seconds(5))
        // What the leader left in its group was killed before its exit was reported (SPEC §3).
        let grandchild = try #require(recorder.texts(.stdout).first.flatMap { Int32($0) })
        #expect(isDead(grandchild))
        process.signalGroup(SIGKILL)  // harmless after exit
    }

    @Test(.timeLimit(.minutes(1)))
    func listsSignalsAndAwaitsChildrenOfAProcess() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("sleep 300 & sleep 300 & echo ready; wait", recorder: recorder))
        _ = await recorder.first { $0.text == "ready" }
        #expect(ProcessTable.children(of: process.pid).count == 2)
        #expect(ProcessTable.signalChildren(of: process.pid, SIGKILL).count == 2)
        #expect(ProcessTable.waitForNoChildren(of: process.pid, timeout: .seconds(10)))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(ProcessTable.children(of: process.pid).isEmpty)
    }

    /// The reaper must not steal the exit status of a child started by someone else in the same
    /// process (the end-to-end tests run the binary with Foundation.Process in this test process).
    @Test(.timeLimit(.minutes(1)))
    func leavesOtherComponentsChildrenToThem() async throws {
        let ours = try await launch(shell("sleep 0.1; exit 4"))
        var theirs: [Foundation.Process] = []
        for code in 1...5 {
            let process = Foundation.Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exit \(code)"]
            try process.run()
            theirs.append(process)
        }
        let more = try await launch(shell("exit 6"))
        #expect(await eventually { theirs.allSatisfy { !$0.isRunning } })
        #expect(theirs.map(\.terminationStatus) == [1, 2, 3, 4, 5])
        #expect(await ours.exitStatus() == .exited(code: 4))
        #expect(await more.exitStatus() == .exited(code: 6))
    }

    /// PR_SET_PDEATHSIG fires when the *thread* that forked exits: spawn from a short-lived thread
    /// and expect the child to get SIGTERM when that thread ends.
    @Test(.timeLimit(.minutes(1)))
    func childGetsSigtermWhenItsSpawningThreadDies() async throws {
        let spawned = Mutex<Int32?>(nil)
        let thread = Thread {
            spawned.withLock { $0 = DirectSpawn.spawn(path: "/bin/sleep", arguments: ["300"]) }
        }
        thread.start()
        #expect(await eventually { spawned.withLock { $0 } != nil })
        let pid = try #require(spawned.withLock { $0 })
        var status: Int32 = 0
        #expect(await eventually { waitpid(pid, &status, WNOHANG) == pid })
        #expect(status & 0x7f == SIGTERM)
    }
}
