import Dashboard
import Testing

@Suite("Dashboard key decoder")
struct KeyDecoderTests {
    func keys(_ text: String) -> [DashboardKey] {
        var decoder = KeyDecoder()
        return decoder.feed(Array(text.utf8))
    }

    @Test func decodesPlainKeysAndEscapeSequences() {
        #expect(keys("\tjkqr") == [.tab, .character("j"), .character("k"), .character("q"), .character("r")])
        #expect(keys("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D") == [.up, .down, .right, .left])
        #expect(keys("\u{1B}OA\u{1B}OB\u{1B}OH\u{1B}OF") == [.up, .down, .home, .end])
        #expect(keys("\u{1B}[5~\u{1B}[6~\u{1B}[H\u{1B}[F") == [.pageUp, .pageDown, .home, .end])
        #expect(keys("\u{1B}[1~\u{1B}[4~\u{1B}[7~\u{1B}[8~") == [.home, .end, .home, .end])
        #expect(keys("\u{1B}[Z") == [.backTab])
        #expect(keys("\u{1B}[1;5A\u{1B}[1;2B") == [.up, .down], "modifiers are ignored")
        #expect(keys("\r\u{3}") == [.enter, .interrupt])
        #expect(keys("\u{1B}[3~\u{1B}[200~x") == [.character("x")], "unknown sequences are skipped whole")
        #expect(keys("é→") == [.character("é"), .character("→")])
        #expect(keys("\u{1B}x") == [.escape, .character("x")])
    }

    @Test func sequencesSplitAcrossReadsWaitForTheirRest() {
        var decoder = KeyDecoder()
        #expect(decoder.feed([0x1B]) == [])
        #expect(decoder.hasPending)
        #expect(decoder.feed(Array("[".utf8)) == [])
        #expect(decoder.feed(Array("5".utf8)) == [])
        #expect(decoder.feed(Array("~j\u{1B}[".utf8)) == [.pageUp, .character("j")])
        #expect(decoder.feed(Array("Z".utf8)) == [.backTab])
        #expect(!decoder.hasPending)
        let snowman = Array("☃".utf8)
        #expect(decoder.feed(snowman.prefix(2)) == [])
        #expect(decoder.feed(snowman.suffix(1)) == [.character("☃")])
    }

    @Test func aLoneEscapeIsTheEscapeKeyOnlyWhenFlushed() {
        var decoder = KeyDecoder()
        #expect(decoder.feed([0x1B]) == [])
        #expect(decoder.flush() == [.escape])
        #expect(!decoder.hasPending)
        #expect(decoder.flush() == [])
    }
}
