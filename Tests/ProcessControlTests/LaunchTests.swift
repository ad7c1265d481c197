import Foundation
import ProcessControl
import Supervision
import Testing

@Suite("Launching processes")
struct LaunchTests {
    @Test(.timeLimit(.minutes(1)))
    func deliversStdoutLinesInOrder() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(request("/usr/bin/seq", ["1", "5000"], recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(recorder.texts(.stdout) == (1...5000).map(String.init))
        #expect(recorder.all.allSatisfy { $0.source == "probe" })
    }

    @Test(.timeLimit(.minutes(1)))
    func keepsStderrSeparateAndStripsLineEndings() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(
            shell(#"printf 'one\ntwo\r\n\nthree'; printf 'oops\nworse\n' >&2"#, recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(recorder.texts(.stdout) == ["one", "two", "", "three"])
        #expect(recorder.texts(.stderr) == ["oops", "worse"])
    }

    @Test(.timeLimit(.minutes(1)))
    func deliversUnterminatedLastLineAtEndOfStream() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("printf 'no newline'; printf 'neither' >&2", recorder: recorder))
        _ = await process.exitStatus()
        #expect(recorder.texts(.stdout) == ["no newline"])
        #expect(recorder.texts(.stderr) == ["neither"])
    }

    @Test(.timeLimit(.minutes(1)))
    func splitsLinesLongerThan64KiB() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(
            shell("head -c 150000 /dev/zero | tr '\\0' x; echo; echo after", recorder: recorder))
        _ = await process.exitStatus()
        let lines = recorder.texts(.stdout)
        #expect(lines.map(\.utf8.count) == [65536, 65536, 150000 - 131072, 5])
        #expect(lines.last == "after")
    }

    @Test(.timeLimit(.minutes(1)))
    func repairsInvalidUTF8() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell(#"printf 'ok \377 ok\n'"#, recorder: recorder))
        _ = await process.exitStatus()
        #expect(recorder.texts(.stdout) == ["ok \u{FFFD} ok"])
    }

    @Test(.timeLimit(.minutes(1)))
    func reportsExitCode() async throws {
        let process = try await launch(shell("exit 7"))
        #expect(await process.exitStatus() == .exited(code: 7))
    }

    @Test(.timeLimit(.minutes(1)))
    func reportsDeathBySignal() async throws {
        let process = try await launch(shell("kill -KILL $$"))
        let exit = await process.exitStatus()
        #expect(exit == .signaled(signal: SIGKILL))
        #expect(exit.description == "killed by signal 9 (SIGKILL)")
    }

    @Test(.timeLimit(.minutes(1)))
    func exitStatusAwaitedByTwoTasksAgrees() async throws {
        let process = try await launch(shell("sleep 0.2; exit 3"))
        async let first = process.exitStatus()
        async let second = process.exitStatus()
        let (a, b) = await (first, second)
        #expect(a == .exited(code: 3))
        #expect(b == a)
        #expect(await process.exitStatus() == a)  // and once more after the fact
    }

    @Test(.timeLimit(.minutes(1)))
    func bareCommandNotOnPathIsNotFound() async {
        let error = await spawnError(request("ms-no-such-command-xyz", name: "ghost"))
        #expect(error?.reason == .notFound)
        #expect(
            error?.description
                == "cannot start 'ghost': command 'ms-no-such-command-xyz': no such file or directory (not found on PATH)"
        )
    }

    @Test(.timeLimit(.minutes(1)))
    func searchesOnlyTheRequestsPath() async throws {
        let error = await spawnError(request("env", environment: ["PATH": "/nonexistent"]))
        #expect(error?.reason == .notFound)
        let process = try await launch(request("env", environment: ["PATH": "/usr/bin"]))
        #expect(await process.exitStatus() == .exited(code: 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func missingPathIsNotFound() async throws {
        let scratch = try ScratchDirectory()
        let error = await spawnError(request("./missing.sh", name: "web", in: scratch.path))
        #expect(error?.reason == .notFound)
        #expect(
            error?.description
                == "cannot start 'web': command './missing.sh': no such file or directory (not found on PATH)"
        )
    }

    @Test(.timeLimit(.minutes(1)))
    func nonExecutableFileIsPermissionDenied() async throws {
        let scratch = try ScratchDirectory()
        _ = try scratch.write("script.sh", "#!/bin/sh\necho hi\n", permissions: 0o644)
        let error = await spawnError(request("./script.sh", name: "web", in: scratch.path))
        #expect(error?.reason == .permissionDenied)
        #expect(error?.description == "cannot start 'web': command './script.sh': permission denied")
        let directory = await spawnError(request(scratch.path, name: "web"))
        #expect(directory?.reason == .permissionDenied)
    }

    @Test(.timeLimit(.minutes(1)))
    func missingWorkingDirectoryIsReported() async {
        let error = await spawnError(request("/bin/true", name: "web", in: "/nonexistent/ms-dir"))
        #expect(error?.reason == .badWorkingDirectory("/nonexistent/ms-dir"))
        #expect(
            error?.description == "cannot start 'web': working directory '/nonexistent/ms-dir' does not exist"
        )
    }

    @Test(.timeLimit(.minutes(1)))
    func relativeCommandRunsFromItsWorkingDirectory() async throws {
        let scratch = try ScratchDirectory()
        // Written by a child rather than by this process: a process forked by a concurrent test while
        // we held the file open for writing would keep it "busy" (ETXTBSY) until it execs or exits.
        let writer = try await launch(
            request(
                "/bin/sh", ["-c", #"printf '#!/bin/sh\necho "in $(pwd -P)"\n' > run.sh; chmod 755 run.sh"#],
                in: scratch.path))
        #expect(await writer.exitStatus() == .exited(code: 0))
        let recorder = OutputRecorder()
        let process = try await launch(request("./run.sh", in: scratch.path, recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        let real = URL(fileURLWithPath: scratch.path).resolvingSymlinksInPath().path
        #expect(recorder.texts(.stdout) == ["in \(real)"])
    }

    @Test(.timeLimit(.minutes(1)))
    func environmentIsExactlyTheRequested() async throws {
        let recorder = OutputRecorder()
        let environment = ["ONLY": "this one", "PATH": "/usr/bin:/bin", "EMPTY": ""]
        let process = try await launch(request("/usr/bin/env", environment: environment, recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(Set(recorder.texts(.stdout)) == ["ONLY=this one", "PATH=/usr/bin:/bin", "EMPTY="])
    }

    @Test(.timeLimit(.minutes(1)))
    func stdinIsDevNull() async throws {
        let recorder = OutputRecorder()
        let process = try await launch(shell("cat; echo done", recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(recorder.texts(.stdout) == ["done"])
    }

    @Test(.timeLimit(.minutes(1)))
    func inheritsNoDescriptorBeyondTheStandardThree() async throws {
        let recorder = OutputRecorder()
        // ls lists its own /proc/self/fd with one extra descriptor: the directory it is reading.
        let process = try await launch(request("/bin/ls", ["/proc/self/fd"], recorder: recorder))
        #expect(await process.exitStatus() == .exited(code: 0))
        #expect(recorder.texts(.stdout).sorted() == ["0", "1", "2", "3"])
        let shellFDs = OutputRecorder()
        let viaShell = try await launch(shell("ls /proc/$$/fd", recorder: shellFDs))
        _ = await viaShell.exitStatus()
        #expect(shellFDs.texts(.stdout).sorted() == ["0", "1", "2"])
    }
}
