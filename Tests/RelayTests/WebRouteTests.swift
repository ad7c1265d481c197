import NIOHTTP1
import Testing

@testable import Relay

/// The web dashboard's routing and access rules (SPEC §12.6), decided from the request alone.
@Suite("Web dashboard routes")
struct WebRouteTests {
    static let token = "0123456789abcdef-token"
    static let on = WebDashboardSettings(actions: true, token: token)
    static let off = WebDashboardSettings(actions: false, token: token)

    static func route(
        _ method: HTTPMethod, _ uri: String, host: String? = "127.0.0.1:9090", origin: String? = nil,
        token: String? = nil, settings: WebDashboardSettings = on
    ) -> WebRoute? {
        var headers = HTTPHeaders()
        if let host { headers.add(name: "Host", value: host) }
        if let origin { headers.add(name: "Origin", value: origin) }
        if let token { headers.add(name: "X-Mothership-Token", value: token) }
        return WebRoute(method: method, uri: uri, headers: headers, settings: settings)
    }

    @Test func readOnlyPathsAreServedOnLoopbackHostsAndOtherPathsAreNotTheDashboards() {
        #expect(Self.route(.GET, "/") == .page)
        #expect(Self.route(.GET, "/?x=1") == .page)
        #expect(Self.route(.HEAD, "/index.html") == .page)
        #expect(Self.route(.GET, "/dashboard.js") == .script)
        #expect(Self.route(.GET, "/dashboard.css", host: "localhost:1") == .style)
        #expect(Self.route(.GET, "/events", host: "[::1]:9090") == .events)
        #expect(Self.route(.GET, "/api/vessels/web/logs") == .logs(vessel: "web"))
        #expect(Self.route(.GET, "/metrics") == nil)
        #expect(Self.route(.GET, "/health") == nil)
        #expect(Self.route(.GET, "/api/vessels/web/explode") == nil)
        #expect(Self.route(.GET, "/api/vessels//logs") == nil)
        #expect(Self.route(.POST, "/events") == .refused(.methodNotAllowed, "use GET"))
    }

    @Test func aForeignHostOrOriginIsRefused() {
        let host = WebRoute.refused(.forbidden, "the dashboard answers only on 127.0.0.1 or localhost")
        #expect(Self.route(.GET, "/", host: "evil.example:9090") == host)
        #expect(Self.route(.GET, "/", host: "127.0.0.1.evil.example") == host)
        #expect(Self.route(.GET, "/", host: "localhost:90x") == host)
        #expect(Self.route(.GET, "/", host: nil) == host)
        let cross = WebRoute.refused(.forbidden, "cross-origin requests are refused")
        #expect(Self.route(.GET, "/events", origin: "http://evil.example") == cross)
        #expect(Self.route(.GET, "/events", origin: "http://localhost:9090") == cross)
        #expect(Self.route(.GET, "/events", origin: "null") == cross)
        #expect(Self.route(.GET, "/events", origin: "http://127.0.0.1:9090") == .events)
        #expect(
            Self.route(.GET, "/events", host: "LOCALHOST:9090", origin: "http://localhost:9090") == .events)
    }

    @Test func actionsNeedPostActionsOnAndTheExactToken() {
        let uri = "/api/vessels/web/restart"
        #expect(Self.route(.POST, uri, token: Self.token) == .command(.restart("web")))
        #expect(Self.route(.POST, "/api/vessels/web/stop", token: Self.token) == .command(.stop("web")))
        #expect(Self.route(.POST, "/api/vessels/web/start", token: Self.token) == .command(.start("web")))
        #expect(Self.route(.POST, "/api/reload", token: Self.token) == .command(.reload))
        #expect(
            Self.route(.POST, uri, origin: "http://127.0.0.1:9090", token: Self.token)
                == .command(.restart("web")))
        let refused = WebRoute.refused(.forbidden, "missing or wrong X-Mothership-Token")
        #expect(Self.route(.POST, uri) == refused)
        #expect(Self.route(.POST, uri, token: "") == refused)
        #expect(Self.route(.POST, uri, token: String(Self.token.dropLast())) == refused)
        #expect(Self.route(.POST, uri, token: Self.token + "x") == refused)
        #expect(Self.route(.GET, uri, token: Self.token) == .refused(.methodNotAllowed, "use POST"))
        let off = WebRoute.refused(.forbidden, "actions are off ([mothership.dashboard] actions = true)")
        #expect(Self.route(.POST, uri, token: Self.token, settings: Self.off) == off)
        #expect(Self.route(.POST, "/api/reload", token: Self.token, settings: Self.off) == off)
        #expect(
            Self.route(.POST, uri, origin: "https://127.0.0.1:9090", token: Self.token)
                == .refused(.forbidden, "cross-origin requests are refused"))
    }

    @Test func tokensCompareWholly() {
        #expect(WebRoute.same("abc", "abc"))
        #expect(!WebRoute.same("abc", "abd"))
        #expect(!WebRoute.same("abc", "abc\0"))
        #expect(!WebRoute.same("", "a"))
        #expect(WebRoute.same("", ""))
    }

    @Test func thePageLoadsNothingInlineOrFromElsewhereAndStaysSmall() {
        let page = WebAssets.page(actions: false)
        let size = page.utf8.count + WebAssets.script.utf8.count + WebAssets.style.utf8.count
        #expect(size < 50_000, "\(size) bytes")
        #expect(!page.contains("<script>") && !page.contains("<style") && !page.contains(" style="))
        #expect(!(page + WebAssets.script + WebAssets.style).contains("https://"))
        #expect(!WebAssets.contentSecurityPolicy.contains("unsafe"))
        #expect(EventStreams.event(#"{"a":1}"#) == "data: {\"a\":1}\n\n")
    }
}
