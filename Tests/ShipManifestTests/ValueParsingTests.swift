import ShipManifest
import Testing

@Suite("Bind addresses")
struct BindAddressTests {
    @Test(arguments: [
        ("tcp://127.0.0.1:3000", BindAddress.tcp(host: "127.0.0.1", port: 3000)),
        ("0.0.0.0:8080", .tcp(host: "0.0.0.0", port: 8080)),
        ("3000", .tcp(host: "127.0.0.1", port: 3000)),
        ("localhost:80", .tcp(host: "localhost", port: 80)),
        ("[::1]:8080", .tcp(host: "::1", port: 8080)),
        ("tcp://[::]:443", .tcp(host: "::", port: 443)),
        ("unix:///tmp/app.sock", .unix(path: "/tmp/app.sock")),
        ("/run/app.sock", .unix(path: "/run/app.sock")),
        (" 3000 ", .tcp(host: "127.0.0.1", port: 3000)),
    ])
    func parses(text: String, expected: BindAddress) throws {
        #expect(try BindAddress(parsing: text) == expected)
    }

    @Test(arguments: [
        "", "abc", "127.0.0.1:0", "127.0.0.1:65536", "unix://relative.sock", "udp://1.2.3.4:5", "::1:80",
        "[fe80::1:80", "bad host:80", "[1.2.3.4]:80",
    ])
    func rejects(text: String) {
        #expect(throws: BindAddress.ParseError.self) { try BindAddress(parsing: text) }
    }

    @Test func printsAsWritten() throws {
        #expect(try BindAddress(parsing: "[::1]:8080").description == "[::1]:8080")
        #expect(try BindAddress(parsing: "unix:///tmp/a.sock").description == "unix:///tmp/a.sock")
        #expect(try BindAddress(parsing: "3000").description == "127.0.0.1:3000")
    }

    @Test func cidrRangesContainTheirAddresses() throws {
        let range = try #require(CIDRRange(parsing: "10.0.0.0/8"))
        #expect(range.contains(try #require(IPAddress(parsing: "10.200.3.4"))))
        #expect(!range.contains(try #require(IPAddress(parsing: "11.0.0.1"))))
        #expect(
            range.contains(try #require(IPAddress(parsing: "::ffff:10.1.2.3"))), "IPv4-mapped IPv6 matches")
        let v6 = try #require(CIDRRange(parsing: "2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress(parsing: "2001:db8:1::5"))))
        #expect(!v6.contains(try #require(IPAddress(parsing: "2001:db9::5"))))
        let single = try #require(CIDRRange(parsing: "192.168.1.7"))
        #expect(single.prefixLength == 32)
        #expect(CIDRRange(parsing: "300.1.1.1") == nil)
        #expect(CIDRRange(parsing: "::1/129") == nil)
    }
}

@Suite("Routes")
struct RouteTests {
    @Test(arguments: [
        ("/api/.*", "/api/x", true),
        ("/api/.*", "/api/", true),
        ("/api/.*", "/v2/api/x", false),
        ("/api/.*", "/api", false),
        ("/ws", "/ws", true),
        ("/ws", "/ws/x", false),
        ("/.*", "/anything/at/all", true),
        (".*", "/", true),
        ("/users/[0-9]+", "/users/42", true),
        ("/users/[0-9]+", "/users/42/edit", false),
        ("/(a|b)/x", "/b/x", true),
        ("^/exact$", "/exact", true),
        ("/files/.*\\.png", "/files/a/b.png", true),
        ("/files/.*\\.png", "/files/a/b.pngx", false),
    ])
    func patternsMatchTheWholePath(pattern: String, path: String, matches: Bool) throws {
        #expect(try RoutePattern(pattern).matches(path) == matches)
    }

    @Test(arguments: [
        ("/api", "/api/users", "/users"),
        ("/api", "/api", "/"),
        ("/api", "/apiary", "/apiary"),
        ("/api/", "/api/users", "/users"),
        ("/api", "/v2/api/x", "/v2/api/x"),
        ("/", "/x", "/x"),
    ])
    func stripPrefixOnlyAtASegmentBoundary(prefix: String, path: String, forwarded: String) throws {
        let route = Route(bind: "http", pattern: try RoutePattern("/.*"), stripPrefix: prefix)
        #expect(route.forwardedPath(for: Substring(path)) == Substring(forwarded))
    }

    @Test func shorthandAndTableRoutesMean() throws {
        let manifest = try mustLoad(
            """
            [mothership.bind]
            http = "8080"
            ws = "8081"
            [[fleet.web]]
            name = "app"
            command = "x"
            bind = "3000"
            routes = ["http:/api/.*", "ws:/cable", { bind = "http", pattern = "/.*", strip_prefix = "/app", ua_filter = "~MyAgent/[0-9]+" }]
            """)
        let routes = try #require(manifest.vessels.first?.routes)
        #expect(routes.map(\.bind) == ["http", "ws", "http"])
        #expect(routes.map(\.pattern.source) == ["/api/.*", "/cable", "/.*"])
        #expect(routes[2].stripPrefix == "/app")
        #expect(routes[2].userAgentFilter?.description == "~MyAgent/[0-9]+")
        #expect(routes[2].userAgentFilter?.accepts(userAgent: "curl MyAgent/12") == true)
        #expect(routes[2].userAgentFilter?.accepts(userAgent: "MyAgent/x") == false)
    }
}

@Suite("User-Agent classes")
struct UserAgentTests {
    static let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    static let chrome =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    static let safari =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
    static let chromeIOS =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
    static let firefoxIOS =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15"

    @Test(arguments: [
        (firefox, UserAgentKind.firefox),
        (chrome, .chromium),
        (safari, .safari),
        (chromeIOS, .chromium),
        (firefoxIOS, .firefox),
        (
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0",
            .chromium
        ),
        ("Opera/9.80 (Macintosh) Presto/2.12 Version/12.16 Safari/534", .chromium),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
            .llm
        ),
        ("Claude-User/1.0", .llm),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot",
            .llm
        ),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0", .llm),
        ("OAI-SearchBot/1.0; +https://openai.com/searchbot", .llm),
        ("Mozilla/5.0 (compatible; PerplexityBot/1.0)", .llm),
        ("Perplexity-User/1.0", .llm),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", .bot),
        ("Mozilla/5.0 (compatible; Yahoo! Slurp)", .bot),
        ("curl/8.5.0", .bot),
        ("Wget/1.21.3", .bot),
        ("HTTPie/3.2.2", .bot),
        ("python-requests/2.32.3", .bot),
        ("Go-http-client/1.1", .bot),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            .bot
        ),
        ("", .bot),
        ("SomethingElse/1.0", .other),
    ])
    func classifies(userAgent: String, kind: UserAgentKind) {
        #expect(UserAgentKind(userAgent: userAgent) == kind)
    }

    @Test func absentUserAgentIsABot() {
        #expect(UserAgentKind(userAgent: nil) == .bot)
    }

    @Test func filtersAcceptTheirClasses() throws {
        let browser = try UserAgentFilter(parsing: "browser")
        #expect(browser.accepts(userAgent: Self.firefox))
        #expect(browser.accepts(userAgent: Self.safari))
        #expect(!browser.accepts(userAgent: "curl/8.0"))
        #expect(try UserAgentFilter(parsing: "llm").accepts(userAgent: "Claude-User/1.0"))
        #expect(try UserAgentFilter(parsing: "bot").accepts(userAgent: nil))
        #expect(try !UserAgentFilter(parsing: "safari").accepts(userAgent: Self.chrome))
    }
}

@Suite("Durations and environment expansion")
struct DurationAndEnvironmentTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("5s", .seconds(5)), ("2m", .seconds(120)),
        ("1h", .seconds(3600)),
        ("1.5s", .milliseconds(1500)), ("30", .seconds(30)), (" 10s ", .seconds(10)),
    ])
    func parsesDurations(text: String, expected: Duration) throws {
        #expect(try DurationText.parse(text) == expected)
    }

    @Test(arguments: ["", "s", "5 parsecs", "-5s", "5x", "1e3s"])
    func rejectsDurations(text: String) {
        #expect(throws: DurationText.ParseError.self) { try DurationText.parse(text) }
    }

    @Test func bareIntegersAreSecondsWhereTheOriginalUsedThem() throws {
        let manifest = try mustLoad(
            "[mothership]\ncors_cache = { default_ttl = 60 }\n[mothership.flagship]\nenabled = true\nstatic_flagship = \"1\"\nprelaunch_timeout = 120\nelection_timeout = \"45s\"\n"
        )
        #expect(manifest.settings.corsCache?.defaultTTL == .seconds(60))
        #expect(manifest.settings.flagship?.prelaunchTimeout == .seconds(120))
        #expect(manifest.settings.flagship?.electionTimeout == .seconds(45))
    }

    @Test(arguments: [
        ("$HOST:$PORT", "db:5432", [String]()),
        ("${HOST}/x", "db/x", []),
        ("${MISSING:-fallback}", "fallback", []),
        ("${EMPTY:-fallback}", "fallback", []),
        ("${HOST:-fallback}", "db", []),
        ("$MISSING and ${ALSO}", " and ", ["MISSING", "ALSO"]),
        ("price: 5$", "price: 5$", []),
        ("$1", "$1", []),
        ("${not valid}", "${not valid}", []),
    ])
    func expandsVariables(text: String, expected: String, undefined: [String]) {
        let expansion = EnvironmentExpansion(
            expanding: text, environment: ["HOST": "db", "PORT": "5432", "EMPTY": ""])
        #expect(expansion.value == expected)
        #expect(expansion.undefined == undefined)
    }

    @Test func staticFlagshipTruthiness() {
        for text in ["true", "TRUE", "1", "yes", " Yes "] { #expect(StaticFlagship.isTruthy(text)) }
        for text in ["", "false", "0", "no", "y"] { #expect(!StaticFlagship.isTruthy(text)) }
    }
}

@Suite("Uplink targets")
struct UplinkTargetTests {
    @Test(arguments: [
        ("postgres://user:pw@db.internal/app", "db.internal:5432", UplinkTarget.Check.tcpConnect),
        ("postgresql://db:6543/app", "db:6543", .tcpConnect),
        ("mysql://db", "db:3306", .tcpConnect),
        ("redis://cache.internal:6379/0", "cache.internal:6379", .tcpConnect),
        ("memgraph://graph", "graph:7687", .tcpConnect),
        ("neo4j://graph", "graph:7687", .tcpConnect),
        ("tcp://queue:5672", "queue:5672", .tcpConnect),
        ("http://api.internal/health", "api.internal:80", .httpGet(tls: false, path: "/health")),
        ("https://api.example.com", "api.example.com:443", .httpGet(tls: true, path: "/")),
        ("postgres://[::1]:5432/app", "[::1]:5432", .tcpConnect),
    ])
    func parses(url: String, endpoint: String, check: UplinkTarget.Check) throws {
        let target = try UplinkTarget(parsing: url)
        #expect(target.endpoint == endpoint)
        #expect(target.check == check)
    }

    @Test func redactsPasswords() {
        #expect(UplinkTarget.redact("postgres://app:s3cret@db:5432/app") == "postgres://app:***@db:5432/app")
        #expect(UplinkTarget.redact("postgres://app@db/app") == "postgres://app@db/app")
        #expect(UplinkTarget.redact("redis://cache:6379") == "redis://cache:6379")
    }
}

@Suite("Dependency graph")
struct DependencyGraphTests {
    @Test func layersPutDependenciesFirst() {
        let graph = DependencyGraph(
            nodes: ["web", "db", "cache", "worker"],
            dependencies: ["web": ["db", "cache"], "worker": ["web"]])
        #expect(graph.layers() == [["db", "cache"], ["web"], ["worker"]])
        #expect(graph.dependents(of: "web") == ["worker"])
    }

    @Test func reportsEachCycleOnceFromItsEarliestNode() {
        let graph = DependencyGraph(
            nodes: ["a", "b", "c", "d"], dependencies: ["b": ["c"], "c": ["a", "b"], "a": ["b"], "d": ["d"]])
        #expect(graph.cycles() == [["a", "b", "c", "a"], ["b", "c", "b"], ["d", "d"]])
    }
}

@Suite("Source map")
struct SourceMapTests {
    @Test func findsKeysHeadersAndInlineElements() {
        let map = SourceMap(
            scanning: """
                # comment
                [mothership.bind]
                http = "8080"  # trailing
                [[fleet.web]]
                name = "a"
                routes = [
                  "http:/x",
                  { bind = "http", pattern = '/y' },
                ]
                desc = \"\"\"
                multi "line" \"\"\"
                after = 1_000
                """)
        #expect(map.position(of: "mothership.bind.http") == SourcePosition(line: 3, column: 1))
        #expect(map.position(of: "fleet.web[0]") == SourcePosition(line: 4, column: 1))
        #expect(map.position(of: "fleet.web[0].routes[0]") == SourcePosition(line: 7, column: 3))
        #expect(map.position(of: "fleet.web[0].routes[1].pattern") == SourcePosition(line: 8, column: 20))
        #expect(map.position(of: "fleet.web[0].after") == SourcePosition(line: 12, column: 1))
        #expect(map.literal(at: "fleet.web[0].after") == "1_000")
        #expect(map.nearestPosition(of: "fleet.web[0].missing") == SourcePosition(line: 4, column: 1))
    }
}
