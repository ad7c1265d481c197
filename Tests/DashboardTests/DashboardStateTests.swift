import Dashboard
import Testing

@Suite("Dashboard state")
struct DashboardStateTests {
    static let context = DashboardContext(
        vessels: ["web", "worker", "db"], moduleCount: 2, logTotal: 100, logRetained: 100, logPage: 10)

    @Test func tabAndShiftTabCycleThroughTheTabs() {
        var state = DashboardState()
        var seen: [DashboardTab] = []
        for _ in 0..<3 {
            _ = state.handle(.tab, in: Self.context)
            seen.append(state.tab)
        }
        #expect(seen == [.logs, .modules, .overview])
        _ = state.handle(.backTab, in: Self.context)
        #expect(state.tab == .modules)
        _ = state.handle(.character("2"), in: Self.context)
        #expect(state.tab == .logs)
    }

    @Test func arrowsAndJKMoveTheSelectionWithinBounds() {
        var state = DashboardState()
        #expect(state.selection(in: Self.context.vessels) == "web")
        _ = state.handle(.down, in: Self.context)
        _ = state.handle(.character("j"), in: Self.context)
        _ = state.handle(.down, in: Self.context)
        #expect(state.selected == "db")
        _ = state.handle(.character("k"), in: Self.context)
        #expect(state.selected == "worker")
        // The Logs tab adds mothership's own log after the vessels.
        _ = state.handle(.tab, in: Self.context)
        for _ in 0..<5 { _ = state.handle(.down, in: Self.context) }
        #expect(state.selected == DashboardState.mothershipEntry)
        // Back on Overview, mothership is no vessel: the first vessel counts as selected.
        _ = state.handle(.backTab, in: Self.context)
        #expect(state.selection(in: Self.context.vessels) == "web")
        _ = state.handle(.up, in: Self.context)
        #expect(state.selected == "db", "up from outside the list lands on its last entry")
    }

    @Test func pagingScrollsTheLogAndTheBottomFollowsAgain() {
        var state = DashboardState()
        _ = state.handle(.tab, in: Self.context)
        #expect(state.logWindow(total: 100, retained: 100, page: 10) == 90..<100)
        _ = state.handle(.pageUp, in: Self.context)
        #expect(state.logTop == 80)
        #expect(!state.following)
        // New lines do not move a scrolled-back view.
        #expect(state.logWindow(total: 150, retained: 100, page: 10) == 80..<90)
        _ = state.handle(.pageDown, in: Self.context)
        #expect(state.following)
        _ = state.handle(.home, in: Self.context)
        #expect(state.logWindow(total: 100, retained: 100, page: 10) == 0..<10)
        _ = state.handle(.pageUp, in: Self.context)
        #expect(state.logTop == 0, "not above the first retained line")
        _ = state.handle(.end, in: Self.context)
        #expect(state.following)
        // Lines dropped by the ring: the view starts at the oldest retained one.
        _ = state.handle(.home, in: Self.context)
        #expect(state.logWindow(total: 1500, retained: 1000, page: 10) == 500..<510)
        // Choosing another vessel follows its log.
        _ = state.handle(.down, in: Self.context)
        #expect(state.following)
    }

    @Test func aShortLogFollowsWhateverTheKeys() {
        let short = DashboardContext(
            vessels: ["web"], moduleCount: 0, logTotal: 4, logRetained: 4, logPage: 10)
        var state = DashboardState()
        _ = state.handle(.tab, in: short)
        _ = state.handle(.home, in: short)
        _ = state.handle(.pageUp, in: short)
        #expect(state.logWindow(total: 4, retained: 4, page: 10) == 0..<4)
    }

    @Test func rRestartsTheSelectedVesselAndQLandsOnce() {
        var state = DashboardState()
        _ = state.handle(.down, in: Self.context)
        #expect(state.handle(.character("r"), in: Self.context) == .restart("worker"))
        #expect(state.notice == "restarting worker…")
        _ = state.handle(.tab, in: Self.context)
        #expect(state.notice == nil)
        for _ in 0..<3 { _ = state.handle(.down, in: Self.context) }
        #expect(state.handle(.character("r"), in: Self.context) == nil, "mothership cannot be restarted")
        _ = state.handle(.tab, in: Self.context)
        #expect(state.handle(.character("r"), in: Self.context) == nil, "not on the Modules tab")
        #expect(state.handle(.character("q"), in: Self.context) == .land)
        #expect(state.landing)
        #expect(state.handle(.character("q"), in: Self.context) == nil)
        #expect(state.handle(.character("r"), in: Self.context) == nil)
    }

    @Test func arrowsOnTheModulesTabMoveTheModuleSelection() {
        var state = DashboardState()
        _ = state.handle(.character("3"), in: Self.context)
        for _ in 0..<4 { _ = state.handle(.down, in: Self.context) }
        #expect(state.selectedModule == 1)
        _ = state.handle(.up, in: Self.context)
        #expect(state.selectedModule == 0)
        #expect(state.selected == nil)
    }
}
