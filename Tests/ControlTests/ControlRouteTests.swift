import NIOHTTP1
import Testing

@testable import Control

/// The control socket's request targets, including the forms a careless or hostile client sends.
@Suite("Control routes")
struct ControlRouteTests {
    @Test func endpointsAndTheirMethods() {
        #expect(ControlRoute(method: .GET, uri: "/v1/fleet") == .fleet)
        #expect(
            ControlRoute(method: .POST, uri: "/v1/vessels/web/restart") == .action(vessel: "web", .restart))
        #expect(ControlRoute(method: .POST, uri: "/v1/vessels/web/stop") == .action(vessel: "web", .stop))
        #expect(ControlRoute(method: .POST, uri: "/v1/land") == .land)
        #expect(ControlRoute(method: .POST, uri: "/v1/reload") == .reload)
        #expect(ControlRoute(method: .POST, uri: "/v1/logs/reopen") == .reopenLogs)
        #expect(
            ControlRoute(method: .GET, uri: "/v1/vessels/web/logs?lines=5&follow=1")
                == .logs(vessels: ["web"], lines: 5, follow: true))
        #expect(
            ControlRoute(method: .GET, uri: "/v1/logs?vessels=a,b")
                == .logs(vessels: ["a", "b"], lines: 100, follow: false))
        #expect(ControlRoute(method: .GET, uri: "/v1/land") == .methodNotAllowed("GET /v1/land (use POST)"))
        #expect(
            ControlRoute(method: .DELETE, uri: "/v1/fleet") == .methodNotAllowed("DELETE /v1/fleet (use GET)")
        )
    }

    @Test func hostileTargetsAreNotFoundOrTakenLiterallyNeverAsPaths() {
        // Unknown action, extra segments, nothing after /v1.
        #expect(
            ControlRoute(method: .POST, uri: "/v1/vessels/web/explode")
                == .notFound("POST /v1/vessels/web/explode"))
        #expect(
            ControlRoute(method: .POST, uri: "/v1/vessels/web/stop/now")
                == .notFound("POST /v1/vessels/web/stop/now"))
        #expect(ControlRoute(method: .GET, uri: "/v1") == .notFound("GET /v1"))
        #expect(ControlRoute(method: .GET, uri: "") == .notFound("GET "))
        // Percent-escapes name a vessel (looked up by name, never a file): `..` is just a name.
        #expect(ControlRoute(method: .POST, uri: "/v1/vessels/%2e%2e/stop") == .action(vessel: "..", .stop))
        // A broken escape stays as it came; a lone `%` too.
        #expect(ControlRoute(method: .POST, uri: "/v1/vessels/a%zz/stop") == .action(vessel: "a%zz", .stop))
        #expect(ControlRoute(method: .POST, uri: "/v1/vessels/%/stop") == .action(vessel: "%", .stop))
        // Bad numbers: the default, or none below zero.
        #expect(
            ControlRoute(method: .GET, uri: "/v1/logs?lines=abc")
                == .logs(vessels: nil, lines: 100, follow: false))
        #expect(
            ControlRoute(method: .GET, uri: "/v1/logs?lines=-5")
                == .logs(vessels: nil, lines: 0, follow: false))
        #expect(
            ControlRoute(method: .GET, uri: "/v1/logs?lines=99999999999999999999999")
                == .logs(vessels: nil, lines: 100, follow: false))
        // A query without a value, or with `=` only.
        #expect(
            ControlRoute(method: .GET, uri: "/v1/logs?follow&=x&lines")
                == .logs(vessels: nil, lines: 100, follow: false))
    }
}
