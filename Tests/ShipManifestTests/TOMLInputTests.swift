import ShipManifest
import Testing

/// Manifest texts the fuzzer (Fuzz/, target `manifest`) found the loader mishandling: each is now a
/// syntax error with a position, never an abort or a hang.
@Suite("TOML input the parser underneath cannot take")
struct TOMLInputTests {
    /// toml++ (TOMLKit 0.6.0) asserts on a table header whose name starts with neither a key
    /// character nor a quote, and the release binary aborted (SIGABRT) on `mothership clearance`.
    @Test(arguments: [
        "[[#\n", "[#\n", "[.a]\n", "[\n", "[ =]\n", "[[ .a]]\n", "[\t\u{7F}]\n", "[\r\n", "[é]\n",
        "[mothership]\nname = \"x\"\n[a]\n[[# comment\n", "\u{FEFF}[#\n",
    ])
    func tableHeadersWithoutANameAreSyntaxErrors(text: String) {
        let result = ManifestLoader.load(text: text)
        #expect(result.manifest == nil)
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.message.hasPrefix("invalid TOML: ") == true)
        #expect(result.diagnostics.first?.position != nil)
    }

    /// toml++ asserts on an array element that starts with `}` or a non-ASCII whitespace.
    @Test(arguments: [
        "a = [}]\n", "a = [1, }]\n", "a = [ # comment\n}]\n", "a = [1,\n\n}]\n", "a = {b = [}]}\n",
        "a = [[}]]\n",
        "a = [\u{2028}]\n", "a = [\u{85}]\n",
    ])
    func arrayElementsThatNoValueStartsWithAreSyntaxErrors(text: String) {
        let result = ManifestLoader.load(text: text)
        #expect(result.manifest == nil)
        #expect(result.diagnostics.map(\.message).first?.hasPrefix("invalid TOML: ") == true)
    }

    @Test func arraysStillParse() throws {
        let document = try TOMLDocument(parsing: "a = [\n  1, # c\n  { x = 1 },\n  \"é\", [ ],\n]\n")
        #expect(
            document.root["a"] == .array([.integer(1), .table(["x": .integer(1)]), .string("é"), .array([])]))
    }

    @Test func theHeaderCheckNamesTheLineAndColumn() throws {
        #expect(throws: TOMLDocument.SyntaxError.self) { try TOMLDocument(parsing: "a = 1\n[[ #\n") }
        do {
            _ = try TOMLDocument(parsing: "a = 1\n[[ #\n")
        } catch {
            #expect(error.position == SourcePosition(line: 2, column: 4))
            #expect(error.message.contains("saw '#'"))
        }
    }

    /// A `[` that starts a line inside an array or a multi-line string is no table header.
    @Test func bracketsInsideValuesAreNotHeaders() throws {
        let document = try TOMLDocument(
            parsing: """
                a = [
                [ # a nested array, after a comment
                1], [
                2]]
                b = \"\"\"
                [# not a header
                \"\"\"
                c = '''
                [.a] neither'''
                d = "[# \\" still a string"

                [t]
                e = 1
                """)
        #expect(document.root["a"] == .array([.array([.integer(1)]), .array([.integer(2)])]))
        #expect(document.root["b"] == .string("[# not a header\n"))
        #expect(document.root["c"] == .string("[.a] neither"))
        #expect(document.root["t"] == .table(["e": .integer(1)]))
    }

    /// TOMLKit passes toml++ a C string: everything after a NUL went unread (and unchecked) while the
    /// SourceMap scanned it, and its scanner could loop forever on such text.
    @Test func aNULByteIsASyntaxError() {
        let result = ManifestLoader.load(text: "[mothership]\nname = \"a\"\0\n[[fleet.web]]\nname = 1\n")
        #expect(result.manifest == nil)
        #expect(result.diagnostics.map(\.message) == ["invalid TOML: a NUL byte is not allowed in TOML"])
        #expect(result.diagnostics.first?.position == SourcePosition(line: 2, column: 11))
    }

    /// The SourceMap's scanner stops on text that is not TOML instead of looping on it.
    @Test(.timeLimit(.minutes(1)))
    func theSourceMapScannerAlwaysMovesOn() {
        for text in ["x = [{ a = 1 ]", "x = [{ ~ ]]", "x = {]", "x = [}"] {
            let map = SourceMap(scanning: text)
            #expect(map.position(of: "x") != nil)
        }
    }
}
