/// The eight basic ANSI colours (SGR 30-37).
public enum TerminalColor: UInt8, Sendable, Hashable {
    case black = 0
    case red
    case green
    case yellow
    case blue
    case magenta
    case cyan
    case white
}

/// How a cell is drawn.
public struct CellStyle: Sendable, Hashable {
    public var foreground: TerminalColor?
    public var bold = false
    public var dim = false
    public var inverse = false

    public init(
        foreground: TerminalColor? = nil, bold: Bool = false, dim: Bool = false, inverse: Bool = false
    ) {
        self.foreground = foreground
        self.bold = bold
        self.dim = dim
        self.inverse = inverse
    }

    public static let plain = CellStyle()
}

/// One terminal cell. A double-width character occupies two: itself, then a continuation cell.
public struct Cell: Sendable, Hashable {
    public var character: Character
    public var style: CellStyle
    /// The right half of a double-width character (drawn by the cell before it).
    public var isContinuation = false

    public init(_ character: Character, style: CellStyle = .plain) {
        self.character = character
        self.style = style
    }

    public static let blank = Cell(" ")
}

/// Columns and rows.
public struct TerminalSize: Sendable, Hashable {
    public var columns: Int
    public var rows: Int

    public init(columns: Int, rows: Int) {
        self.columns = columns
        self.rows = rows
    }
}

/// A screen's worth of cells: what the renderer produces and the diff compares.
public struct ScreenBuffer: Sendable, Hashable {
    public let size: TerminalSize
    private(set) var cells: [Cell]

    public init(size: TerminalSize) {
        self.size = TerminalSize(columns: max(0, size.columns), rows: max(0, size.rows))
        cells = Array(repeating: .blank, count: self.size.columns * self.size.rows)
    }

    public subscript(row: Int, column: Int) -> Cell {
        cells[row * size.columns + column]
    }

    /// Writes `text` from `column` on `row`, clipped at `column + width` (default: the right edge);
    /// a clipped text ends in `…`. Returns the columns used.
    @discardableResult
    public mutating func write(
        _ text: String, row: Int, column: Int, width: Int? = nil, style: CellStyle = .plain
    ) -> Int {
        guard row >= 0, row < size.rows, column >= 0, column < size.columns else { return 0 }
        let limit = min(size.columns, column + (width ?? size.columns))
        let fitted = TextWidth.fit(text, to: limit - column)
        var x = column
        for character in fitted {
            let span = TextWidth.columns(of: character)
            guard span > 0 else { continue }
            guard x + span <= limit else { break }
            unsplit(row: row, column: x)
            if span == 2 { unsplit(row: row, column: x + 1) }
            cells[row * size.columns + x] = Cell(character, style: style)
            if span == 2 {
                var continuation = Cell(" ", style: style)
                continuation.isContinuation = true
                cells[row * size.columns + x + 1] = continuation
            }
            x += span
        }
        return x - column
    }

    /// Before overwriting a cell, blanks the other half of a double-width character it belongs to.
    private mutating func unsplit(row: Int, column: Int) {
        let index = row * size.columns + column
        if cells[index].isContinuation, column > 0 {
            cells[index - 1] = Cell(" ", style: cells[index - 1].style)
        } else if column + 1 < size.columns, cells[index + 1].isContinuation {
            cells[index + 1] = Cell(" ", style: cells[index + 1].style)
        }
    }

    /// Gives cells a style (a highlighted row, a bar) without changing their characters.
    public mutating func setStyle(_ style: CellStyle, row: Int, columns: Range<Int>? = nil) {
        guard row >= 0, row < size.rows else { return }
        let range = (columns ?? 0..<size.columns).clamped(to: 0..<size.columns)
        for x in range { cells[row * size.columns + x].style = style }
    }

    /// Highlights a row (the selection), keeping each cell's colour.
    public mutating func invert(row: Int) {
        guard row >= 0, row < size.rows else { return }
        for x in 0..<size.columns { cells[row * size.columns + x].style.inverse = true }
    }

    /// One row as text, trailing blanks removed.
    public func text(ofRow row: Int) -> String {
        var line = ""
        for x in 0..<size.columns where !self[row, x].isContinuation {
            line.append(self[row, x].character)
        }
        while line.last == " " { line.removeLast() }
        return line
    }

    /// Every row as text (trailing blanks removed), joined by newlines: what snapshot tests compare.
    public var plainText: String {
        (0..<size.rows).map { text(ofRow: $0) }.joined(separator: "\n")
    }
}

/// Display widths of characters, and making untrusted text (a child's output) safe to draw.
public enum TextWidth {
    /// 0 for combining marks and controls, 2 for East Asian wide and emoji, else 1.
    public static func columns(of character: Character) -> Int {
        guard let scalar = character.unicodeScalars.first else { return 0 }
        let value = scalar.value
        switch value {
        case 0..<0x20, 0x7F..<0xA0: return 0
        case 0x300..<0x370, 0x200B...0x200F, 0xFE00...0xFE0F: return 0
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
            0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
            0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
            return 2
        default: return 1
        }
    }

    public static func columns(of text: String) -> Int {
        text.reduce(0) { $0 + columns(of: $1) }
    }

    /// `text` cut to `width` columns, ending in `…` when cut.
    public static func fit(_ text: String, to width: Int) -> String {
        guard width > 0 else { return "" }
        guard columns(of: text) > width else { return text }
        var result = ""
        var used = 0
        for character in text {
            let span = columns(of: character)
            if used + span > width - 1 { break }
            result.append(character)
            used += span
        }
        return result + "…"
    }

    /// A child's line made drawable: escape sequences (colours, cursor moves) removed, tabs expanded
    /// to the next multiple of 8, other control characters dropped.
    public static func sanitize(_ text: String) -> String {
        var result = ""
        var column = 0
        var scalars = text.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            switch scalar.value {
            case 0x1B:
                skipEscape(&scalars)
            case 0x09:
                let spaces = 8 - column % 8
                result += String(repeating: " ", count: spaces)
                column += spaces
            case 0..<0x20, 0x7F..<0xA0:
                continue
            default:
                result.unicodeScalars.append(scalar)
                column += 1
            }
        }
        return result
    }

    /// Skips the rest of an escape sequence: CSI up to its final byte, OSC up to BEL or ESC \.
    static func skipEscape(_ scalars: inout String.UnicodeScalarView.Iterator) {
        guard let introducer = scalars.next() else { return }
        switch introducer {
        case "[":
            while let next = scalars.next(), !(0x40...0x7E).contains(next.value) {}
        case "]":
            while let next = scalars.next() {
                if next.value == 0x07 { return }
                if next.value == 0x1B {
                    _ = scalars.next()
                    return
                }
            }
        default: return
        }
    }
}
