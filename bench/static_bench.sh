#!/usr/bin/env bash
# Static file serving: mothership's `[[mothership.static_dirs]]` against nginx (1 worker, sendfile,
# open_file_cache) serving the same files, interleaved rounds with the shared harness
# (../shared/bench: lib.sh, measure.py, report.py).
#   MOTHERSHIP_BIN=.build-release/release/mothership bench/static_bench.sh
# Env: ROUNDS=3 DURATION=8 CONNS=64 THREADS=2 SIZES="4096 65536" (one wrk variant per file size)
#      BENCH_DIR (default ../shared/bench beside the repo)  OUT  KEEP=1  QUIET_WAIT
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR=${BENCH_DIR:-$(cd "$REPO/../shared/bench" && pwd)}
. "$BENCH_DIR/lib.sh"
BIN=$(realpath "${MOTHERSHIP_BIN:-$REPO/.build-release/release/mothership}")
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-8} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
SIZES=${SIZES:-4096 65536}
W=$(mktemp -d /tmp/staticbench.XXXXXX); chmod 755 "$W"
OUT=${OUT:-${TMPDIR:-/tmp}/mothership-bench/static-$(date -u +%Y%m%dT%H%M%SZ)}; mkdir -p "$OUT"; RES="$OUT/runs.txt"; : >"$RES"
trap 'stop_all; [[ -n "${KEEP:-}" ]] || rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/www/static" "$W/nginx/tmp" "$W/ms"
for size in $SIZES; do head -c "$size" /dev/urandom >"$W/www/static/file-$size.bin"; done
read -r BE NG MS < <(free_ports 3)

# A backend for the placeholder ship's route (static files never reach it).
start_bg "$W/backend.log" "$BENCH_DIR/backend.sh" "$BE" "" "$W/backend"; P_backend=$BG_PID

cat >"$W/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=16;
  etag on;
  keepalive_requests 10000000; keepalive_timeout 120s;
  client_body_temp_path $W/nginx/tmp/cb; proxy_temp_path $W/nginx/tmp/px; fastcgi_temp_path $W/nginx/tmp/fc;
  uwsgi_temp_path $W/nginx/tmp/uw; scgi_temp_path $W/nginx/tmp/sc;
  server {
    listen 127.0.0.1:$NG backlog=4096;
    location /static/ { root $W/www; default_type application/octet-stream; }
  }
}
CONF
start_bg "$W/nginx.log" nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log"; P_nginx=$BG_PID

cat >"$W/ms/ship-manifest.toml" <<TOML
[mothership]
compression = false
[mothership.bind]
http = "127.0.0.1:$MS"
[[mothership.static_dirs]]
path = "$W/www/static"
prefix = "/static"
[[fleet.web]]
name = "backend"
command = "sleep"
args = ["100000"]
bind = "tcp://127.0.0.1:$BE"
critical = false
routes = [{ bind = "http", pattern = "/.*" }]
TOML
start_bg "$W/candidate.log" bash -c "cd '$W/ms' && exec '$BIN' run -c '$W/ms/ship-manifest.toml'"; P_candidate=$BG_PID

declare -A PORT=([nginx]=$NG [candidate]=$MS)
TARGETS=(nginx candidate)
first=${SIZES%% *}
for t in "${TARGETS[@]}"; do
  p=P_$t
  deadline=$((SECONDS + ${START_TIMEOUT:-30}))
  until [[ "$(curl -s --max-time 2 "http://127.0.0.1:${PORT[$t]}/static/file-$first.bin" | wc -c)" == "$first" ]]; do
    if ((SECONDS > deadline)) || ! kill -0 "${!p}" 2>/dev/null; then
      echo "FATAL: $t not serving /static/file-$first.bin on ${PORT[$t]}; log tail:" >&2
      tail -n 20 "$W/$t.log" >&2; exit 2
    fi
    sleep 0.2
  done
done
{ machine_info; echo "# ports: nginx=$NG candidate=$MS | binary: $BIN"
  echo "# ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS SIZES='$SIZES'"; } | tee "$OUT/meta.txt"

one_run() {  # one_run ROUND SIZE TARGET
  local r=$1 size=$2 t=$3 pid="P_$3"
  echo "RUN round=$r variant=file$size target=$t $(python3 "$BENCH_DIR/measure.py" "${!pid}" "$P_backend" $((DURATION+20)) -- \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 2s -s "$BENCH_DIR/wrk_report.lua" \
    "http://127.0.0.1:${PORT[$t]}/static/file-$size.bin")" | tee -a "$RES"
}

for t in "${TARGETS[@]}"; do timeout 20 wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$t]}/static/file-$first.bin" >/dev/null || true; done
for ((r=1; r<=ROUNDS; r++)); do
  for size in $SIZES; do
    if ((r % 2)); then order=(nginx candidate); else order=(candidate nginx); fi
    for t in "${order[@]}"; do one_run "$r" "$size" "$t"; done
  done
done
for t in "${TARGETS[@]}"; do p=P_$t; echo "MEM target=$t $(python3 "$BENCH_DIR/procstat.py" "${!p}")" | tee -a "$RES"; done
python3 "$BENCH_DIR/report.py" proxy "$RES" | grep -v '^RESULT' | tee "$OUT/report.txt"
python3 - "$RES" <<'PY' | tee -a "$OUT/report.txt"
import sys
from collections import defaultdict
from statistics import median
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    w = line.split()
    if w and w[0] == "RUN":
        kv = dict(x.split("=", 1) for x in w[1:])
        runs[(kv["variant"], kv["round"])][kv["target"]] = float(kv.get("rps") or 0)
ratios = defaultdict(list)
for (variant, _), by in runs.items():
    if by.get("nginx"):
        ratios[variant].append(by.get("candidate", 0) / by["nginx"])
print("RESULT_STATIC " + " ".join(f"{v}_ratio_vs_nginx={median(r):.2f}" for v, r in sorted(ratios.items())))
PY
echo "raw results: $OUT"
