#!/usr/bin/env bash
# Candidate adapter for ../shared/bench/proxy_bench.sh: like its candidates/mothership_proxy.sh, but
# with the edge features turned on and not applying to the benchmark's requests (compression on,
# wrk sends no Accept-Encoding; a CORS cache, no preflights; a static dir under /static, which the
# requests miss). Shows what the features cost a proxied request when they are configured.
#   MOTHERSHIP_BIN=$PWD/.build-release/release/mothership ../shared/bench/proxy_bench.sh $PWD/bench/mothership_edge_proxy.sh
set -euo pipefail
bin=${MOTHERSHIP_BIN:-mothership}
mkdir -p "$WORKDIR/public"
echo "static" >"$WORKDIR/public/index.txt"
cat >"$WORKDIR/ship-manifest.toml" <<TOML
[mothership]
compression = true
cors_cache = true

[mothership.bind]
http = "127.0.0.1:$LISTEN_PORT"

[[mothership.static_dirs]]
path = "$WORKDIR/public"
prefix = "/static"

[[fleet.web]]
name = "wsecho"
command = "sleep"
args = ["100000"]
bind = "tcp://127.0.0.1:$WS_BACKEND_PORT"
critical = false
routes = [{ bind = "http", pattern = "/ws.*" }]

[[fleet.web]]
name = "backend"
command = "sleep"
args = ["100000"]
bind = "tcp://127.0.0.1:$BACKEND_PORT"
critical = false
routes = [{ bind = "http", pattern = "/.*" }]
TOML
cd "$WORKDIR"
exec "$bin" run -c "$WORKDIR/ship-manifest.toml"
