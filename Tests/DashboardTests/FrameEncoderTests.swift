import Dashboard
import MothershipTestSupport
import Supervision
import Testing

@Suite("Dashboard frame encoder")
struct FrameEncoderTests {
    static let size = TerminalSize(columns: 80, rows: 24)

    func frame(_ snapshot: DashboardSnapshot, _ state: DashboardState, size: TerminalSize = size)
        -> ScreenBuffer
    {
        Renderer.render(snapshot, state: state, log: .empty, size: size)
    }

    @Test func aFullFrameThenOnlyTheChangedCellsReproduceEachScreen() {
        var terminal = VirtualTerminal(columns: 80, rows: 24)
        terminal.feed(Array(FrameEncoder.enter.utf8))
        let first = frame(Fixtures.snapshot, Fixtures.state(.overview))
        terminal.feed(Array(FrameEncoder.encode(first, over: nil).utf8))
        #expect(terminal.lines == (0..<24).map { first.text(ofRow: $0) })

        var snapshot = Fixtures.snapshot
        snapshot.fleet.vessels[1].phase = .running
        snapshot.fleet.vessels[1].pid = 5000
        let second = frame(snapshot, Fixtures.state(.overview))
        let update = FrameEncoder.encode(second, over: first)
        terminal.feed(Array(update.utf8))
        #expect(terminal.lines == (0..<24).map { second.text(ofRow: $0) })
        // Only the header's count and worker's row changed: two cursor moves, a few dozen bytes.
        #expect(update.components(separatedBy: "H").count - 1 == 2, "\(update.debugDescription)")
        #expect(update.utf8.count < 150)
        #expect(!update.contains("\u{1B}[2J"))

        let third = frame(snapshot, Fixtures.state(.logs))
        terminal.feed(Array(FrameEncoder.encode(third, over: second).utf8))
        #expect(terminal.lines == (0..<24).map { third.text(ofRow: $0) })
    }

    @Test func nothingIsWrittenWhenNothingChanged() {
        let screen = frame(Fixtures.snapshot, Fixtures.state(.overview))
        #expect(FrameEncoder.encode(screen, over: screen) == "")
    }

    @Test func aResizeRedrawsEverythingAtTheNewSize() {
        let small = frame(Fixtures.snapshot, Fixtures.state(.overview))
        let large = frame(
            Fixtures.snapshot, Fixtures.state(.overview), size: TerminalSize(columns: 100, rows: 30))
        let output = FrameEncoder.encode(large, over: small)
        #expect(output.hasPrefix("\u{1B}[0m\u{1B}[H\u{1B}[2J"))
        var terminal = VirtualTerminal(columns: 100, rows: 30)
        terminal.feed(Array("garbage everywhere".utf8))
        terminal.feed(Array(output.utf8))
        #expect(terminal.lines == (0..<30).map { large.text(ofRow: $0) })
    }

    @Test func stylesBecomeSGRAndAreResetAtTheEnd() {
        var screen = ScreenBuffer(size: TerminalSize(columns: 10, rows: 1))
        screen.write("ok", row: 0, column: 0, style: CellStyle(foreground: .green, bold: true))
        screen.write("!", row: 0, column: 3, style: CellStyle(inverse: true))
        let output = FrameEncoder.encode(screen, over: ScreenBuffer(size: screen.size))
        #expect(output == "\u{1B}[1;1H\u{1B}[0;1;32mok\u{1B}[0m \u{1B}[0;7m!\u{1B}[0m")
    }

    @Test func enteringAndLeavingTheAlternateScreen() {
        var terminal = VirtualTerminal(columns: 20, rows: 3)
        terminal.feed(Array("$ mothership --tui\r\n".utf8))
        terminal.feed(Array(FrameEncoder.enter.utf8))
        #expect(terminal.onAlternateScreen && !terminal.cursorVisible)
        terminal.feed(Array("dashboard".utf8))
        terminal.feed(Array(FrameEncoder.leave.utf8))
        #expect(!terminal.onAlternateScreen && terminal.cursorVisible)
        #expect(terminal.lines.first == "$ mothership --tui")
    }

    @Test func rateMeterAveragesOverTheLastSecond() {
        var meter = RateMeter()
        #expect(meter.sample(0, at: .zero) == nil)
        #expect(meter.sample(10, at: .milliseconds(200)) == nil, "too soon to tell")
        #expect(meter.sample(50, at: .seconds(1)) == 50)
        #expect(meter.sample(150, at: .seconds(2)) == 100)
        #expect(meter.sample(150, at: .seconds(3)) == 0)
        #expect(meter.sample(3, at: .seconds(4)) == nil, "a reset counter starts over")
    }
}
