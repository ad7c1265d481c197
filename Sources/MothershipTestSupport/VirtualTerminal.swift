/// A small terminal emulator for tests: enough of VT100/xterm to replay what the dashboard writes
/// (cursor moves, clears, SGR, the alternate screen, cursor visibility, CR/LF) and read the screen
/// back as text, the way `tmux capture-pane` would.
public struct VirtualTerminal: Sendable {
    public let columns: Int
    public let rows: Int
    private var normal: [[Character]]
    private var alternate: [[Character]]
    public private(set) var onAlternateScreen = false
    public private(set) var cursorVisible = true
    private var row = 0
    private var column = 0
    private var pending: [UInt8] = []
    /// The normal screen's cursor, saved while the alternate screen is shown (as xterm's 1049 does).
    private var savedCursor = (row: 0, column: 0)

    public init(columns: Int, rows: Int) {
        self.columns = columns
        self.rows = rows
        normal = Array(repeating: Array(repeating: " ", count: columns), count: rows)
        alternate = normal
    }

    /// The screen now shown, one string per row, trailing blanks removed.
    public var lines: [String] {
        (onAlternateScreen ? alternate : normal).map { line in
            var text = String(line)
            while text.last == " " { text.removeLast() }
            return text
        }
    }

    public var text: String { lines.joined(separator: "\n") }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        pending.append(contentsOf: bytes)
        var index = 0
        while index < pending.count {
            guard let used = step(pending[index...]) else { break }
            index += used
        }
        pending.removeFirst(index)
    }

    /// Handles what starts `bytes`; returns the bytes used, or nil to wait for more.
    private mutating func step(_ bytes: ArraySlice<UInt8>) -> Int? {
        let start = bytes.startIndex
        let byte = bytes[start]
        switch byte {
        case 0x1B:
            guard bytes.count >= 2 else { return nil }
            guard bytes[start + 1] == UInt8(ascii: "[") else { return 2 }
            var end = start + 2
            while end < bytes.endIndex, !(0x40...0x7E).contains(bytes[end]) { end += 1 }
            guard end < bytes.endIndex else { return nil }
            control(String(decoding: bytes[(start + 2)..<end], as: UTF8.self), final: bytes[end])
            return end - start + 1
        case 0x0D:
            column = 0
            return 1
        case 0x0A:
            lineFeed()
            return 1
        case 0x08:
            column = max(0, column - 1)
            return 1
        case 0..<0x20:
            return 1
        default:
            let length = byte < 0x80 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4
            guard bytes.count >= length else { return nil }
            for character in String(decoding: bytes.prefix(length), as: UTF8.self) { put(character) }
            return length
        }
    }

    private mutating func put(_ character: Character) {
        if column >= columns {
            column = 0
            lineFeed()
        }
        if onAlternateScreen { alternate[row][column] = character } else { normal[row][column] = character }
        column += 1
    }

    private mutating func lineFeed() {
        if row + 1 < rows {
            row += 1
            return
        }
        let blank = Array(repeating: Character(" "), count: columns)
        if onAlternateScreen {
            alternate.removeFirst()
            alternate.append(blank)
        } else {
            normal.removeFirst()
            normal.append(blank)
        }
    }

    private mutating func control(_ parameters: String, final: UInt8) {
        let numbers = parameters.split(separator: ";", omittingEmptySubsequences: false).map {
            Int($0.filter(\.isNumber)) ?? 0
        }
        func number(_ index: Int, default value: Int) -> Int {
            index < numbers.count && numbers[index] > 0 ? numbers[index] : value
        }
        switch final {
        case UInt8(ascii: "H"), UInt8(ascii: "f"):
            row = min(rows - 1, number(0, default: 1) - 1)
            column = min(columns - 1, number(1, default: 1) - 1)
        case UInt8(ascii: "A"): row = max(0, row - number(0, default: 1))
        case UInt8(ascii: "B"): row = min(rows - 1, row + number(0, default: 1))
        case UInt8(ascii: "C"): column = min(columns - 1, column + number(0, default: 1))
        case UInt8(ascii: "D"): column = max(0, column - number(0, default: 1))
        case UInt8(ascii: "J") where number(0, default: 0) == 2: clear(rows: 0..<rows)
        case UInt8(ascii: "K"):
            for x in column..<columns { set(row, x, " ") }
        case UInt8(ascii: "h") where parameters.hasPrefix("?"): mode(parameters, on: true)
        case UInt8(ascii: "l") where parameters.hasPrefix("?"): mode(parameters, on: false)
        default: break  // SGR and anything else: no effect on the text
        }
    }

    private mutating func mode(_ parameters: String, on: Bool) {
        for mode in parameters.dropFirst().split(separator: ";") {
            switch mode {
            case "25": cursorVisible = on
            case "1049":
                if on && !onAlternateScreen {
                    savedCursor = (row, column)
                    onAlternateScreen = true
                    clear(rows: 0..<rows)
                } else if !on && onAlternateScreen {
                    onAlternateScreen = false
                    (row, column) = savedCursor
                }
            default: break
            }
        }
    }

    private mutating func clear(rows range: Range<Int>) {
        for y in range { for x in 0..<columns { set(y, x, " ") } }
    }

    private mutating func set(_ y: Int, _ x: Int, _ character: Character) {
        if onAlternateScreen { alternate[y][x] = character } else { normal[y][x] = character }
    }
}
