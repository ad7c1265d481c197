import Dashboard
import Supervision
import Testing

/// Snapshots of the screen buffer for given fleet states and sizes, compared as plain text.
@Suite("Dashboard renderer")
struct RendererTests {
    static let standard = TerminalSize(columns: 80, rows: 24)
    static let keys = " Tab/S-Tab tabs  ↑↓ select  PgUp/PgDn scroll  Home/End  r restart  q quit"
    static let webLog = (1...30).map { "line \($0) of the web log" }

    /// The screen's rows from the top must be `expected`, the rest of the body blank, and the last
    /// row `footer`.
    func expectScreen(
        _ screen: ScreenBuffer, _ expected: String, footer: String = keys,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let rows = (0..<screen.size.rows).map { screen.text(ofRow: $0) }
        let top = expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(Array(rows.prefix(top.count)) == top, "\n\(screen.plainText)", sourceLocation: sourceLocation)
        let rest = rows.dropFirst(top.count).dropLast()
        #expect(rest.allSatisfy { $0.isEmpty }, "\n\(screen.plainText)", sourceLocation: sourceLocation)
        #expect(rows.last == footer, sourceLocation: sourceLocation)
    }

    @Test func overviewShowsEveryVesselWithItsColumnsIn80x24() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.overview), log: .empty, size: Self.standard)
        expectScreen(
            screen,
            """
             shop  Running  3/5 up  42.2 req/s
             binds http 127.0.0.1:8080  admin unix:/run/admin.sock
              1 Overview   2 Logs   3 Modules
             NAME    GROUP   KIND STATUS          PID HEALTH  RST    RSS  UPTIME ROUTES
             web     web     ship running        4242 ok        0    12M   1h01m http:/api/…
             worker  workers ship backing off       - -         3      -       - -
             chat    bays    bay  starting       4250 -         0      -      5s -
             migrate jobs    ship completed         - -         0      -       - -
             cache   data    ship running        4100 failing   1   900K   1h02m -
            """)
    }

    @Test func overviewColoursStatusesAndHighlightsOnlyTheSelectedRow() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.overview, selected: "cache"), log: .empty,
            size: Self.standard)
        // Row 4 is web, row 8 cache; STATUS starts at column 26.
        #expect(screen[4, 26].style.foreground == .green)
        #expect(screen[5, 26].style.foreground == .red)
        #expect(screen[6, 26].style.foreground == .yellow)
        #expect(screen[8, 43].style.foreground == .red, "failing health")
        for row in 4...8 {
            #expect((0..<80).allSatisfy { screen[row, $0].style.inverse == (row == 8) }, "row \(row)")
        }
        #expect(screen[0, 7].style.foreground == .green, "lifecycle state")
    }

    /// A ship with workers has a row per instance under its own: state (a replaced one draining),
    /// pid, health, restarts, memory, uptime and address; only the ship's row is selectable.
    @Test func aShipWithWorkersShowsARowPerInstance() {
        var web = VesselStatus(
            name: "web", kind: .ship, group: "web", phase: .running, pid: 4242, healthy: true, restarts: 2,
            memory: MemoryUsage(residentBytes: 26_214_400, virtualBytes: 0), startedAt: .seconds(10),
            routes: ["http:/"])
        web.workers = 2
        web.instances = [
            InstanceStatus(
                id: 3, slot: 0, address: .tcp(host: "127.0.0.1", port: 3002), pid: 4242, ready: true,
                healthy: true, memory: MemoryUsage(residentBytes: 13_107_200, virtualBytes: 0),
                startedAt: .seconds(10)),
            InstanceStatus(
                id: 2, slot: 1, address: .tcp(host: "127.0.0.1", port: 3001), pid: 4243, ready: false,
                healthy: false, startedAt: .seconds(3700), restarts: 2),
            InstanceStatus(
                id: 1, slot: 0, address: .tcp(host: "127.0.0.1", port: 3000), pid: 4200, ready: false,
                startedAt: .seconds(5), draining: true),
        ]
        let fleet = FleetStatus(
            lifecycle: .running,
            vessels: [
                web, VesselStatus(name: "jobs", kind: .ship, group: "workers", phase: .running, pid: 4300),
            ],
            now: .seconds(3725))
        let screen = Renderer.render(
            DashboardSnapshot(fleet: fleet), state: Fixtures.state(.overview, selected: "jobs"), log: .empty,
            size: TerminalSize(columns: 90, rows: 24))
        expectScreen(
            screen,
            """
             mothership  Running  2/2 up
             binds none
              1 Overview   2 Logs   3 Modules
             NAME    GROUP   KIND STATUS          PID HEALTH  RST    RSS  UPTIME ROUTES
             web     web     ship running        4242 ok        2    25M   1h01m http:/
              web[0]              running        4242 ok        0    12M   1h01m 127.0.0.1:3002
              web[1]              starting       4243 failing   2      -     25s 127.0.0.1:3001
              web[0]              draining       4200 -         0      -   1h02m 127.0.0.1:3000
             jobs    workers ship running        4300 -         0      -       - -
            """)
        #expect(screen[5, 1].style.dim && screen[7, 26].style.foreground == .yellow)
        #expect((0..<90).allSatisfy { screen[8, $0].style.inverse }, "jobs, the selection")
        #expect(!(0..<90).contains { screen[5, $0].style.inverse || screen[4, $0].style.inverse })
    }

    @Test func wideRoutesShowInFullOnAWideTerminal() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.overview), log: .empty,
            size: TerminalSize(columns: 100, rows: 12))
        #expect(screen.text(ofRow: 4).hasSuffix("1h01m http:/api/* http:/"))
    }

    @Test func aLongFleetScrollsToKeepTheSelectionVisibleOnASmallScreen() {
        var fleet = Fixtures.fleet
        fleet.vessels = (1...12).map {
            VesselStatus(name: "ship\($0)", kind: .ship, group: "web", phase: .waiting)
        }
        let screen = Renderer.render(
            DashboardSnapshot(fleet: fleet), state: Fixtures.state(.overview, selected: "ship9"), log: .empty,
            size: TerminalSize(columns: 40, rows: 10))
        expectScreen(
            screen,
            """
             mothership  Running  0/12 up
             binds none
              1 Overview   2 Logs   3 Modules
             NAME   GROUP KIND STATUS          PID …
             ship5  web   ship waiting           - -
             ship6  web   ship waiting           - -
             ship7  web   ship waiting           - -
             ship8  web   ship waiting           - -
             ship9  web   ship waiting           - -
            """, footer: " Tab/S-Tab tabs  ↑↓ select  PgUp/PgDn s…")
        #expect(screen[8, 1].style.inverse, "ship9, the selection, is the last row shown")
        let taller = Renderer.render(
            DashboardSnapshot(fleet: fleet), state: Fixtures.state(.overview, selected: "ship9"), log: .empty,
            size: TerminalSize(columns: 40, rows: 11))
        #expect(taller.text(ofRow: 4).hasPrefix(" ship4 "))
        #expect(taller.text(ofRow: 9).hasPrefix(" ship9 "))
        #expect(taller[9, 1].style.inverse)
    }

    @Test func logsTabFollowsTheSelectedVesselsNewestLines() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.logs), log: Fixtures.log(Self.webLog),
            size: Self.standard)
        var expected = """
             shop  Running  3/5 up  42.2 req/s
             binds http 127.0.0.1:8080  admin unix:/run/admin.sock
              1 Overview   2 Logs   3 Modules
             web        │ web · 30 lines · following
             worker     │ line 12 of the web log
             chat       │ line 13 of the web log
             migrate    │ line 14 of the web log
             cache      │ line 15 of the web log
             mothership │ line 16 of the web log
            """
        for line in 17...30 { expected += "\n            │ line \(line) of the web log" }
        expectScreen(screen, expected)
        #expect(screen[3, 1].style.inverse && !screen[4, 1].style.inverse, "web is selected")
    }

    @Test func logsTabScrolledBackShowsWhereItIs() {
        var state = Fixtures.state(.logs, selected: "web")
        state.logTop = 1000 + 4  // 1,000 lines dropped by the ring before these 30
        let screen = Renderer.render(
            Fixtures.snapshot, state: state, log: Fixtures.log(Self.webLog, dropped: 1000),
            size: Self.standard)
        #expect(screen.text(ofRow: 3) == " web        │ web · lines 1005–1023 of 1030 · End follows")
        #expect(screen.text(ofRow: 4) == " worker     │ line 5 of the web log")
        #expect(screen.text(ofRow: 22) == "            │ line 23 of the web log")
    }

    @Test func logLinesAreMadeSafeToDraw() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.logs, selected: "mothership"),
            log: Fixtures.log(["\u{1B}[31mred\u{1B}[0m\tnext\u{7}", "wide 日本語 text"], source: "mothership"),
            size: Self.standard)
        #expect(screen.text(ofRow: 3) == " web        │ mothership · 2 lines · following")
        #expect(screen.text(ofRow: 4) == " worker     │ red     next")
        #expect(screen.text(ofRow: 5) == " chat       │ wide 日本語 text")
        #expect(screen[5, 19].isContinuation == false && screen[5, 20].isContinuation)
    }

    @Test func modulesTabListsTheManifestsModulesWithZeroCounters() {
        let screen = Renderer.render(
            Fixtures.snapshot, state: Fixtures.state(.modules), log: .empty, size: Self.standard)
        expectScreen(
            screen,
            """
             shop  Running  3/5 up  42.2 req/s
             binds http 127.0.0.1:8080  admin unix:/run/admin.sock
              1 Overview   2 Logs   3 Modules
             NAME  PHASE    INVOCATIONS BLOCKS ERRORS ROUTES
             auth  request            0      0      0 /api/*
             brand response           0      0      0 / /shop/*

             No counters: no bind runs these modules.
            """)
        var empty = Fixtures.snapshot
        empty.modules = []
        let none = Renderer.render(empty, state: Fixtures.state(.modules), log: .empty, size: Self.standard)
        #expect(none.text(ofRow: 3) == " No [[modules]] in the manifest.")
    }

    @Test func footerShowsANoticeAndTheLanding() {
        var state = Fixtures.state(.overview)
        state.notice = "restarting web…"
        var screen = Renderer.render(Fixtures.snapshot, state: state, log: .empty, size: Self.standard)
        #expect(screen.text(ofRow: 23) == " restarting web…")
        #expect(screen[23, 79].style.inverse, "the footer is a bar across the screen")
        var snapshot = Fixtures.snapshot
        snapshot.fleet.lifecycle = .draining  // SIGTERM or Ctrl-C rather than q: the same footer
        snapshot.requestsTotal = nil
        screen = Renderer.render(snapshot, state: state, log: .empty, size: Self.standard)
        #expect(screen.text(ofRow: 0) == " shop  Draining  3/5 up")
        #expect(screen.text(ofRow: 23) == " landing the fleet… (Ctrl-C twice kills every vessel at once)")
    }

    @Test func tinyAndEmptyScreensDoNotCrash() {
        for (columns, rows) in [(0, 0), (1, 1), (10, 2), (5, 4), (80, 3)] {
            for tab in DashboardTab.allCases {
                let screen = Renderer.render(
                    Fixtures.snapshot, state: Fixtures.state(tab), log: Fixtures.log(Self.webLog),
                    size: TerminalSize(columns: columns, rows: rows))
                #expect(screen.size == TerminalSize(columns: columns, rows: rows))
            }
        }
    }
}
