import NIOHTTP1
import ShipManifest
import Testing

@testable import Relay

/// Route matching on a bind, as the relay compiles it from a manifest: declaration order across
/// ships and bays, anchored patterns, User-Agent classes, `strip_prefix`.
@Suite("Route table")
struct RouteTableTests {
    static let manifest = """
        [mothership.bind]
        http = "127.0.0.1:8080"
        admin = "127.0.0.1:8081"
        [[fleet.web]]
        name = "markdown"
        command = "x"
        bind = "3001"
        routes = [{ bind = "http", pattern = "/docs/.*", ua_filter = "llm" }]
        [[fleet.web]]
        name = "crawlers"
        command = "x"
        bind = "3002"
        routes = [{ bind = "http", pattern = "/.*", ua_filter = "bot" }]
        [[fleet.web]]
        name = "api"
        command = "x"
        bind = "unix:///run/api.sock"
        routes = [{ bind = "http", pattern = "/api/.*", strip_prefix = "/api" }, "admin:/.*"]
        [[bays.websocket]]
        name = "cable"
        command = "x"
        routes = ["http:/cable"]
        [[fleet.web]]
        name = "app"
        command = "x"
        bind = "3000"
        routes = ["http:/.*"]
        """

    static let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    static let claude = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0)"

    static func table(_ bind: String) throws -> RouteTable {
        let result = ManifestLoader.load(text: manifest)
        let manifest = try #require(result.manifest, "\(result.diagnostics)")
        let directory = UpstreamDirectory(ships: manifest.ships.map(\.name))
        return RouteTable.build(bind: bind, manifest: manifest, directory: directory)
    }

    @Test(
        arguments: [
            ("/docs/intro", claude, "markdown"),
            ("/docs/intro", firefox, "app"),
            ("/docs/intro", "curl/8.5.0", "crawlers"),
            ("/docs/intro", nil, "crawlers"),
            ("/api/users", firefox, "api"),
            ("/v2/api/users", firefox, "app"),
            ("/cable", firefox, "cable"),
            ("/cable/x", firefox, "app"),
            ("/", firefox, "app"),
        ] as [(String, String?, String)])
    func firstMatchingRouteInDeclarationOrderWins(path: String, userAgent: String?, ship: String) throws {
        let table = try Self.table("http")
        #expect(table.match(path: path[...], userAgent: userAgent)?.entry.ship == ship)
    }

    @Test func eachBindHasOnlyItsOwnRoutes() throws {
        let admin = try Self.table("admin")
        #expect(admin.entries.map(\.ship) == ["api"])
        #expect(!admin.filtersUserAgents)
        #expect(try Self.table("http").filtersUserAgents)
        #expect(try Self.table("nope").match(path: "/", userAgent: nil) == nil)
    }

    @Test func bayRoutesAreMarkedAndShipsCarryTheirAddressAndGate() throws {
        let table = try Self.table("http")
        let cable = try #require(table.match(path: "/cable", userAgent: Self.firefox)?.entry)
        guard case .bay = cable.target else {
            Issue.record("cable should be a bay target")
            return
        }
        let api = try #require(table.match(path: "/api/x", userAgent: Self.firefox)?.entry)
        guard case .ship(_, let address, let gate) = api.target else {
            Issue.record("api should be a ship target")
            return
        }
        #expect(address == .unix(path: "/run/api.sock"))
        #expect(gate.ship == "api" && !gate.isOpen)
    }

    @Test(arguments: [
        ("/api/users", "/users"), ("/api", "/"), ("/api/", "/"), ("/apiary", "/apiary"), ("/other", "/other"),
    ])
    func stripPrefixCutsAtASegmentBoundary(path: String, forwarded: String) throws {
        let route = Route(bind: "http", pattern: try RoutePattern("/.*"), stripPrefix: "/api")
        #expect(route.forwardedPath(for: path[...]) == forwarded[...])
    }
}

@Suite("Request ids")
struct RequestIDTests {
    @Test func requestIdsAreThirtyTwoHexDigitsAndDiffer() {
        var generator = RequestIDGenerator()
        let ids = (0..<1000).map { _ in generator.next() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { $0.utf8.count == 32 && $0.allSatisfy(\.isHexDigit) })
        #expect(ids.allSatisfy { $0 == $0.lowercased() })
    }

    @Test(arguments: [
        (UInt32(0x0123_abcd), "0123abcd"), (0, "00000000"), (0xFFFF_FFFF, "ffffffff"),
        (0x9A0F_5B6E, "9a0f5b6e"),
    ])
    func eightHexDigitsAtOnceMostSignificantFirst(value: UInt32, text: String) {
        let word = RequestIDGenerator.hex(value)
        let digits = withUnsafeBytes(of: word.littleEndian) { String(decoding: $0, as: UTF8.self) }
        #expect(digits == text)
        #expect(
            digits == String(repeating: "0", count: 8 - String(value, radix: 16).count)
                + String(value, radix: 16))
    }
}
