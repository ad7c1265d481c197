import MothershipTestSupport
import ShipManifest
import Testing

func load(_ toml: String, environment: [String: String] = [:], strict: Bool = false) -> ManifestLoader.Result
{
    ManifestLoader.load(
        text: toml, environment: environment,
        options: .init(strictEnvironment: strict, defaultName: "app-dir"))
}

func mustLoad(
    _ toml: String, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation
) throws -> Manifest {
    let result = load(toml, environment: environment)
    let errors = result.diagnostics.errors.map(\.description).joined(separator: "\n")
    return try #require(result.manifest, "unexpected errors:\n\(errors)", sourceLocation: sourceLocation)
}

@Suite("Warnings: reported, never fatal")
struct WarningTests {
    @Test func proxyProtocolWithoutTrustedProxiesWarns() throws {
        let result = load("[mothership.bind]\nlb = { addr = \"0.0.0.0:8081\", proxy_protocol = true }\n")
        #expect(result.manifest != nil)
        let warning = try #require(result.diagnostics.warnings.first)
        #expect(warning.path.description == "mothership.bind.lb.proxy_protocol")
        #expect(warning.message.hasPrefix("PROXY protocol is auto-detected without trusted_proxies"))
        #expect(warning.position?.line == 2)
    }

    @Test func proxyProtocolWithTrustedProxiesDoesNotWarn() {
        let result = load(
            "[mothership.bind]\nlb = { addr = \"8081\", proxy_protocol = true, trusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"] }\n"
        )
        #expect(result.diagnostics.isEmpty)
        #expect(
            result.manifest?.settings.listeners.first?.trustedProxies.map(\.description) == [
                "10.0.0.0/8", "fd00:0:0:0:0:0:0:0/8",
            ])
    }

    @Test func undefinedVariableIsAWarningForClearanceAndAnErrorForRun() throws {
        let toml = "[[mothership.uplinks]]\nname = \"db\"\nurl = \"$DATABASE_URL\"\n"
        let clearance = load(toml)
        #expect(clearance.manifest != nil)
        #expect(
            clearance.diagnostics.map(\.description) == [
                "warning: mothership.uplinks[0].url: environment variable $DATABASE_URL is not set"
            ])
        let run = load(toml, strict: true)
        #expect(run.manifest == nil)
        #expect(
            run.diagnostics.map(\.description) == [
                "error: mothership.uplinks[0].url: environment variable $DATABASE_URL is not set"
            ])
        #expect(
            load(toml, environment: ["DATABASE_URL": "postgres://db:5432/app"], strict: true).diagnostics
                .isEmpty)
    }

    @Test func undefinedElectionURLVariable() {
        let toml =
            "[mothership.flagship]\nenabled = true\nelection = \"postgres\"\nelection_url = \"${PG_URL}\"\n"
        #expect(
            load(toml).diagnostics.map(\.description) == [
                "warning: mothership.flagship.election_url: environment variable $PG_URL is not set"
            ])
        #expect(load(toml, strict: true).manifest == nil)
    }

    @Test func unsetStaticFlagshipVariableIsNotAProblem() throws {
        let manifest = try mustLoad(
            "[mothership.flagship]\nenabled = true\nstatic_flagship = \"$MS_FLAGSHIP\"\n")
        guard case .fixed(.value(let text))? = manifest.settings.flagship?.election else {
            Issue.record("expected a static election")
            return
        }
        #expect(text == "$MS_FLAGSHIP")
    }

    @Test func routesWithoutABindWarn() throws {
        let result = load(
            "[mothership.bind]\nhttp = \"8080\"\n[[fleet.web]]\nname = \"app\"\ncommand = \"rails\"\nroutes = [{ bind = \"http\", pattern = \"/.*\", ua_filter = \"browser\" }]\n"
        )
        #expect(result.manifest != nil)
        #expect(
            result.diagnostics.map(\.description) == [
                "warning: fleet.web[0].routes: ship 'app' has routes but no bind: requests routed to it will be answered 502 until it has one"
            ])
    }
}

@Suite("Templates")
struct TemplateTests {
    static let toml = """
        [base.ship]
        comment = "shared by every ship"
        env = { RAILS_ENV = "production", LOG = "info" }
        critical = false
        tags = ["ruby"]
        command = "bundle"
        stop_timeout = "30s"

        [base.bay]
        tags = ["realtime"]
        config = { region = "eu" }

        [base.module]
        phase = "response"
        tags = ["security"]
        config = { mode = "strict" }

        [[fleet.web]]
        name = "app"
        args = ["exec", "puma"]
        env = { LOG = "debug" }
        tags = ["web", "ruby"]

        [[fleet.workers]]
        name = "sidekiq"
        command = "sidekiq"
        critical = true

        [[bays.websocket]]
        name = "cable"
        command = "./cable"
        config = { region = "us", port = 7000, debug = true, ratio = 1.50 }

        [[modules]]
        name = "stamp"
        wasm = "stamp.wasm"
        tags = ["edge"]
        config = { header = "x-stamp" }
        """

    @Test func ownValuesWinTagsConcatenateEnvMerges() throws {
        let manifest = try mustLoad(Self.toml)
        let app = try #require(manifest.vessel(named: "app"))
        #expect(app.command == "bundle")
        #expect(app.arguments == ["exec", "puma"])
        #expect(app.environment == ["RAILS_ENV": "production", "LOG": "debug"])
        #expect(app.tags == ["ruby", "web"])
        #expect(app.critical == false)
        #expect(app.stopTimeout == .seconds(30))
        let sidekiq = try #require(manifest.vessel(named: "sidekiq"))
        #expect(sidekiq.command == "sidekiq")
        #expect(sidekiq.critical == true)
        #expect(sidekiq.tags == ["ruby"])
    }

    @Test func baysAndModulesHaveTheirOwnTemplates() throws {
        let manifest = try mustLoad(Self.toml)
        let cable = try #require(manifest.vessel(named: "cable"))
        #expect(cable.kind == .bay)
        #expect(cable.group == "websocket")
        #expect(cable.tags == ["realtime"])
        #expect(cable.critical == true, "base.ship does not apply to bays")
        // Config values are strings, numbers and booleans in their TOML spelling.
        #expect(cable.config == ["region": "us", "port": "7000", "debug": "true", "ratio": "1.50"])
        let stamp = try #require(manifest.modules.first)
        #expect(stamp.phase == .response)
        #expect(stamp.tags == ["security", "edge"])
        #expect(stamp.config == ["mode": "strict", "header": "x-stamp"])
    }

    @Test func permessageDeflateIsOnForBaysUnlessTurnedOffHereOrInTheTemplate() throws {
        let manifest = try mustLoad(
            """
            [[bays.websocket]]
            name = "cable"
            command = "./cable"

            [[bays.websocket]]
            name = "plain"
            command = "./plain"
            permessage_deflate = false
            """)
        #expect(try #require(manifest.vessel(named: "cable")).permessageDeflate)
        #expect(try #require(manifest.vessel(named: "plain")).permessageDeflate == false)
        let templated = try mustLoad(
            """
            [base.bay]
            permessage_deflate = false

            [[bays.websocket]]
            name = "cable"
            command = "./cable"

            [[bays.websocket]]
            name = "squeezed"
            command = "./squeezed"
            permessage_deflate = true
            """)
        #expect(try #require(templated.vessel(named: "cable")).permessageDeflate == false)
        #expect(try #require(templated.vessel(named: "squeezed")).permessageDeflate)
    }

    @Test func defaultsWithoutTemplates() throws {
        let manifest = try mustLoad("[[fleet.web]]\nname = \"app\"\ncommand = \"ruby\"\n")
        let app = try #require(manifest.vessels.first)
        #expect(app.critical)
        #expect(!app.oneshot)
        #expect(app.startTimeout == .seconds(60))
        #expect(app.stopTimeout == .seconds(10))
        #expect(app.stopSignal == .term)
        #expect(app.manifestPath.description == "fleet.web[0]")
        #expect(manifest.settings.name == "app-dir")
    }
}

@Suite("Declaration order survives TOMLKit's sorted keys")
struct OrderTests {
    static let toml = """
        [mothership.bind]
        web = "127.0.0.1:8080"
        api = "127.0.0.1:8081"
        admin = "127.0.0.1:8082"

        [[fleet.zeta]]
        name = "z1"
        command = "x"
        bind = "3001"
        routes = ["web:/z/.*", "api:/z"]

        [[bays.ws]]
        name = "b1"
        command = "x"
        routes = [{ bind = "web", pattern = "/cable" }]

        [[fleet.alpha]]
        name = "a1"
        command = "x"
        bind = "3002"
        routes = [{ bind = "web", pattern = "/.*" }]

        [[fleet.zeta]]
        name = "z2"
        command = "x"
        bind = "3003"
        routes = [{ bind = "web", pattern = "/z2" }]

        [fleet.zeta.env]
        LATE = "yes"
        """

    @Test func vesselsKeepManifestOrderAcrossGroupsAndKinds() throws {
        let manifest = try mustLoad(Self.toml)
        #expect(manifest.vessels.map(\.name) == ["z1", "b1", "a1", "z2"])
        #expect(
            manifest.vessel(named: "z2")?.environment == ["LATE": "yes"],
            "[fleet.zeta.env] belongs to the last zeta element")
    }

    @Test func listenersKeepManifestOrder() throws {
        let manifest = try mustLoad(Self.toml)
        #expect(manifest.settings.listeners.map(\.name) == ["web", "api", "admin"])
    }

    @Test func routeTableIsInDeclarationOrder() throws {
        let manifest = try mustLoad(Self.toml)
        let table = manifest.routes(for: "web").map { "\($0.vessel.name) \($0.route.pattern)" }
        #expect(table == ["z1 /z/.*", "b1 /cable", "a1 /.*", "z2 /z2"])
        #expect(manifest.routes(for: "api").map(\.vessel.name) == ["z1"])
        #expect(manifest.routes(for: "admin").isEmpty)
    }
}

@Suite("Tag selection")
struct TagSelectionTests {
    static let toml = """
        [[fleet.web]]
        name = "app"
        command = "x"
        tags = ["web", "ruby"]
        [[fleet.workers]]
        name = "jobs"
        command = "x"
        tags = ["workers"]
        [[fleet.workers]]
        name = "untagged"
        command = "x"
        """

    @Test(arguments: [
        (TagSelection.all, ["app", "jobs", "untagged"]),
        (.only(["web"]), ["app"]),
        (.only(["workers", "ruby"]), ["app", "jobs"]),
        (.except(["workers"]), ["app", "untagged"]),
        (.except(["nothing"]), ["app", "jobs", "untagged"]),
    ])
    func selectsByAnyListedTag(selection: TagSelection, expected: [String]) throws {
        let result = ManifestLoader.load(text: Self.toml, options: .init(selection: selection))
        let manifest = try #require(result.manifest)
        #expect(manifest.vessels.map(\.name) == expected)
        #expect(Set(manifest.filteredOut).union(expected) == ["app", "jobs", "untagged"])
    }

    @Test func parsesCommaSeparatedFlags() {
        #expect(TagSelection(only: "web, api,,", except: nil) == .only(["web", "api"]))
        #expect(TagSelection(only: nil, except: "workers") == .except(["workers"]))
        #expect(TagSelection(only: nil, except: nil) == .all)
    }
}

@Suite("Fixtures: the original README and the bundled examples")
struct FixtureTests {
    /// The original README's manifest examples, one document each (split on `# === title` lines).
    static let readmeDocuments: [(title: String, toml: String)] = {
        guard let text = try? Repository.read("Tests/ShipManifestTests/Fixtures/original-readme.toml") else {
            return []
        }
        var documents: [(String, String)] = []
        var title: String?
        var lines: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# === ") {
                if let title { documents.append((title, lines.joined(separator: "\n"))) }
                title = String(line.dropFirst(6))
                lines = []
            } else {
                lines.append(line)
            }
        }
        if let title { documents.append((title, lines.joined(separator: "\n"))) }
        return documents
    }()

    @Test func readmeFixtureHasEveryExample() {
        #expect(Self.readmeDocuments.count >= 20)
    }

    @Test(arguments: readmeDocuments.map(\.title))
    func originalReadmeExamplePassesUnchanged(title: String) throws {
        let toml = try #require(Self.readmeDocuments.first { $0.title == title }?.toml)
        let result = load(toml)
        #expect(
            result.diagnostics.errors.isEmpty,
            "\(title):\n\(result.diagnostics.map(\.description).joined(separator: "\n"))")
    }

    @Test(arguments: ["Examples/quickstart/ship-manifest.toml", "Examples/full/ship-manifest.toml"])
    func bundledExamplePassesWithoutErrors(path: String) throws {
        let result = load(try Repository.read(path))
        #expect(
            result.diagnostics.errors.isEmpty,
            "\(result.diagnostics.map(\.description).joined(separator: "\n"))")
    }

    @Test func controlSocketIsBesideTheManifestUnlessMovedOrTurnedOff() throws {
        #expect(try mustLoad("[mothership]\nname = \"x\"\n").settings.controlSocket == .besideManifest)
        #expect(
            try mustLoad("[mothership]\ncontrol_socket = \"run/app.sock\"\n").settings.controlSocket
                == .path("run/app.sock"))
        #expect(try mustLoad("[mothership]\ncontrol_socket = false\n").settings.controlSocket == .off)
    }

    @Test func logFilesTakeADirectoryAFormatASizeAndHowManyToKeep() throws {
        let logs = try mustLoad(
            "[mothership.logs]\ndir = \"log\"\nformat = \"json\"\nmax_size = \"1MB\"\nkeep = 3\n"
        )
        .settings.logs
        #expect(logs == LogSettings(directory: "log", format: .json, maxSize: 1_048_576, keep: 3))
        #expect(
            try mustLoad("[mothership.logs]\ndir = \"log\"\n").settings.logs == LogSettings(directory: "log"))
        #expect(try mustLoad("[mothership]\nname = \"x\"\n").settings.logs == nil)
        #expect(ByteSize.parse("100MB") == 104_857_600 && ByteSize.parse("512 KiB") == 524_288)
        #expect(
            ByteSize.parse("4096") == 4096 && ByteSize.parse("1.5G") == 1_610_612_736
                && ByteSize.parse("MB") == nil)
    }

    @Test func readsDashboardSettingsWithTheTokenFromTheEnvironment() throws {
        #expect(try mustLoad("[mothership]\nname = \"x\"\n").settings.dashboard == DashboardSettings())
        let loaded = load(
            "[mothership.dashboard]\nactions = true\ntoken = \"$DASH_TOKEN\"\n",
            environment: ["DASH_TOKEN": "0123456789abcdef0123"])
        #expect(
            loaded.manifest?.settings.dashboard
                == DashboardSettings(actions: true, token: "0123456789abcdef0123"))
    }

    @Test func fullExampleUsesEverySection() throws {
        let manifest = try mustLoad(try Repository.read("Examples/full/ship-manifest.toml"))
        let settings = manifest.settings
        #expect(settings.metricsPort != nil)
        #expect(settings.compression)
        #expect(settings.relayWorkers == 2)
        #expect(settings.corsCache != nil)
        #expect(!settings.environment.isEmpty)
        #expect(settings.listeners.count >= 4)
        #expect(settings.listeners.contains { $0.tls != nil })
        #expect(settings.listeners.contains { $0.proxyProtocol && !$0.trustedProxies.isEmpty })
        #expect(settings.listeners.contains { $0.address.isUnix })
        #expect(settings.staticDirectories.count >= 2)
        #expect(settings.rateLimiting?.globalRequestsPerSecond != nil)
        #expect(settings.rateLimiting?.perIPRequestsPerMinute != nil)
        #expect(settings.flagship != nil)
        #expect(settings.uplinks.count >= 3)
        #expect(manifest.prelaunch.count >= 2)
        #expect(!manifest.bays.isEmpty)
        #expect(
            manifest.modules.contains { $0.phase == .request }
                && manifest.modules.contains { $0.phase == .response })
        #expect(manifest.vessels.contains { $0.oneshot })
        #expect(manifest.vessels.contains { !$0.critical })
        #expect(manifest.vessels.flatMap(\.routes).contains { $0.stripPrefix != nil })
        #expect(manifest.vessels.flatMap(\.routes).contains { $0.userAgentFilter != nil })
    }
}
