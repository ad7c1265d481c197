/// The commented manifest `mothership init` writes: a fleet that runs as it is (one web ship with a
/// health check and a catch-all route, one worker, the metrics port) and commented examples of every
/// other section.
public enum StarterManifest {
    public static let text = #"""
        # ship-manifest.toml: the fleet Mothership launches, keeps alive and exposes.
        # Check it with `mothership clearance`, see the routes with `mothership chart`,
        # run it with `mothership` (add --tui for the dashboard).

        [mothership]
        # Prometheus metrics on http://127.0.0.1:9090/metrics, liveness on /health.
        metrics_port = 9090
        # compression = true          # br, gzip or deflate by Accept-Encoding
        # cors_cache = true           # answer repeated CORS preflights without the backend

        # Named listeners that routes refer to. "port", "host:port", "[::1]:port",
        # "tcp://host:port" or "unix:///path.sock"; a table adds options:
        #   https = { addr = "0.0.0.0:443", tls = { cert = "cert.pem", key = "key.pem" } }
        #   lb = { addr = "0.0.0.0:8081", proxy_protocol = true, trusted_proxies = ["10.0.0.0/8"] }
        [mothership.bind]
        http = "127.0.0.1:8080"

        # Environment for every ship, bay and job (the ship's own env wins).
        # [mothership.env]
        # RAILS_ENV = "production"

        # Static files, served before the routes; a missing file falls through to them.
        # [[mothership.static_dirs]]
        # path = "./public"
        # prefix = "/assets"
        # bind = "http"               # optional: only on this listener

        # [mothership.rate_limiting]
        # global_rps = 10000.0        # requests per second, all clients together
        # per_ip_rpm = 600.0          # requests per minute, per client address

        # External services that must answer before anything starts (`mothership preflight`).
        # [[mothership.uplinks]]
        # name = "db"
        # url = "${DATABASE_URL:-postgres://localhost:5432/app}"
        # timeout = "5s"

        # One-shot jobs that must succeed before any ship starts (migrations).
        # [[mothership.prelaunch]]
        # name = "migrate"
        # command = "bin/rails"
        # args = ["db:migrate"]

        # Several hosts, one deployment: only the flagship runs the prelaunch jobs.
        # [mothership.flagship]
        # enabled = true
        # election = "static"                   # or "postgres" with election_url = "$DATABASE_URL"
        # static_flagship = "$MS_FLAGSHIP"      # true, 1 or yes on the flagship host

        # Defaults merged into every ship (a ship's own values win, tags add up, env merges).
        # [base.ship]
        # env = { LOG_LEVEL = "info" }
        # tags = ["app"]

        # The web ship: Mothership proxies the routes below to its bind.
        [[fleet.web]]
        name = "web"
        command = "/bin/sh"
        args = ["-c", "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1"]
        bind = "127.0.0.1:3000"
        # Instances, each on its own port from PORT (3000 and 3001, then 3002 and 3003 for their
        # replacements): `mothership restart web` starts the new ones before the old ones stop.
        workers = 2
        healthcheck = "/"             # GET on the bind; dependents wait until it answers
        routes = [{ bind = "http", pattern = "/.*" }]
        tags = ["web"]

        # A background worker: not critical, so a crash restarts it with backoff
        # instead of landing the whole fleet.
        [[fleet.workers]]
        name = "worker"
        command = "/bin/sh"
        args = ["-c", "while true; do echo working; sleep 10; done"]
        critical = false
        depends_on = ["web"]
        tags = ["workers"]

        # Run once; exit 0 is success.
        # [[fleet.jobs]]
        # name = "warm-cache"
        # command = "bin/warm-cache"
        # oneshot = true

        # A bay: Mothership terminates WebSockets on its routes and multiplexes them to the
        # bay over one Unix socket (the docking protocol).
        # [mothership.bind] also needs: ws = "127.0.0.1:8081"
        # [[bays.websocket]]
        # name = "cable"
        # command = "./bin/cable"
        # routes = [{ bind = "ws", pattern = "/cable" }]
        # config = { channel_prefix = "app" }

        # A WebAssembly payload that sees matching requests before they are routed.
        # [[modules]]
        # name = "auth"
        # wasm = "./modules/auth.wasm"
        # routes = ["/admin/.*"]
        # phase = "request"
        # config = { api_key_header = "x-api-key" }

        """#
}
