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
