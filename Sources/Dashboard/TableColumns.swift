/// A table's columns: fixed widths, one space apart; a width of 0 takes the rest of the row.
struct TableColumns {
    let specs: [(title: String, width: Int, right: Bool)]

    init(_ specs: [(String, Int, Bool)]) {
        self.specs = specs.map { (title: $0.0, width: $0.1, right: $0.2) }
    }

    func writeTitles(row: Int, into screen: inout ScreenBuffer) {
        write(specs.map { ($0.title, CellStyle(bold: true, dim: true)) }, row: row, into: &screen)
    }

    func write(_ values: [(String, CellStyle)], row: Int, into screen: inout ScreenBuffer) {
        var x = 1
        for (spec, value) in zip(specs, values) {
            guard x < screen.size.columns else { return }
            let width = spec.width == 0 ? screen.size.columns - x : spec.width
            var text = TextWidth.fit(value.0, to: width)
            if spec.right {
                text = String(repeating: " ", count: max(0, width - TextWidth.columns(of: text))) + text
            }
            screen.write(text, row: row, column: x, width: width, style: value.1)
            x += width + 1
        }
    }
}

/// Numbers as the dashboard prints them.
enum Format {
    /// `512B`, `850K`, `9.5M`, `123M`, `1.2G`.
    static func bytes(_ value: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
        for (size, unit) in units where value >= size {
            let amount = Double(value) / Double(size)
            return amount < 10 ? "\(decimal(amount))\(unit)" : "\(Int(amount))\(unit)"
        }
        return "\(value)B"
    }

    /// `42s`, `3m12s`, `2h05m`, `3d04h`.
    static func uptime(_ duration: Duration) -> String {
        let seconds = max(0, Int(duration.components.seconds))
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3600: return "\(seconds / 60)m\(two(seconds % 60))s"
        case ..<86400: return "\(seconds / 3600)h\(two(seconds % 3600 / 60))m"
        default: return "\(seconds / 86400)d\(two(seconds % 86400 / 3600))h"
        }
    }

    /// `0`, `4.2`, `123`.
    static func rate(_ value: Double) -> String {
        value >= 100 ? "\(Int(value.rounded()))" : decimal(value)
    }

    /// One decimal place, rounded down.
    static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded(.down))
        return "\(tenths / 10).\(tenths % 10)"
    }
}
