import ShipManifest
import Testing

@Suite("Routing chart")
struct RoutingChartTests {
    @Test func printsEveryBindWithRoutesInMatchOrderStaticDirsAndModules() throws {
        let manifest = try mustLoad(
            """
            [mothership]
            name = "shop"
            metrics_port = 9090
            [mothership.bind]
            http = "0.0.0.0:80"
            lb = { addr = "0.0.0.0:8443", proxy_protocol = true, trusted_proxies = ["10.0.0.0/8"], tls = { cert = "c.pem", key = "k.pem" } }
            [[mothership.static_dirs]]
            path = "./public"
            prefix = "/"
            [[mothership.static_dirs]]
            path = "./public/assets"
            prefix = "/assets"
            bind = "http"
            [[fleet.web]]
            name = "markdown"
            command = "x"
            bind = "3001"
            routes = [{ bind = "http", pattern = "/.*", ua_filter = "llm" }]
            [[fleet.web]]
            name = "app"
            command = "x"
            bind = "unix:///run/app.sock"
            routes = [{ bind = "http", pattern = "/api/.*", strip_prefix = "/api" }, "http:/.*", "lb:/.*"]
            [[bays.websocket]]
            name = "cable"
            command = "x"
            routes = ["http:/cable"]
            [[fleet.workers]]
            name = "jobs"
            command = "x"
            [[modules]]
            name = "auth"
            wasm = "auth.wasm"
            routes = ["/admin/.*"]
            """)
        let chart = RoutingChart(manifest: manifest).render(color: false)
        #expect(
            chart == """
                Routing chart for 'shop'

                bind http  0.0.0.0:80
                  static files (longest prefix first, missing files fall through to routes):
                    /assets  -> ./public/assets
                    /        -> ./public
                  routes (first match wins):
                    1.  /.*      ua=llm      -> ship markdown (127.0.0.1:3001)
                    2.  /api/.*  strip /api  -> ship app (unix:///run/app.sock)
                    3.  /.*                  -> ship app (unix:///run/app.sock)
                    4.  /cable               -> bay cable (docking socket cable.sock)
                  payloads (in this order):
                    auth  request phase  on /admin/.*  (auth.wasm)

                bind lb  https 0.0.0.0:8443  [tls (cert c.pem); proxy_protocol (from 10.0.0.0/8)]
                  static files (longest prefix first, missing files fall through to routes):
                    /  -> ./public
                  routes (first match wins):
                    1.  /.*  -> ship app (unix:///run/app.sock)
                  payloads (in this order):
                    auth  request phase  on /admin/.*  (auth.wasm)

                Not routed (no routes; supervised only):
                  jobs  ship, workers

                metrics on http://127.0.0.1:9090/metrics

                """)
        #expect(!chart.contains("\u{1B}["), "no escapes without colour")
        #expect(RoutingChart(manifest: manifest).render(color: true).contains("\u{1B}[1mhttp\u{1B}[0m"))
    }

    @Test func starterManifestPassesClearanceAndHasEveryPart() throws {
        let result = load(StarterManifest.text)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.map(\.description))")
        let manifest = try #require(result.manifest)
        let web = try #require(manifest.vessels.first { $0.group == "web" })
        #expect(web.healthcheck != nil)
        #expect(web.routes.first?.pattern.source == "/.*")
        #expect(manifest.vessels.contains { $0.group == "workers" })
        #expect(manifest.settings.metricsPort != nil)
        for section in [
            "[[mothership.static_dirs]]", "[mothership.rate_limiting]", "[[mothership.uplinks]]",
            "[[mothership.prelaunch]]",
            "[mothership.flagship]", "[base.ship]", "[[bays.websocket]]", "[[modules]]", "[mothership.env]",
            "oneshot", "cors_cache", "compression", "proxy_protocol", "tls",
        ] {
            #expect(StarterManifest.text.contains(section), "starter manifest shows \(section)")
        }
    }
}
