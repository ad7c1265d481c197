import Foundation
import MothershipTestSupport
import Testing

/// The documentation cannot rot: every ```toml block of README.md is a complete manifest that
/// `mothership clearance` grants (warnings, which depend on this machine, are allowed), and every
/// source file docs/ARCHITECTURE.md names exists.
@Suite("README manifests and ARCHITECTURE file names", .timeLimit(.minutes(2)))
struct ReadmeManifestTests {
    /// One ```toml block: where it starts in the README, and its text.
    struct Snippet: Sendable, CustomTestStringConvertible {
        var line: Int
        var text: String
        var testDescription: String { "README.md:\(line)" }
    }

    /// A block is skipped only when the line before its fence is exactly this marker (keep it rare:
    /// a snippet a user copies should run).
    static let notAManifest = "<!-- not-a-manifest -->"

    static func snippets(in markdown: String) -> [Snippet] {
        var found: [Snippet] = []
        var current: (line: Int, lines: [Substring])?
        var previous: Substring = ""
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            if var open = current {
                if line.trimmingCharacters(in: .whitespaces) == "```" {
                    found.append(Snippet(line: open.line, text: open.lines.joined(separator: "\n") + "\n"))
                    current = nil
                } else {
                    open.lines.append(line)
                    current = open
                }
            } else if line.trimmingCharacters(in: .whitespaces) == "```toml",
                previous.trimmingCharacters(in: .whitespaces) != notAManifest
            {
                current = (index + 1, [])
            }
            if !line.trimmingCharacters(in: .whitespaces).isEmpty { previous = line }
        }
        return found
    }

    static let readme: [Snippet] = snippets(in: (try? Repository.read("README.md")) ?? "")

    @Test func theReadmeHasItsManifests() {
        // The reference sections each show one; fewer means the extraction broke.
        #expect(Self.readme.count >= 12, "found \(Self.readme.count) toml blocks in README.md")
    }

    @Test(arguments: readme)
    func everyReadmeManifestPassesClearance(_ snippet: Snippet) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("ship-manifest.toml", snippet.text)
        let outcome = try await BinaryRunner.run(["clearance"], in: directory.path)
        #expect(outcome.status == 0, "README.md:\(snippet.line):\n\(snippet.text)\n\(outcome.output)")
        #expect(outcome.standardOutput.contains("clearance granted: "), "\(outcome.output)")
        #expect(!outcome.output.contains("error:"), "README.md:\(snippet.line): \(outcome.output)")
    }

    @Test func theExtractionSkipsOnlyMarkedBlocks() {
        let markdown = """
            ```toml
            [mothership]
            ```

            \(Self.notAManifest)
            ```toml
            partial = true
            ```
            ```sh
            echo not toml
            ```
            """
        let found = Self.snippets(in: markdown)
        #expect(found.count == 1)
        #expect(found.first?.line == 1)
        #expect(found.first?.text == "[mothership]\n")
    }

    /// `Relay/Core/Exchange.swift`, `Core/ShipLink.swift` or `RouteTable.swift`: some file under
    /// Sources/ ends with it (or it is a path from the package root, such as `Package.swift`).
    @Test func everyFileArchitectureNamesExists() throws {
        let text = try Repository.read("docs/ARCHITECTURE.md")
        let sources =
            FileManager.default.enumerator(atPath: Repository.path("Sources"))?
            .compactMap { $0 as? String } ?? []
        var named = 0
        var missing: [String] = []
        for piece in text.split(separator: "`").enumerated() where piece.offset % 2 == 1 {
            let name = String(piece.element)
            guard name.hasSuffix(".swift") || name.hasSuffix(".c"), !name.contains(" ") else { continue }
            named += 1
            if FileManager.default.fileExists(atPath: Repository.path(name)) { continue }  // Package.swift, Tests/…
            if !sources.contains(where: { $0 == name || $0.hasSuffix("/" + name) }) { missing.append(name) }
        }
        #expect(named >= 40, "found \(named) file names in docs/ARCHITECTURE.md")
        #expect(missing.isEmpty, "docs/ARCHITECTURE.md names files that do not exist: \(missing)")
    }
}
