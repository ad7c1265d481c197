/// The ANSI bytes that take a terminal from one frame to the next: for each row that changed, the
/// span from its first to its last changed cell; everything when there is no previous frame or the
/// size changed. Pure.
public enum FrameEncoder {
    static let escape = "\u{1B}["

    /// Alternate screen, cursor hidden, screen cleared.
    public static let enter = "\u{1B}[?1049h\u{1B}[?25l\u{1B}[0m\u{1B}[H\u{1B}[2J"
    /// Attributes reset, cursor shown, back to the normal screen (whose contents the terminal kept).
    public static let leave = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"

    /// Bytes to draw `next` over `previous` (nil: a blank or unknown screen). Empty when nothing changed.
    public static func encode(_ next: ScreenBuffer, over previous: ScreenBuffer?) -> String {
        var output = ""
        let full = previous == nil || previous?.size != next.size
        if full { output += escape + "0m" + escape + "H" + escape + "2J" }
        var current: CellStyle? = nil
        for row in 0..<next.size.rows {
            guard var span = changedSpan(row: row, next: next, previous: full ? nil : previous) else {
                continue
            }
            // Never start on the right half of a wide character, nor end on its left half.
            while span.lowerBound > 0, next[row, span.lowerBound].isContinuation {
                span = (span.lowerBound - 1)..<span.upperBound
            }
            while span.upperBound < next.size.columns, next[row, span.upperBound].isContinuation {
                span = span.lowerBound..<(span.upperBound + 1)
            }
            output += escape + "\(row + 1);\(span.lowerBound + 1)H"
            for column in span {
                let cell = next[row, column]
                if cell.isContinuation { continue }
                if cell.style != current {
                    output += sgr(cell.style)
                    current = cell.style
                }
                output.append(cell.character)
            }
        }
        if current != nil && current != .plain { output += escape + "0m" }
        return output
    }

    /// The columns of `row` that differ (all non-blank ones when there is no previous frame).
    static func changedSpan(row: Int, next: ScreenBuffer, previous: ScreenBuffer?) -> Range<Int>? {
        let differs: (Int) -> Bool
        if let previous {
            differs = { next[row, $0] != previous[row, $0] }
        } else {
            differs = { next[row, $0] != .blank }
        }
        guard let first = (0..<next.size.columns).first(where: differs),
            let last = (0..<next.size.columns).last(where: differs)
        else { return nil }
        return first..<(last + 1)
    }

    /// Select Graphic Rendition: reset, then the style's attributes.
    static func sgr(_ style: CellStyle) -> String {
        var codes = "0"
        if style.bold { codes += ";1" }
        if style.dim { codes += ";2" }
        if style.inverse { codes += ";7" }
        if let color = style.foreground { codes += ";3\(color.rawValue)" }
        return escape + codes + "m"
    }
}
