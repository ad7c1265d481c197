import Supervision

/// Draws one frame: a fleet snapshot, the dashboard's state and the selected log, at a size, into a
/// `ScreenBuffer`. Pure, so every screen is testable as plain text.
///
/// Layout: row 0 the header (name, lifecycle, vessels up, request rate), row 1 the binds, row 2 the
/// tabs, rows 3 to the second-last the tab's body, the last row the keys (or a notice).
public enum Renderer {
    /// First body row.
    static let bodyTop = 3

    /// Rows for log lines in the Logs tab (the body minus its title row).
    public static func logPage(for size: TerminalSize) -> Int {
        max(1, size.rows - bodyTop - 2)
    }

    public static func render(
        _ snapshot: DashboardSnapshot, state: DashboardState, log: LogExcerpt, size: TerminalSize
    ) -> ScreenBuffer {
        var screen = ScreenBuffer(size: size)
        guard size.rows > 0, size.columns > 0 else { return screen }
        header(snapshot, into: &screen)
        tabs(state.tab, into: &screen)
        let body = bodyTop..<max(bodyTop, size.rows - 1)
        if !body.isEmpty {
            switch state.tab {
            case .overview: overview(snapshot.fleet, state: state, rows: body, into: &screen)
            case .logs: logs(snapshot.fleet, state: state, log: log, rows: body, into: &screen)
            case .modules: modules(snapshot, state: state, rows: body, into: &screen)
            }
        }
        footer(state, lifecycle: snapshot.fleet.lifecycle, into: &screen)
        return screen
    }

    // MARK: Header, tabs, footer

    static func header(_ snapshot: DashboardSnapshot, into screen: inout ScreenBuffer) {
        let fleet = snapshot.fleet
        var x = 1
        x += screen.write(snapshot.title, row: 0, column: x, style: CellStyle(bold: true)) + 2
        x +=
            screen.write(
                fleet.lifecycle.rawValue, row: 0, column: x,
                style: CellStyle(foreground: color(of: fleet.lifecycle), bold: true)) + 2
        let up = fleet.vessels.filter { $0.phase == .running || $0.phase == .completed }.count
        x += screen.write("\(up)/\(fleet.vessels.count) up", row: 0, column: x) + 2
        if snapshot.requestsTotal != nil {
            let rate = snapshot.requestRate.map { Format.rate($0) } ?? "–"
            screen.write("\(rate) req/s", row: 0, column: x)
        }
        guard screen.size.rows > 1 else { return }
        let binds = snapshot.binds.isEmpty ? "none" : snapshot.binds.joined(separator: "  ")
        let used = screen.write("binds ", row: 1, column: 1, style: CellStyle(dim: true))
        screen.write(binds, row: 1, column: 1 + used)
    }

    static func tabs(_ active: DashboardTab, into screen: inout ScreenBuffer) {
        guard screen.size.rows > 2 else { return }
        var x = 1
        for tab in DashboardTab.allCases {
            let style = tab == active ? CellStyle(bold: true, inverse: true) : CellStyle(dim: true)
            x += screen.write(" \(tab.rawValue + 1) \(tab.title) ", row: 2, column: x, style: style) + 1
        }
    }

    static func footer(_ state: DashboardState, lifecycle: LifecycleState, into screen: inout ScreenBuffer) {
        let row = screen.size.rows - 1
        guard row >= bodyTop else { return }
        let text =
            state.landing || lifecycle == .draining
            ? "landing the fleet… (Ctrl-C twice kills every vessel at once)"
            : state.notice ?? "Tab/S-Tab tabs  ↑↓ select  PgUp/PgDn scroll  Home/End  r restart  q quit"
        screen.write(" " + text, row: row, column: 0, style: CellStyle(inverse: true))
        screen.setStyle(CellStyle(inverse: true), row: row)
    }

    // MARK: Overview

    static func overview(
        _ fleet: FleetStatus, state: DashboardState, rows: Range<Int>, into screen: inout ScreenBuffer
    ) {
        let vessels = fleet.vessels
        // An instance's name is ` web[0]`.
        let nameWidth = min(
            16, max(4, vessels.map { $0.name.count + ($0.instances.isEmpty ? 0 : 4) }.max() ?? 0))
        let groupWidth = min(10, max(5, vessels.map { $0.group.count }.max() ?? 0))
        let columns = TableColumns([
            ("NAME", nameWidth, false), ("GROUP", groupWidth, false), ("KIND", 4, false),
            ("STATUS", 11, false), ("PID", 7, true), ("HEALTH", 7, false), ("RST", 3, true),
            ("RSS", 6, true), ("UPTIME", 7, true), ("ROUTES", 0, false),
        ])
        columns.writeTitles(row: rows.lowerBound, into: &screen)
        let page = rows.count - 1
        guard page > 0 else { return }
        if vessels.isEmpty {
            screen.write("No ships or bays in the manifest.", row: rows.lowerBound + 1, column: 1)
            return
        }
        let selected = state.selection(in: vessels.map(\.name))
        // A ship with workers shows a row per instance under its own (not selectable), and so does a
        // bay during a phased restart (its serving process and the one replacing or replaced).
        let lines: [(VesselStatus, InstanceStatus?)] = vessels.flatMap { vessel in
            [(vessel, nil)] + vessel.instances.map { (vessel, $0) }
        }
        let selectedIndex = lines.firstIndex { $0.1 == nil && $0.0.name == selected }
        let first = max(0, (selectedIndex ?? 0) - page + 1)
        for (offset, (vessel, instance)) in lines.dropFirst(first).prefix(page).enumerated() {
            let row = rows.lowerBound + 1 + offset
            if let instance {
                columns.write(
                    instanceCells(instance, of: vessel.name, now: fleet.now), row: row, into: &screen)
                continue
            }
            columns.write(
                [
                    (vessel.name, CellStyle(bold: true)), (vessel.group, .plain),
                    (vessel.kind.rawValue, .plain),
                    (vessel.phase.rawValue, CellStyle(foreground: color(of: vessel.phase))),
                    (vessel.pid.map(String.init) ?? "-", .plain),
                    health(vessel.healthy), ("\(vessel.restarts)", .plain),
                    (vessel.memory.map { Format.bytes($0.residentBytes) } ?? "-", .plain),
                    (uptime(of: vessel, now: fleet.now), .plain),
                    (vessel.routes.isEmpty ? "-" : vessel.routes.joined(separator: " "), .plain),
                ], row: row, into: &screen)
            if vessel.name == selected && state.tab == .overview { screen.invert(row: row) }
        }
    }

    /// One instance of a ship with workers: `web[0]`, its state (`draining` once replaced), pid,
    /// health, its slot's restarts, memory, uptime and address.
    static func instanceCells(_ instance: InstanceStatus, of ship: String, now: Duration) -> [(
        String, CellStyle
    )] {
        let (state, color): (String, TerminalColor?) =
            instance.draining
            ? ("draining", .yellow) : instance.ready ? ("running", .green) : ("starting", .yellow)
        let uptime = instance.startedAt.map { Format.uptime(now - $0) } ?? "-"
        return [
            (" \(ship)[\(instance.slot)]", CellStyle(dim: true)), ("", .plain), ("", .plain),
            (state, CellStyle(foreground: color)), (String(instance.pid), .plain), health(instance.healthy),
            ("\(instance.restarts)", .plain),
            (instance.memory.map { Format.bytes($0.residentBytes) } ?? "-", .plain), (uptime, .plain),
            (instance.address.map { "\($0)" } ?? "-", CellStyle(dim: true)),
        ]
    }

    static func health(_ healthy: Bool?) -> (String, CellStyle) {
        switch healthy {
        case nil: ("-", .plain)
        case true?: ("ok", CellStyle(foreground: .green))
        case false?: ("failing", CellStyle(foreground: .red))
        }
    }

    static func uptime(of vessel: VesselStatus, now: Duration) -> String {
        guard let startedAt = vessel.startedAt,
            [.running, .starting, .stopping].contains(vessel.phase)
        else { return "-" }
        return Format.uptime(now - startedAt)
    }

    // MARK: Logs

    static func logs(
        _ fleet: FleetStatus, state: DashboardState, log: LogExcerpt, rows: Range<Int>,
        into screen: inout ScreenBuffer
    ) {
        let entries = fleet.vessels.map(\.name) + [DashboardState.mothershipEntry]
        let selected = state.selection(in: entries) ?? DashboardState.mothershipEntry
        let listWidth = min(16, max(10, entries.map(\.count).max() ?? 0)) + 2
        let left = listWidth + 2
        for (offset, entry) in entries.prefix(rows.count).enumerated() {
            let row = rows.lowerBound + offset
            screen.write(" " + entry, row: row, column: 0, width: listWidth)
            if entry == selected {
                screen.setStyle(CellStyle(bold: true, inverse: true), row: row, columns: 0..<listWidth)
            }
        }
        for row in rows { screen.write("│", row: row, column: listWidth, style: CellStyle(dim: true)) }

        let page = rows.count - 1
        let window = state.logWindow(total: log.total, retained: log.lines.count, page: page)
        let title: String
        if log.total == 0 {
            title = "\(selected) · no output yet"
        } else if state.following {
            title = "\(selected) · \(log.total) line\(log.total == 1 ? "" : "s") · following"
        } else {
            title =
                "\(selected) · lines \(window.lowerBound + 1)–\(window.upperBound) of \(log.total) · End follows"
        }
        screen.write(title, row: rows.lowerBound, column: left, style: CellStyle(dim: true))
        let first = log.total - log.lines.count
        for (offset, index) in window.enumerated() {
            let line = log.lines[index - first]
            screen.write(
                TextWidth.sanitize(line.text), row: rows.lowerBound + 1 + offset, column: left,
                style: line.stream == .stderr && selected == DashboardState.mothershipEntry
                    ? CellStyle(foreground: .yellow) : .plain)
        }
    }

    // MARK: Modules

    static func modules(
        _ snapshot: DashboardSnapshot, state: DashboardState, rows: Range<Int>,
        into screen: inout ScreenBuffer
    ) {
        let modules = snapshot.modules
        if modules.isEmpty {
            screen.write("No [[modules]] in the manifest.", row: rows.lowerBound, column: 1)
            return
        }
        let nameWidth = min(16, max(4, modules.map(\.name.count).max() ?? 0))
        let columns = TableColumns([
            ("NAME", nameWidth, false), ("PHASE", 8, false), ("INVOCATIONS", 11, true), ("BLOCKS", 6, true),
            ("ERRORS", 6, true), ("ROUTES", 0, false),
        ])
        columns.writeTitles(row: rows.lowerBound, into: &screen)
        let notes = snapshot.moduleCountersLive ? 0 : 2
        let page = rows.count - 1 - notes
        guard page > 0 else { return }
        let selected = min(state.selectedModule, modules.count - 1)
        let first = max(0, selected - page + 1)
        var row = rows.lowerBound + 1
        for (offset, module) in modules.dropFirst(first).prefix(page).enumerated() {
            columns.write(
                [
                    (module.name, CellStyle(bold: true)), (module.phase, .plain),
                    ("\(module.invocations)", .plain),
                    ("\(module.blocks)", .plain),
                    ("\(module.errors)", CellStyle(foreground: module.errors > 0 ? .red : nil)),
                    (module.routes.joined(separator: " "), .plain),
                ], row: row, into: &screen)
            if first + offset == selected { screen.invert(row: row) }
            row += 1
        }
        if !snapshot.moduleCountersLive {
            screen.write(
                "No counters: no bind runs these modules.",
                row: row + 1, column: 1, style: CellStyle(dim: true))
        }
    }

    // MARK: Colours

    static func color(of phase: VesselPhase) -> TerminalColor? {
        switch phase {
        case .running: .green
        case .waiting, .starting, .stopping: .yellow
        case .backingOff, .failed: .red
        case .completed: .cyan
        case .stopped: nil
        }
    }

    static func color(of state: LifecycleState) -> TerminalColor {
        switch state {
        case .running: .green
        case .landed: .cyan
        case .failed, .crashed, .mayday: .red
        default: .yellow
        }
    }
}
