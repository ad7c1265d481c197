import Testing

@testable import Payloads

/// What the fuzzer (Fuzz/, target `payload-json`) found in the JSON a module returns.
@Suite("Payload JSON from modules")
struct PayloadJSONTests {
    /// `\u` takes exactly four hex digits; a sign was taken as one (`UInt32("+041", radix: 16)`).
    @Test(arguments: [#"{"a":"\u+041"}"#, #"{"a":"\u-041"}"#, #"{"a":"\u 041"}"#, #"{"a":"\u004"}"#])
    func unicodeEscapesNeedFourHexDigits(text: String) {
        #expect(throws: PayloadJSON.SyntaxError.self) { try PayloadJSON.flatObject(Array(text.utf8)) }
    }

    @Test func unicodeEscapesStillRead() throws {
        let members = try PayloadJSON.flatObject(Array(#"{"a":"\u0041\u00e9\uD83D\uDE00"}"#.utf8))
        #expect(members.map(\.0) == ["a"])
        #expect(members.map(\.1) == ["Aé😀"])
    }
}
