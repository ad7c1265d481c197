import ShipManifest
import Testing

@Suite("Procfile parsing")
struct ProcfileTests {
    @Test func parsesEntriesCommentsBlankLinesAndCRLF() {
        let parsed = Procfile.parse(
            "# The app\r\nweb: bundle exec puma -p $PORT\r\n\r\n  worker:   bin/worker --queue default  \r\n# release\nrelease: bin/rails db:migrate\nclock:python3 clock.py\n"
        )
        #expect(parsed.failures == [])
        #expect(
            parsed.entries == [
                Procfile.Entry(name: "web", command: "bundle exec puma -p $PORT", line: 2),
                Procfile.Entry(name: "worker", command: "bin/worker --queue default", line: 4),
                Procfile.Entry(name: "release", command: "bin/rails db:migrate", line: 6),
                Procfile.Entry(name: "clock", command: "python3 clock.py", line: 7),
            ])
    }

    @Test func aColonInTheCommandIsPartOfIt() {
        let parsed = Procfile.parse("web: python3 -c 'print(\"a:b\")'")
        #expect(parsed.entries.first?.command == "python3 -c 'print(\"a:b\")'")
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
            name: "duplicate type", text: "web: a\nworker: b\nweb: c", line: 3,
            message: "duplicate process type 'web' (also on line 1)"),
        Bad(name: "no colon", text: "web a", line: 1, message: "expected 'type: command', found 'web a'"),
        Bad(name: "bad type name", text: "\nmy web: a", line: 2, message: "invalid process type 'my web'"),
        Bad(
            name: "empty command", text: "web:   \r\n", line: 1, message: "process type 'web' has no command"),
    ]

    @Test(arguments: bad) func rejects(_ example: Bad) throws {
        let parsed = Procfile.parse(example.text)
        let failure = try #require(parsed.failures.first)
        #expect(parsed.failures.count == 1)
        #expect(failure.line == example.line)
        #expect(failure.message.hasPrefix(example.message), "\(failure.message)")
    }

    @Test func theWrittenManifestLoadsWithForemanPortsAndReleaseAsPrelaunch() throws {
        let entries = Procfile.parse(
            "release: echo \"migrated\"\nweb: python3 -m http.server $PORT\nworker: sh -c 'while true; do sleep 1; done'"
        ).entries
        for style in [Procfile.Style.manifest, .foreman] {
            let text = Procfile.manifest(entries, style: style, envFile: ".env")
            let result = ManifestLoader.load(
                text: text, options: .init(envFiles: { _ in .text("A=1") }))
            let manifest = try #require(result.manifest, "\(result.diagnostics)\n\(text)")
            #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
            #expect(manifest.prelaunch.map(\.name) == ["release"])
            #expect(manifest.prelaunch.first?.arguments == ["-c", "echo \"migrated\""])
            #expect(manifest.settings.envFiles == [".env"])
            #expect(manifest.settings.environment == ["A": "1"])
            let web = try #require(manifest.vessels.first { $0.name == "web" })
            let worker = try #require(manifest.vessels.first { $0.name == "worker" })
            #expect(web.group == "web" && worker.group == "workers")
            #expect(web.command == "/bin/sh" && web.arguments == ["-c", "python3 -m http.server $PORT"])
            #expect(worker.environment["PORT"] == "5200")
            switch style {
            case .manifest:
                #expect(web.bind?.port == 5100)
                #expect(web.routes.map(\.bind) == ["http"])
                #expect(manifest.settings.listeners.map(\.name) == ["http"])
                #expect(text.contains("# healthcheck = \"/\""))
                #expect(!worker.critical)
            case .foreman:
                #expect(web.bind == nil && web.environment["PORT"] == "5100")
                #expect(manifest.settings.listeners.isEmpty)
                #expect(worker.critical)
            }
        }
    }

    @Test func withoutAWebEntryThereIsNoListener() throws {
        let entries = Procfile.parse("worker: bin/work").entries
        let text = Procfile.manifest(entries, style: .manifest, envFile: nil)
        let manifest = try #require(ManifestLoader.load(text: text).manifest)
        #expect(manifest.settings.listeners.isEmpty)
        #expect(manifest.vessels.map(\.name) == ["worker"])
        #expect(!text.contains("env_file"))
    }
}
