import ShipManifest
import Testing

@Suite("Dotenv parsing")
struct DotenvTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var expected: [String: String]
        var environment: [String: String] = [:]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "plain", text: "KEY=value", expected: ["KEY": "value"]),
        Case(
            name: "export prefix", text: "export KEY=value\nexport\tTAB=1",
            expected: ["KEY": "value", "TAB": "1"]),
        Case(name: "a key named export", text: "export=yes", expected: ["export": "yes"]),
        Case(
            name: "whole-line comments and blank lines",
            text: "# comment\n\n   \n  # indented comment\nKEY=value\n", expected: ["KEY": "value"]),
        Case(
            name: "comment after an unquoted value", text: "KEY=value # a comment\nB=x\t# tab comment",
            expected: ["KEY": "value", "B": "x"]),
        Case(
            name: "a # inside an unquoted value", text: "URL=http://host/#anchor",
            expected: ["URL": "http://host/#anchor"]),
        Case(
            name: "unquoted values are trimmed", text: "KEY =   spaced value   ",
            expected: ["KEY": "spaced value"]),
        Case(
            name: "empty value", text: "EMPTY=\nALSO_EMPTY=   \nQUOTED=\"\"\nSINGLE=''",
            expected: [
                "EMPTY": "", "ALSO_EMPTY": "", "QUOTED": "", "SINGLE": "",
            ]),
        Case(
            name: "single quotes are literal", text: #"KEY='a \n ${HOME} "b" # not a comment'"#,
            expected: ["KEY": #"a \n ${HOME} "b" # not a comment"#], environment: ["HOME": "/root"]),
        Case(
            name: "double-quote escapes", text: #"KEY="line1\nline2\ttab \"q\" back\\slash \$HOME""#,
            expected: ["KEY": "line1\nline2\ttab \"q\" back\\slash $HOME"]),
        Case(name: "unknown escapes are kept", text: #"KEY="a\qb""#, expected: ["KEY": #"a\qb"#]),
        Case(
            name: "${VAR} from earlier in the file wins over the environment",
            text: "HOST=db.local\nURL=\"postgres://${HOST}/${NAME}\"",
            expected: [
                "HOST": "db.local", "URL": "postgres://db.local/app",
            ], environment: ["HOST": "elsewhere", "NAME": "app"]),
        Case(
            name: "${VAR} undefined is empty", text: #"KEY="[${MISSING}]""#, expected: ["KEY": "[]"]),
        Case(
            name: "${VAR} is not expanded in unquoted or single-quoted values",
            text: "A=${X}\nB='${X}'", expected: ["A": "${X}", "B": "${X}"], environment: ["X": "x"]),
        Case(
            name: "comment after a quoted value", text: "KEY=\"a # b\" # comment\nS='v'   # c",
            expected: ["KEY": "a # b", "S": "v"]),
        Case(
            name: "CRLF line ends", text: "A=1\r\nB=\"two\"\r\n# c\r\n\r\nC=3\r\n",
            expected: [
                "A": "1", "B": "two", "C": "3",
            ]),
        Case(name: "a later definition wins", text: "A=1\nA=2", expected: ["A": "2"]),
        Case(name: "equals signs in the value", text: "A=b=c==", expected: ["A": "b=c=="]),
    ]

    @Test(arguments: cases) func parses(_ example: Case) {
        let parsed = Dotenv.parse(example.text, environment: example.environment)
        #expect(parsed.failures == [])
        #expect(parsed.values == example.expected)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var line: Int
        var message: String
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(
            name: "no equals sign", text: "A=1\nJUSTAKEY", line: 2,
            message: "expected KEY=VALUE, found 'JUSTAKEY'"),
        Bad(name: "key with a space", text: "MY KEY=1", line: 1, message: "invalid variable name 'MY KEY'"),
        Bad(
            name: "key starting with a digit", text: "\n1A=1", line: 2, message: "invalid variable name '1A'"),
        Bad(name: "empty key", text: "=value", line: 1, message: "invalid variable name ''"),
        Bad(
            name: "unterminated double quote", text: "A=\"open", line: 1, message: "unterminated double quote"
        ),
        Bad(
            name: "unterminated single quote", text: "# c\r\nA='open\r\n", line: 2,
            message: "unterminated single quote"),
        Bad(
            name: "text after the closing quote", text: "A=\"x\" y", line: 1,
            message: "unexpected text 'y' after the closing quote"),
    ]

    @Test(arguments: bad) func rejects(_ example: Bad) throws {
        let parsed = Dotenv.parse(example.text)
        let failure = try #require(parsed.failures.first)
        #expect(parsed.failures.count == 1)
        #expect(failure.line == example.line)
        #expect(failure.message.hasPrefix(example.message), "\(failure.message)")
    }

    @Test func goodLinesAroundABadOneAreKeptWithTheirLines() {
        let parsed = Dotenv.parse("A=1\nnonsense\nB=2")
        #expect(
            parsed.entries == [
                Dotenv.Entry(key: "A", value: "1", line: 1), Dotenv.Entry(key: "B", value: "2", line: 3),
            ])
        #expect(parsed.failures.map(\.line) == [2])
    }
}
