#!/usr/bin/env bash
# Proxy throughput with one trivial request-phase payload against the same relay without it, in one
# run, interleaved (a noisy machine hits both alike). Two mothership instances share one nginx
# backend (GET / -> "hello"); wrk drives each in turn for DURATION seconds, ROUNDS times; the
# medians and their ratio are printed (target: ratio >= 0.8).
#
#   MOTHERSHIP_BIN=.build-release/release/mothership bench/payload_bench.sh
#
# Env: MOTHERSHIP_BIN (default .build-release/release/mothership), ROUNDS (5), DURATION (8),
# THREADS (2), CONNS (64), MODULE (noop: calls set_action(0); reader: also reads the request JSON).
# Needs wrk, nginx, curl and the Swift toolchain's clang (to build the module).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOTHERSHIP_BIN:-$repo/.build-release/release/mothership}
rounds=${ROUNDS:-5}
duration=${DURATION:-8}
threads=${THREADS:-2}
conns=${CONNS:-64}
module=${MODULE:-noop}
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "payload_bench: needs $tool (apt-get install $tool)" >&2; exit 2; }
done
[[ -x "$bin" ]] || { echo "payload_bench: no binary at $bin (set MOTHERSHIP_BIN)" >&2; exit 2; }

work=$(mktemp -d /tmp/payload-bench.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

read -r backend plain payload < <(python3 -c 'import random, socket
ports = set()
while len(ports) < 3:
    port = random.randint(20000, 32767)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); ports.add(port)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)')

# The module, built with the toolchain's clang.
swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
"${CLANG:-$swift_bin/clang}" --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin \
    -Wl,--no-entry -Wl,-z,stack-size=16384 -o "$work/module.wasm" "$repo/bench/${module}_payload.c"

# Backend: nginx, one worker.
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/backend.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/backend.pid;
error_log $work/nginx/backend.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000; keepalive_timeout 120s;
  client_body_temp_path $work/nginx/tmp/cb; proxy_temp_path $work/nginx/tmp/px;
  fastcgi_temp_path $work/nginx/tmp/fc; uwsgi_temp_path $work/nginx/tmp/uw; scgi_temp_path $work/nginx/tmp/sc;
  server {
    listen 127.0.0.1:$backend backlog=4096;
    location = / { default_type text/plain; return 200 "hello"; }
  }
}
CONF
setsid nginx -p "$work/nginx" -c "$work/nginx/backend.conf" -e "$work/nginx/backend.err" \
    >"$work/nginx.log" 2>&1 </dev/null &
pids+=($!)

# Two relays: the same manifest, one with the module in front of every request.
start_relay() {  # start_relay NAME PORT WITH_MODULE
    local dir=$work/$1
    mkdir -p "$dir"
    {
        printf '[mothership.bind]\nhttp = "127.0.0.1:%s"\n\n' "$2"
        if [[ $3 == yes ]]; then
            printf '[[modules]]\nname = "trivial"\nwasm = "%s"\nroutes = ["/.*"]\nphase = "request"\n\n' \
                "$work/module.wasm"
        fi
        printf '[[fleet.web]]\nname = "backend"\ncommand = "sleep"\nargs = ["100000"]\n'
        printf 'bind = "tcp://127.0.0.1:%s"\ncritical = false\nroutes = ["http:/.*"]\n' "$backend"
    } >"$dir/ship-manifest.toml"
    # setsid execs in place (a background job of a script leads no group), so $! leads the group.
    setsid bash -c 'cd "$1" && exec "$2" run -c "$1/ship-manifest.toml"' _ "$dir" "$bin" \
        >"$dir/out.log" 2>&1 </dev/null &
    pids+=($!)
}
start_relay plain "$plain" no
start_relay payload "$payload" yes

wait_for() {  # wait_for PORT
    local deadline=$((SECONDS + 30))
    until curl -fsS --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null | grep -q hello; do
        ((SECONDS < deadline)) || { echo "payload_bench: nothing answers on $1" >&2; cat "$work"/*/out.log >&2; exit 1; }
        sleep 0.2
    done
}
wait_for "$plain"
wait_for "$payload"

rps() {  # rps PORT SECONDS
    wrk -t"$threads" -c"$conns" -d"$2"s "http://127.0.0.1:$1/" | awk '/^Requests\/sec:/ { print $2 }'
}
echo "# payload_bench: module=$module rounds=$rounds duration=${duration}s wrk -t$threads -c$conns, $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
rps "$plain" 2 >/dev/null
rps "$payload" 2 >/dev/null
plain_runs=()
payload_runs=()
for ((round = 1; round <= rounds; round++)); do
    # Alternate which goes first.
    if ((round % 2)); then order=("$plain" "$payload"); else order=("$payload" "$plain"); fi
    for port in "${order[@]}"; do
        value=$(rps "$port" "$duration")
        if [[ $port == "$plain" ]]; then plain_runs+=("$value"); else payload_runs+=("$value"); fi
    done
    echo "round $round: without module ${plain_runs[-1]} req/s, with module ${payload_runs[-1]} req/s"
done
python3 - "${plain_runs[*]}" "${payload_runs[*]}" <<'PY'
import statistics, sys
plain = [float(x) for x in sys.argv[1].split()]
payload = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(plain), statistics.median(payload)
print(f"median without module: {a:.0f} req/s   with module: {b:.0f} req/s   ratio: {b / a:.3f}")
print(f"RESULT plain_rps={a:.0f} payload_rps={b:.0f} ratio={b / a:.3f}")
PY
grep -h "error" "$work"/payload/out.log | head -5 || true
