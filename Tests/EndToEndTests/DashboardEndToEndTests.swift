import Foundation
import MothershipTestSupport
import Testing

/// `mothership --tui` in a pseudo-terminal the test opens: keys typed, the screen read back.
@Suite("Dashboard through the binary", .timeLimit(.minutes(2)))
struct DashboardEndToEndTests {
    static let twoShips = """
        [[fleet.web]]
        name = "web"
        command = "/bin/sh"
        args = ["-c", "echo hello-from-web; exec sleep 300"]

        [[fleet.workers]]
        name = "worker"
        command = "/bin/sh"
        args = ["-c", "echo worker-ready; exec sleep 300"]
        """

    static func fleet(_ manifest: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "mothership-tui")
        try directory.write("ship-manifest.toml", manifest)
        return directory
    }

    /// The Overview row of `name`.
    static func row(_ name: String, in screen: VirtualTerminal) -> String? {
        screen.lines.first { $0.hasPrefix(" \(name) ") }
    }

    static func isRunning(_ name: String, in screen: VirtualTerminal) -> Bool {
        row(name, in: screen)?.contains(" running ") == true
    }

    /// The terminal was given back: normal screen, cursor shown, canonical mode with echo, and the
    /// last mode switches mothership wrote were the ones that leave.
    static func expectRestored(_ tui: TerminalMothership, sourceLocation: SourceLocation = #_sourceLocation) {
        let output = String(decoding: tui.output, as: UTF8.self)
        let entered = output.range(of: "\u{1B}[?1049h", options: .backwards)
        let left = output.range(of: "\u{1B}[?1049l", options: .backwards)
        let hidden = output.range(of: "\u{1B}[?25l", options: .backwards)
        let shown = output.range(of: "\u{1B}[?25h", options: .backwards)
        #expect(
            entered != nil && left != nil && hidden != nil && shown != nil, sourceLocation: sourceLocation)
        if let entered, let left, let hidden, let shown {
            #expect(entered.lowerBound < left.lowerBound, sourceLocation: sourceLocation)
            #expect(hidden.lowerBound < shown.lowerBound, sourceLocation: sourceLocation)
        }
        #expect(!tui.screen.onAlternateScreen && tui.screen.cursorVisible, sourceLocation: sourceLocation)
        let modes = tui.attributes().c_lflag
        #expect(modes & tcflag_t(ICANON) != 0 && modes & tcflag_t(ECHO) != 0, sourceLocation: sourceLocation)
    }

    @Test func showsTheFleetFollowsLogsAndLandsOnQ() async throws {
        let directory = try Self.fleet(Self.twoShips)
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path)
        defer { tui.stop() }
        try await tui.waitForScreen("both ships running on the Overview") { screen in
            Self.isRunning("web", in: screen) && Self.isRunning("worker", in: screen)
                && screen.lines.first?.contains("Running") == true
        }
        #expect(tui.screen.lines.contains { $0.contains("1 Overview") && $0.contains("2 Logs") })
        // The two ships; not the keeper (see Containment), which is mothership's child too.
        let children = ProcessInspector.children(of: tui.pid).filter {
            (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) != "ms-keeper\n"
        }
        #expect(children.count == 2)

        // Tab: the Logs tab shows the selected ship's (web's) output.
        tui.send("\t")
        try await tui.waitForScreen("web's log") { $0.text.contains("hello-from-web") }
        #expect(tui.screen.text.contains("web · 1 line · following"))
        // ↓ selects the next vessel; after the vessels comes mothership's own log.
        tui.send("\u{1B}[B")
        try await tui.waitForScreen("worker's log") { $0.text.contains("worker-ready") }
        tui.send("j")
        try await tui.waitForScreen("mothership's own log") { $0.text.contains("info: lifecycle: Running") }
        #expect(!tui.screen.text.contains("hello-from-web"))

        tui.send("q")
        #expect(try await tui.waitForExit() == 0)
        for child in children {
            #expect(!ProcessInspector.isAlive(child), "pid \(child) outlived mothership")
        }
        Self.expectRestored(tui)
        // Mothership's log lines went to the dashboard, not to the normal screen; the status line is last.
        let lines = tui.screen.lines.filter { !$0.isEmpty }
        #expect(lines.last == #"{"message":"Mothership landed","status":"landed"}"#, "\(tui.screen.text)")
        #expect(!tui.screen.text.contains("lifecycle:"))
    }

    @Test func rRestartsTheSelectedShip() async throws {
        let directory = try Self.fleet(Self.twoShips)
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path)
        defer { tui.stop() }
        try await tui.waitForScreen("worker running") { Self.isRunning("worker", in: $0) }
        let before = try #require(Self.row("worker", in: tui.screen))
        tui.send("\u{1B}[Br")
        try await tui.waitForScreen("worker restarted once") { screen in
            guard let row = Self.row("worker", in: screen) else { return false }
            return row != before && row.contains(" running ") && row.split(separator: " ")[6] == "1"
        }
        #expect(Self.row("web", in: tui.screen)?.split(separator: " ")[6] == "0")
        tui.send("q")
        #expect(try await tui.waitForExit() == 0)
        Self.expectRestored(tui)
    }

    @Test func sigtermLandsAndRestoresTheTerminal() async throws {
        let directory = try Self.fleet(Self.twoShips)
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path)
        defer { tui.stop() }
        try await tui.waitForScreen("web running") { Self.isRunning("web", in: $0) }
        kill(tui.pid, SIGTERM)
        #expect(try await tui.waitForExit() == 0)
        Self.expectRestored(tui)
        #expect(
            tui.screen.lines.filter { !$0.isEmpty }.last
                == #"{"message":"Mothership landed","status":"landed"}"#)
    }

    @Test func aCriticalCrashRestoresTheTerminalAndSaysWhy() async throws {
        let directory = try Self.fleet(
            """
            [[fleet.web]]
            name = "fragile"
            command = "/bin/sh"
            args = ["-c", "while [ ! -e crash-now ]; do sleep 0.05; done; echo about to fail; exit 3"]
            """)
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path)
        defer { tui.stop() }
        // The ship crashes when told to, once the dashboard has shown it running (a ship that
        // crashed on a timer could be gone before a loaded machine drew it).
        try await tui.waitForScreen("fragile running") { Self.isRunning("fragile", in: $0) }
        try directory.write("crash-now", "")
        #expect(try await tui.waitForExit() == 1)
        Self.expectRestored(tui)
        let text = tui.screen.text
        #expect(text.contains("critical vessel 'fragile' exited with status 3"), "\(text)")
        #expect(text.contains("fragile    | about to fail"), "the crashed vessel's last lines")
        #expect(
            tui.screen.lines.filter { !$0.isEmpty }.last
                == #"{"message":"Mothership crashed","status":"crashed","vessel":"fragile"}"#)
    }

    @Test func aLaunchThatFailsBeforeTheDashboardStartsRestoresTheTerminal() async throws {
        // 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind cannot listen.
        let directory = try Self.fleet(
            Self.twoShips + "\n[mothership.bind]\nhttp = \"192.0.2.1:8080\"\n")
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path)
        defer { tui.stop() }
        #expect(try await tui.waitForExit() == 1)
        Self.expectRestored(tui)
        // The status line (wrapped at 80 columns) says why, last on the normal screen, after
        // Mothership's own last lines (the fleet did not land).
        let text = tui.screen.lines.joined()
        let status = try #require(
            text.range(of: #"{"message":"Mothership failed","status":"failed","error":"#), "\(text)")
        #expect(text[status.lowerBound...].contains("192.0.2.1:8080"), "\(text)")
        #expect(text.hasSuffix("(mothership.bind.http)\"}"), "\(text)")
    }

    @Test func resizingRedrawsAtTheNewSize() async throws {
        let directory = try Self.fleet(Self.twoShips)
        defer { directory.remove() }
        let tui = try TerminalMothership(["--tui"], in: directory.path, columns: 100, rows: 30)
        defer { tui.stop() }
        try await tui.waitForScreen("the footer on row 30") { $0.lines[29].contains("q quit") }
        tui.resize(columns: 80, rows: 24)
        kill(tui.pid, SIGWINCH)
        try await tui.waitForScreen("the footer on row 24") { $0.lines[23].contains("q quit") }
        #expect(tui.screen.lines[24...].allSatisfy { $0.isEmpty })
        tui.send("q")
        #expect(try await tui.waitForExit() == 0)
    }

    @Test func withoutATerminalTuiFallsBackToPlainOutput() async throws {
        let directory = try Self.fleet(Self.twoShips)
        defer { directory.remove() }
        let mothership = try RunningMothership(["--tui"], in: directory.path)
        defer { mothership.stop() }
        try await mothership.waitFor("--tui needs a terminal on stdin and stdout; showing plain output")
        try await mothership.waitFor("hello-from-web")
        try await mothership.waitFor("lifecycle: Running")
        mothership.signal(SIGTERM)
        #expect(try await mothership.waitForExit() == 0)
        #expect(!mothership.output.contains("\u{1B}[?1049h"))
    }
}
