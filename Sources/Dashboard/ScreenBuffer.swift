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
