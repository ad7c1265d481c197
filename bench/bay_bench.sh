#!/usr/bin/env bash
# WebSocket echo through a bay against nginx proxying a plain WebSocket echo server, in one run,
# interleaved; then the memory of 10,000 idle bay clients. Loopback only.
#
#   swift build -c release --scratch-path .build-release --product mothership
#   MOTHERSHIP_BIN=.build-release/release/mothership bench/bay_bench.sh
#
# (a) nginx (1 worker) -> wsbench's C echo server (plain WebSocket backend)
# (b) mothership -> bench/echo_bay.c over the docking protocol (mothership terminates the WebSockets)
# Load: wsbench client, CONNS (64) connections each doing BYTES (64)-byte ping-pong for DURATION s.
# Env: ROUNDS(3) DURATION(8) CONNS(64) BYTES(64) IDLE(10000) BENCH_HARNESS(/work/shared/bench) KEEP=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${BENCH_HARNESS:-/work/shared/bench}
# shellcheck source=/dev/null
source "$HARNESS/lib.sh"
BIN=$(realpath "${MOTHERSHIP_BIN:-$HERE/../.build-release/release/mothership}")
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8} CONNS=${CONNS:-64} BYTES=${BYTES:-64} IDLE=${IDLE:-10000}
W=$(mktemp -d /tmp/baybench.XXXXXX)
cleanup() { stop_all; [[ ${KEEP:-0} == 1 ]] || rm -rf "$W"; }
trap cleanup EXIT

# 10,000 clients need as many descriptors in mothership (it inherits this limit) and in the holder.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE + 1000)); then echo "warning: ulimit -n is $(ulimit -n); the idle test may fail" >&2; fi

gcc -O2 -o "$W/wsbench" "$HARNESS/wsbench.c"
gcc -O2 -o "$W/echo_bay" "$HERE/echo_bay.c"
read -r WSBE NG MS METRICS <<<"$(free_ports 4)"

start_bg "$W/wsserver.log" "$W/wsbench" server "$WSBE"
mkdir -p "$W/nginx/tmp"
cat >"$W/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $W/nginx/tmp/cb; proxy_temp_path $W/nginx/tmp/px; fastcgi_temp_path $W/nginx/tmp/fc;
  uwsgi_temp_path $W/nginx/tmp/uw; scgi_temp_path $W/nginx/tmp/sc;
  upstream ws { server 127.0.0.1:$WSBE; }
  server {
    listen 127.0.0.1:$NG backlog=4096;
    location /ws { proxy_pass http://ws; proxy_http_version 1.1;
                   proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade"; }
  }
}
CONF
start_bg "$W/nginx.log" nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log"; P_nginx=$BG_PID

cat >"$W/ship-manifest.toml" <<TOML
[mothership]
metrics_port = $METRICS

[mothership.bind]
http = "127.0.0.1:$MS"

[[bays.websocket]]
name = "echo"
command = "$W/echo_bay"
routes = [{ bind = "http", pattern = "/ws" }]
TOML
start_bg "$W/mothership.log" "$BIN" run -c "$W/ship-manifest.toml"; P_ms=$BG_PID
for _ in $(seq 300); do grep -q "lifecycle: Running" "$W/mothership.log" && break; sleep 0.1; done
grep -q "lifecycle: Running" "$W/mothership.log" || { cat "$W/mothership.log"; exit 1; }
# The relay itself, whatever its file is called (a process name is at most 15 characters).
MS_PID=$(pgrep -g "$P_ms" -x "$(basename "$BIN" | cut -c1-15)" | head -1)

cpu_ticks() {  # cpu_ticks PID...: utime+stime (all threads) of the given processes
  python3 -c 'import sys
t = 0
for p in sys.argv[1:]:
    try: f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    except OSError: continue
    t += int(f[11]) + int(f[12])
print(t)' "$@"
}
declare -A PORT=([nginx]=$NG [mothership]=$MS)
declare -A PIDS=([nginx]="$(pgrep -g "$P_nginx" | tr '\n' ' ')" [mothership]="$MS_PID")
TICK=$(getconf CLK_TCK)

{ machine_info; echo "# ports: ws_backend=$WSBE nginx=$NG mothership=$MS | conns=$CONNS bytes=$BYTES duration=${DURATION}s rounds=$ROUNDS"; } | tee "$W/runs.txt"
for round in $(seq "$ROUNDS"); do
  order=(nginx mothership); ((round % 2 == 0)) && order=(mothership nginx)
  for t in "${order[@]}"; do
    # shellcheck disable=SC2086
    before=$(cpu_ticks ${PIDS[$t]})
    out=$(timeout $((DURATION + 20)) "$W/wsbench" client "${PORT[$t]}" /ws "$CONNS" "$DURATION" "$BYTES")
    # shellcheck disable=SC2086
    after=$(cpu_ticks ${PIDS[$t]})
    msgs=$(sed -n 's/.* msgs=\([0-9]*\).*/\1/p' <<<"$out")
    cpu=$(python3 -c "print(f'{($after-$before)*1e6/$TICK/max(1,$msgs):.1f}')")
    echo "RUN target=$t round=$round $out proxy_cpu_us_per_msg=$cpu" | tee -a "$W/runs.txt"
  done
done

python3 - "$W/runs.txt" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("RUN "):
        fields = dict(re.findall(r"(\w+)=([\w.]+)", line))
        runs.setdefault(fields["target"], []).append(fields)
med = {t: {k: statistics.median(float(r[k]) for r in rs) for k in ("rps", "p50_us", "p99_us", "proxy_cpu_us_per_msg", "errors")} for t, rs in runs.items()}
for t, m in med.items():
    print(f"{t:11s} msg/s {m['rps']:>10.0f}  p50 {m['p50_us']:>6.0f} us  p99 {m['p99_us']:>6.0f} us  proxy CPU {m['proxy_cpu_us_per_msg']:>5.1f} us/msg  errors {m['errors']:.0f}")
ratio = med["mothership"]["rps"] / med["nginx"]["rps"]
print(f"RESULT_BAY_WS mothership_rps={med['mothership']['rps']:.0f} nginx_rps={med['nginx']['rps']:.0f} ratio_vs_nginx={ratio:.2f}")
PY

# Idle clients: mothership's RSS before and after IDLE WebSocket clients of the bay are held open.
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
sleep 1
rss0=$(rss_kb "$MS_PID")
start_bg "$W/idle.log" python3 "$HERE/idle_clients.py" "$MS" /ws "$IDLE"; P_idle=$BG_PID
for _ in $(seq 1200); do grep -q "^held" "$W/idle.log" && break; kill -0 "$P_idle" 2>/dev/null || break; sleep 0.1; done
grep -q "^held" "$W/idle.log" || { echo "idle clients failed:"; cat "$W/idle.log"; exit 1; }
sleep 2
rss1=$(rss_kb "$MS_PID")
connections=$(curl -fsS "http://127.0.0.1:$METRICS/metrics" | sed -n 's/^mothership_bay_connections{bay="echo"} //p')
python3 -c "print(f'RESULT_BAY_IDLE clients=$IDLE bay_connections=$connections rss_before_kb=$rss0 rss_after_kb=$rss1 bytes_per_client={($rss1-$rss0)*1024/$IDLE:.0f}')"
stop_pid "$P_idle"
