#!/usr/bin/env bash
# Steady load through a phased restart of a 2-worker ship (SPEC §12.2): wrk against the relay in
# front of two uvicorn instances, once without a restart (the baseline) and once with
# `mothership restart web` during the run; prints requests, non-2xx answers, socket errors and the
# latency percentiles of both, and the restart's own log line. Loopback only, bounded in time.
#
#   MOTHERSHIP_BIN=.build/release/mothership bench/phased_restart_bench.sh
#
# Env: DURATION (s, default 12) CONNS (16) THREADS (2) RESTART_AT (s into the run, default 3)
#      RESTARTS (how many restarts during the run, 2 s apart, default 2).
# Needs wrk and uvicorn (`pip install uvicorn`).
set -euo pipefail
BIN=$(realpath "${MOTHERSHIP_BIN:-$(command -v mothership)}")
DURATION=${DURATION:-12} CONNS=${CONNS:-16} THREADS=${THREADS:-2} RESTART_AT=${RESTART_AT:-3}
RESTARTS=${RESTARTS:-2}
for tool in wrk uvicorn curl python3; do
    command -v "$tool" >/dev/null || { echo "phased_restart_bench.sh: $tool not found" >&2; exit 2; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/mothership-phased-bench.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Four consecutive free ports for the two workers' two generations.
ship_port() {
    python3 - <<'PY'
import socket, random
while True:
    p = random.randint(20000, 30000)
    try:
        socks = []
        for q in range(p, p + 4):
            s = socket.socket(); s.bind(("127.0.0.1", q)); socks.append(s)
        print(p); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}
RELAY=$(free_port)
SHIP=$(ship_port)
cat >"$W/app.py" <<'PY'
import os
PID = str(os.getpid()).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(6 + len(PID)).encode())]})
    await send({"type": "http.response.body", "body": b"hello " + PID})
PY
cat >"$W/ship-manifest.toml" <<TOML
[mothership]
control_socket = "$W/ms.sock"

[mothership.bind]
http = "127.0.0.1:$RELAY"

[[fleet.web]]
name = "web"
command = "/bin/sh"
args = ["-c", "exec uvicorn app:app --host 127.0.0.1 --port \$PORT --log-level warning"]
bind = "127.0.0.1:$SHIP"
workers = 2
healthcheck = "/"
stop_timeout = "10s"
routes = ["http:/.*"]
TOML
cd "$W"
"$BIN" run -c ship-manifest.toml >"$W/mothership.log" 2>&1 &
MS=$!
trap 'kill -TERM $MS 2>/dev/null; wait $MS 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 300); do
    grep -q "lifecycle: Running" "$W/mothership.log" && break
    sleep 0.1
done
grep -q "lifecycle: Running" "$W/mothership.log" || { cat "$W/mothership.log"; exit 1; }
curl -fsS "http://127.0.0.1:$RELAY/" >/dev/null

run() {  # $1 = label; $2 = restart during the run (0/1)
    local label=$1 restart=$2 restarts=""
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$RELAY/" >"$W/wrk-$label.txt" 2>&1 &
    local wrk_pid=$!
    if [[ $restart == 1 ]]; then
        sleep "$RESTART_AT"
        for i in $(seq 1 "$RESTARTS"); do
            "$BIN" restart -c ship-manifest.toml web >>"$W/restart.txt" 2>&1 || restarts="failed"
            sleep 2
        done
    fi
    wait $wrk_pid
    local requests non2xx errors p50 p99
    requests=$(awk '/requests in/ {print $1}' "$W/wrk-$label.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$W/wrk-$label.txt")
    errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$W/wrk-$label.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$W/wrk-$label.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$W/wrk-$label.txt")
    echo "RUN $label requests=$requests non2xx=${non2xx:-0} socket_errors=${errors:-0} p50=$p50 p99=$p99${restarts:+ restart=$restarts}"
}
run steady 0
run restarting 1
cat "$W/restart.txt"
grep -o 'phased restart of .web. complete[^"]*' "$W/mothership.log"
