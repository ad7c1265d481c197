import ProcessControl
import Testing

@Suite("Splitting output into lines")
struct LineSplitterTests {
    /// Feeds `chunks` and returns every line, the unterminated tail included.
    private func split(_ chunks: [[UInt8]], maximumLength: Int = 8) -> [String] {
        var splitter = LineSplitter(maximumLength: maximumLength)
        var lines: [String] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { splitter.append($0) { lines.append($0) } }
        }
        splitter.finish { lines.append($0) }
        return lines
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func joinsLinesAcrossChunks() {
        #expect(split([bytes("ab"), bytes("c\nd"), bytes("e\n")]) == ["abc", "de"])
    }

    @Test func dropsOneCarriageReturnBeforeNewline() {
        #expect(split([bytes("a\r\nb\r\r\n\r\n")]) == ["a", "b\r", ""])
        #expect(split([bytes("a\r"), bytes("\n")]) == ["a"])
    }

    @Test func keepsEmptyLinesAndDropsNothingAtCleanEnd() {
        #expect(split([bytes("\n\nx\n")]) == ["", "", "x"])
        #expect(split([]) == [])
    }

    @Test func splitsLongLinesIntoMaximumSizedPieces() {
        #expect(split([bytes("0123456789abcdefXY\n")]) == ["01234567", "89abcdef", "XY"])
        #expect(split([bytes("0123"), bytes("4567"), bytes("89")]) == ["01234567", "89"])
        #expect(split([bytes("01234567\n")]) == ["01234567"])
        #expect(split([bytes("01234567\r\n")]) == ["01234567"])
    }

    @Test func doesNotCutAUTF8SequenceWhenSplitting() {
        // "é" is two bytes; a cut at 8 would fall inside the one that starts at byte 7.
        let lines = split([bytes("abcdefgé12\n")])
        #expect(lines == ["abcdefg", "é12"])
    }

    @Test func repairsInvalidUTF8() {
        #expect(split([[0x61, 0xFF, 0x62, 0x0A]]) == ["a\u{FFFD}b"])
    }
}
