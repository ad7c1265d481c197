/// The dashboard's tabs, in Tab order.
public enum DashboardTab: Int, Sendable, Hashable, CaseIterable {
    case overview
    case logs
    case modules

    public var title: String {
        switch self {
        case .overview: "Overview"
        case .logs: "Logs"
        case .modules: "Modules"
        }
    }
}

/// What a key asks the fleet to do; the caller carries it out.
public enum DashboardAction: Sendable, Hashable {
    case restart(String)
    case land
}

/// What the state machine needs to know about the screen and the fleet to handle a key.
public struct DashboardContext: Sendable, Hashable {
    /// The vessels, in manifest order.
    public var vessels: [String]
    public var moduleCount: Int
    /// The selected log's lines ever appended and lines still retained.
    public var logTotal: Int
    public var logRetained: Int
    /// Rows available to log lines.
    public var logPage: Int

    public init(vessels: [String], moduleCount: Int, logTotal: Int, logRetained: Int, logPage: Int) {
        self.vessels = vessels
        self.moduleCount = moduleCount
        self.logTotal = logTotal
        self.logRetained = logRetained
        self.logPage = logPage
    }

    /// The Logs tab lists every vessel, then mothership's own log.
    public var logEntries: [String] { vessels + [DashboardState.mothershipEntry] }
}

/// Which tab is shown, what is selected and where the log is scrolled. Pure: keys in, state and
/// actions out.
public struct DashboardState: Sendable, Hashable {
    /// The Logs entry holding mothership's own log lines.
    public static let mothershipEntry = "mothership"

    public var tab: DashboardTab = .overview
    /// A vessel name or `mothershipEntry`; nil selects the first vessel.
    public var selected: String?
    public var selectedModule = 0
    /// The absolute index (lines appended before it) of the top log line shown; nil while following.
    public var logTop: Int?
    /// Shown in the footer until the next key.
    public var notice: String?
    public var landing = false

    public init() {}

    public var following: Bool { logTop == nil }

    /// The selection among `entries` (the first entry when nothing valid is selected).
    public func selection(in entries: [String]) -> String? {
        if let selected, entries.contains(selected) { return selected }
        return entries.first
    }

    /// Handles one key; returns what the fleet should do, if anything.
    public mutating func handle(_ key: DashboardKey, in context: DashboardContext) -> DashboardAction? {
        notice = nil
        switch key {
        case .tab: switchTab(by: 1)
        case .backTab: switchTab(by: -1)
        case .up, .character("k"): move(by: -1, in: context)
        case .down, .character("j"): move(by: 1, in: context)
        case .pageUp: scroll(pages: -1, in: context)
        case .pageDown: scroll(pages: 1, in: context)
        case .home: scrollToTop(in: context)
        case .end: logTop = nil
        case .character("1"): tab = .overview
        case .character("2"): tab = .logs
        case .character("3"): tab = .modules
        case .character("r"):
            guard tab != .modules, !landing, let name = selection(in: entries(for: context)),
                name != Self.mothershipEntry
            else { return nil }
            notice = "restarting \(name)…"
            return .restart(name)
        case .character("q"), .interrupt:
            guard !landing else { return nil }
            landing = true
            return .land
        default: break
        }
        return nil
    }

    /// The first and last absolute line indices shown, given the log and the page height.
    public func logWindow(total: Int, retained: Int, page: Int) -> Range<Int> {
        let first = total - retained
        let lastTop = max(first, total - page)
        let top = logTop.map { min(max($0, first), lastTop) } ?? lastTop
        return top..<min(total, top + page)
    }

    func entries(for context: DashboardContext) -> [String] {
        tab == .logs ? context.logEntries : context.vessels
    }

    mutating func switchTab(by step: Int) {
        let count = DashboardTab.allCases.count
        tab = DashboardTab(rawValue: (tab.rawValue + step + count) % count)!
    }

    mutating func move(by step: Int, in context: DashboardContext) {
        if tab == .modules {
            selectedModule = max(0, min(context.moduleCount - 1, selectedModule + step))
            return
        }
        let entries = entries(for: context)
        guard !entries.isEmpty else { return }
        let next: Int
        if let index = entries.firstIndex(of: selected ?? entries[0]) {
            next = max(0, min(entries.count - 1, index + step))
        } else {
            next = step < 0 ? entries.count - 1 : 0
        }
        if entries[next] != selection(in: entries) { logTop = nil }
        selected = entries[next]
    }

    mutating func scroll(pages: Int, in context: DashboardContext) {
        guard tab == .logs else { return }
        let page = max(1, context.logPage)
        let window = logWindow(total: context.logTotal, retained: context.logRetained, page: page)
        let top = window.lowerBound + pages * page
        let first = context.logTotal - context.logRetained
        // Back at (or past) the bottom: follow new lines again.
        logTop = top >= context.logTotal - page ? nil : max(first, top)
    }

    mutating func scrollToTop(in context: DashboardContext) {
        guard tab == .logs else { return }
        let first = context.logTotal - context.logRetained
        logTop = context.logRetained > context.logPage ? first : nil
    }
}
