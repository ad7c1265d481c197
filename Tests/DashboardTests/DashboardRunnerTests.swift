import Dashboard
import MothershipTestSupport
import Supervision
import Synchronization
import Testing

/// A terminal that records what the dashboard writes and lets the test type and resize.
final class FakeTerminal: DashboardTerminal {
    private struct State {
        var size = TerminalSize(columns: 80, rows: 24)
        var writes: [String] = []
        var bytes: (@Sendable ([UInt8]) -> Void)?
        var resized: (@Sendable () -> Void)?
        var restored = false
    }
    private let state = Mutex(State())

    func size() -> TerminalSize { state.withLock { $0.size } }

    func listen(bytes: @escaping @Sendable ([UInt8]) -> Void, resized: @escaping @Sendable () -> Void) {
        state.withLock {
            $0.bytes = bytes
            $0.resized = resized
        }
    }

    func write(_ text: String) { state.withLock { $0.writes.append(text) } }
    func restore() { state.withLock { $0.restored = true } }

    var writes: [String] { state.withLock { $0.writes } }
    /// Writes that drew something (an unchanged frame writes nothing).
    var frames: [String] { writes.filter { !$0.isEmpty } }
    var restored: Bool { state.withLock { $0.restored } }
    var listening: Bool { state.withLock { $0.bytes != nil } }

    func type(_ text: String) { state.withLock { $0.bytes }?(Array(text.utf8)) }

    func resize(to size: TerminalSize) {
        let resized = state.withLock {
            $0.size = size
            return $0.resized
        }
        resized?()
    }

    /// Everything written so far, replayed on a screen of `size`.
    func screen(_ size: TerminalSize = TerminalSize(columns: 80, rows: 24)) -> VirtualTerminal {
        var terminal = VirtualTerminal(columns: size.columns, rows: size.rows)
        for text in writes { terminal.feed(Array(text.utf8)) }
        return terminal
    }
}

/// The dashboard's loop against a fake terminal and a manual clock.
@Suite("Dashboard loop", .timeLimit(.minutes(1)))
struct DashboardRunnerTests {
    struct Harness {
        let terminal = FakeTerminal()
        let clock = ManualClock()
        /// No request total: a rate appearing would count as a change.
        let fleet = Locked(DashboardSnapshot(fleet: Fixtures.fleet, title: "shop"))
        let requests = Locked<[String]>([])
        let logs = OutputLog()
        let task: Task<Void, Never>

        init() {
            let fleet = self.fleet
            let requests = self.requests
            let services = DashboardServices(
                snapshot: { fleet.value }, logs: logs,
                restart: { name in
                    requests.mutate { $0.append("restart \(name)") }
                    return name != "migrate"
                },
                land: { requests.mutate { $0.append("land") } })
            let runner = DashboardRunner(services: services, clock: clock)
            let terminal = self.terminal
            task = Task { await runner.run(on: terminal) }
        }

        func until(_ what: String, _ condition: @escaping @Sendable () -> Bool) async {
            let met = await clock.runUntil(limit: .seconds(30)) { condition() }
            #expect(met, "\(what)")
        }
    }

    @Test func drawsAtMostFiveFramesASecondAndNothingWhenNothingChanged() async {
        let harness = Harness()
        let terminal = harness.terminal
        await harness.until("the first frame") { terminal.frames.count == 1 }
        #expect(terminal.screen().lines[4].hasPrefix(" web "))
        // Nothing changes for two seconds: nothing is written.
        let start = harness.clock.now
        await harness.until("two seconds") { start.duration(to: harness.clock.now) >= .seconds(2) }
        #expect(terminal.frames.count == 1)
        // The fleet changes every 50 ms for a second: at most 5 frames.
        let before = terminal.frames.count
        for step in 1...20 {
            harness.fleet.mutate { $0.fleet.now = .seconds(3725 + step * 60) }
            harness.clock.advance(by: .milliseconds(50))
            // Let the loop take the tick (it runs on another thread of the pool).
            try? await Task.sleep(for: .milliseconds(5))
        }
        let frames = terminal.frames.count - before
        #expect(frames >= 2 && frames <= 6, "\(frames) frames in one second")
        harness.task.cancel()
        await harness.task.value
        #expect(terminal.restored)
    }

    @Test func keysSwitchTabsRestartAndLand() async {
        let harness = Harness()
        let terminal = harness.terminal
        harness.logs.append(OutputLine(source: "worker", stream: .stdout, text: "worker says hi"))
        await harness.until("listening") { terminal.listening && terminal.frames.count == 1 }
        terminal.type("\u{1B}[B")
        terminal.type("r")
        let requests = harness.requests
        await harness.until("the restart request") { requests.value == ["restart worker"] }
        await harness.until("the notice") { terminal.screen().lines[23] == " restarting worker…" }
        // migrate is done: the supervisor refuses, and the footer says so.
        terminal.type("\u{1B}[B\u{1B}[Br")
        await harness.until("the refusal") {
            terminal.screen().lines[23].hasPrefix(" migrate has no process to restart")
        }
        // An arrow split across reads, then Tab: worker's log.
        terminal.type("\u{1B}")
        terminal.type("[A\u{1B}[A\t")
        await harness.until("worker's log") { terminal.screen().text.contains("worker says hi") }
        terminal.type("q")
        await harness.until("the landing request") { requests.value.last == "land" }
        #expect(requests.value == ["restart worker", "restart migrate", "land"])
        await harness.until("the landing footer") {
            terminal.screen().lines[23].contains("landing the fleet")
        }
        harness.task.cancel()
        await harness.task.value
        #expect(terminal.restored)
    }

    @Test func aResizeRedrawsEverythingAtTheNewSize() async {
        let harness = Harness()
        let terminal = harness.terminal
        await harness.until("the first frame") { terminal.listening && terminal.frames.count == 1 }
        terminal.resize(to: TerminalSize(columns: 100, rows: 30))
        await harness.until("a full redraw") { terminal.frames.count == 2 }
        #expect(terminal.frames[1].hasPrefix("\u{1B}[0m\u{1B}[H\u{1B}[2J"))
        let screen = terminal.screen(TerminalSize(columns: 100, rows: 30))
        #expect(screen.lines[29].contains("q quit"))
        #expect(screen.lines[4].hasSuffix("http:/api/* http:/"), "\(screen.text)")
        harness.task.cancel()
        await harness.task.value
    }
}
