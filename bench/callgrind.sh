#!/usr/bin/env bash
# Instructions the relay spends per proxied request, counted by callgrind (valgrind): a count of
# user-space instructions, so it hardly moves with the machine's load or speed, unlike req/s or
# CPU time. Kernel work (the syscalls themselves) is not in it; the system calls per request are
# reported beside it (callgrind's sysCount, less clock_gettime: valgrind gives its guest no vDSO,
# so each clock_gettime is a real syscall there and none natively; they are counted apart, as
# clock_gettime_per_request). The syscall count depends on how events batch (epoll_wait returns
# one or several), so on timing, more than the instruction count does.
#
#   MOTHERSHIP_BIN=.build/release/mothership bench/callgrind.sh
#   MOTHERSHIP_BIN=... RELAY_WORKERS=1 bench/callgrind.sh   (relay_workers in the manifest)
#   MOTHERSHIP_BIN=... GZIP=1 bench/callgrind.sh   (compression on, requests accept gzip, deflate, br)
#
# What it does: starts the shared bench's nginx backend (../shared/bench/backend.sh, outside
# valgrind: GET / -> "hello", GET /64k -> 65536 bytes), then the relay under
# `valgrind --tool=callgrind --separate-threads=yes` with a manifest like the shared bench's
# (candidates/mothership_proxy.sh: http bind on a free port, one placeholder `sleep` ship whose
# bind is the backend, route /.*), waits (polling) until a request goes through, and for each
# workload runs bench/cgclient.c (compiled at run time, outside valgrind): CONNS kept-alive
# connections, WARMUP requests, `callgrind_control -z` (zero the counters), exactly REQUESTS
# requests, `callgrind_control -d` (dump). The dump's instructions (Ir, summed over threads)
# divided by REQUESTS is the figure (bench/cgdump.py reads the dump files). Both workloads run in
# one relay process, each on its own fresh connections (their first requests fall in the
# warm-up). About 10 s for both workloads with the defaults; counts repeat within ~0.5 %.
#
# Workloads: get_small = GET / (5-byte body), get_64k = GET /64k (65536-byte body). `seconds` is
# the measured phase's wall time under valgrind (the client itself does ~50k req/s natively).
# Output, one line per workload, then one per thread of the relay doing at least 0.1 % of it:
#   callgrind get_small instructions_per_request=N syscalls_per_request=S clock_gettime_per_request=C requests=2000 conns=4 seconds=T
#   callgrind get_small thread=15 name=mothership-lane instructions_per_request=N share_pct=P syscalls_per_request=S clock_gettime_per_request=C
# Thread numbers are valgrind's; names come from /proc via `vgdb v.info scheduler` (valgrind thread
# -> lwpid), read right after the dump. Each dump (one file per thread) is kept in OUT with its
# callgrind_annotate text (self cost per function, demangled when swift-demangle is on PATH;
# `callgrind_annotate --inclusive=yes OUT/callgrind.get_small.thread15.out` for more).
#
# Env: MOTHERSHIP_BIN (default `mothership` on PATH); any other variable
#      reaches the relay. REQUESTS=2000 CONNS=4 WARMUP=400 (per workload)
#      CONCURRENT=1 (one request in flight on every connection; 0 = one in flight in all)
#      WORKLOADS="get_small get_64k"  START_TIMEOUT=300 PHASE_TIMEOUT=600 (s, each bounded)
#      TOTAL_TIMEOUT=1800 (s, the whole run)  OUT (dumps + callgrind_annotate text are kept there,
#      default $TMPDIR/mothership-bench/callgrind-<time>)  KEEP=1 (keep the work dir)
#      BENCH_DIR (default ../shared/bench beside the repo)  CG_STRIP=0 (see below)
#
# valgrind 3.19 cannot read the DWARF 5 debug info Swift's toolchain writes ("unhandled dwarf2
# abbrev form", then it gives up), so the relay runs from a copy with the debug sections removed
# (objcopy --strip-debug; the symbol table stays, so the dumps still name functions).
# CG_STRIP=0 runs the binary as given.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR=${BENCH_DIR:-$(cd "$REPO/../shared/bench" && pwd)}
. "$BENCH_DIR/lib.sh"
BIN=$(command -v "${MOTHERSHIP_BIN:-mothership}" || true)
[[ -n "$BIN" && -x "$BIN" ]] || { echo "callgrind.sh: no mothership binary (MOTHERSHIP_BIN=${MOTHERSHIP_BIN:-})" >&2; exit 2; }
BIN=$(realpath "$BIN")
REQUESTS=${REQUESTS:-2000} CONNS=${CONNS:-4} WARMUP=${WARMUP:-400} CONCURRENT=${CONCURRENT:-1}
WORKLOADS=${WORKLOADS:-get_small get_64k}
START_TIMEOUT=${START_TIMEOUT:-300} PHASE_TIMEOUT=${PHASE_TIMEOUT:-600} TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-1800}
for tool in valgrind callgrind_control callgrind_annotate vgdb objcopy gcc curl nginx python3; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool not found" >&2; exit 2; }
done

W=$(mktemp -d /tmp/cgbench.XXXXXX)
OUT=${OUT:-${TMPDIR:-/tmp}/mothership-bench/callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" "$W/cg"
RELAY=""; WATCHDOG=""; CLIENT=""

stop_relay() {  # TERM the relay (it stops its ship), up to 60 s for valgrind to finish, then KILL
    [[ -n "$RELAY" ]] || return 0
    local i
    kill -TERM -- "-$RELAY" 2>/dev/null || true
    for i in $(seq 600); do kill -0 "$RELAY" 2>/dev/null || break; sleep 0.1; done
    # Its placeholder ship and keeper live in groups of their own; the keeper kills the ship's
    # group when the relay's end closes its socket, whatever way the relay ended.
    kill -KILL -- "-$RELAY" 2>/dev/null || true
    wait "$RELAY" 2>/dev/null || true
    RELAY=""
}
cleanup() {
    [[ -z "$WATCHDOG" ]] || { kill -- "-$WATCHDOG" 2>/dev/null || true; wait "$WATCHDOG" 2>/dev/null || true; }
    [[ -z "$CLIENT" ]] || { kill -TERM "$CLIENT" 2>/dev/null || true; wait "$CLIENT" 2>/dev/null || true; }
    stop_relay
    stop_all
    [[ -n "${KEEP:-}" ]] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The whole run is bounded: past TOTAL_TIMEOUT the script TERMs itself (the trap cleans up).
# Its own process group, so the trap stops it and its sleep together.
setsid bash -c 'sleep "$1"; echo "callgrind.sh: TOTAL_TIMEOUT ($1 s) reached" >&2; kill -TERM "$2"' _ "$TOTAL_TIMEOUT" $$ </dev/null >/dev/null &
WATCHDOG=$!

gcc -O2 -o "$W/cgclient" "$REPO/bench/cgclient.c"
if [[ "${CG_STRIP:-1}" != 0 ]]; then
    objcopy --strip-debug "$BIN" "$W/mothership"
    RUN_BIN="$W/mothership"
else
    RUN_BIN="$BIN"
fi

read -r BE LP < <(free_ports 2)
start_bg "$W/backend.log" "$BENCH_DIR/backend.sh" "$BE" "" "$W/backend"
wait_http "http://127.0.0.1:$BE/" hello 30 "$BG_PID"

mkdir -p "$W/ms"
cat >"$W/ms/ship-manifest.toml" <<TOML
[mothership]
${RELAY_WORKERS:+relay_workers = $RELAY_WORKERS}
compression = $([ "${GZIP:-0}" = 1 ] && echo true || echo false)

[mothership.bind]
http = "127.0.0.1:$LP"

[[fleet.web]]
name = "backend"
command = "sleep"
args = ["100000"]
bind = "tcp://127.0.0.1:$BE"
critical = false
routes = [{ bind = "http", pattern = "/.*" }]
TOML

machine_info
echo "# binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1))${CG_STRIP:+ CG_STRIP=$CG_STRIP}"
echo "# env: $(env | grep -E '^MOTHERSHIP_' | grep -v '^MOTHERSHIP_BIN=' | sort | tr '\n' ' ')"
echo "# relay_workers=${RELAY_WORKERS:-default} gzip=${GZIP:-0} (compression on, clients send Accept-Encoding)"
echo "# requests=$REQUESTS conns=$CONNS warmup=$WARMUP concurrent=$CONCURRENT out=$OUT"

t0=$SECONDS
cd "$W/ms"   # the relay leads its own process group (setsid), stopped by stop_relay
setsid valgrind --tool=callgrind --separate-threads=yes --collect-systime=yes \
    --callgrind-out-file="$W/cg/callgrind.out" "$RUN_BIN" run -c "$W/ms/ship-manifest.toml" >"$W/relay.log" 2>&1 </dev/null &
RELAY=$!
cd "$REPO"
if ! wait_http "http://127.0.0.1:$LP/" hello "$START_TIMEOUT" "$RELAY"; then
    tail -30 "$W/relay.log" >&2; exit 1
fi
echo "# relay ready under callgrind after $((SECONDS - t0)) s (pid $RELAY)"

# thread_names: "TID NAME" per valgrind thread of the relay (vgdb asks valgrind's gdbserver).
thread_names() {
    timeout 60 vgdb --pid="$RELAY" v.info scheduler 2>/dev/null | sed -nE 's/^Thread ([0-9]+):.*\(lwpid ([0-9]+)\).*/\1 \2/p' |
        while read -r tid lwp; do
            name=$(cat "/proc/$RELAY/task/$lwp/comm" 2>/dev/null || echo '?'); echo "$tid ${name// /_}"
        done
}
demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else cat; fi; }

for workload in $WORKLOADS; do
    case $workload in
        get_small) path=/ ;;
        get_64k) path=/64k ;;
        *) echo "callgrind.sh: unknown workload $workload" >&2; exit 2 ;;
    esac
    before=$(ls "$W/cg")
    # The client zeroes the counters once the warm-up's responses are all in and dumps once the
    # measured ones are; each callgrind_control is bounded.
    # In the background, waited for, so that a signal reaches the trap at once (timeout leads
    # its own process group: the trap's TERM reaches the client and its callgrind_control).
    timeout "$PHASE_TIMEOUT" "$W/cgclient" 127.0.0.1 "$LP" "$path" "$CONNS" "$WARMUP" "$REQUESTS" "$CONCURRENT" \
        "timeout 120 callgrind_control -z $RELAY >/dev/null 2>&1" \
        "timeout 120 callgrind_control -d $workload $RELAY >/dev/null 2>&1" >"$W/client-$workload.txt" 2>&1 </dev/null &
    CLIENT=$!
    wait "$CLIENT" || true
    CLIENT=""
    grep -q '^cgclient ok' "$W/client-$workload.txt" || { echo "callgrind.sh: $workload failed:" >&2; cat "$W/client-$workload.txt" >&2; exit 1; }
    # The dump's files (one per thread) are those that were not there before.
    files=()
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        mapfile -t files < <(comm -13 <(echo "$before") <(ls "$W/cg") | grep -v '^$' || true)
        ((${#files[@]} > 0)) && break
        sleep 0.2
    done
    ((${#files[@]} > 0)) || { echo "callgrind.sh: no dump for $workload" >&2; exit 1; }
    declare -A names=()
    while read -r tid name; do names[$tid]=$name; done < <(thread_names)
    total_ir=0; total_sc=0; total_cg=0; per_thread=()
    for f in "${files[@]}"; do
        read -r ir sc cg < <(python3 "$REPO/bench/cgdump.py" "$W/cg/$f")
        sc=$((sc - cg))   # clock_gettime is a syscall only under valgrind (no vDSO there)
        tid=${f##*-}; tid=$((10#$tid))
        total_ir=$((total_ir + ir)); total_sc=$((total_sc + sc)); total_cg=$((total_cg + cg))
        per_thread+=("$tid $ir $sc $cg")
        ((ir > 0)) || continue
        cp "$W/cg/$f" "$OUT/callgrind.$workload.thread$tid.out"
        # The thread's entry chain (clone, start_thread, ...) shows the whole total there: dropped.
        callgrind_annotate --inclusive=no --threshold=100 "$W/cg/$f" 2>/dev/null |
            awk '/PROGRAM TOTALS/ { t = $1 } t != "" && $1 == t && !/PROGRAM TOTALS/ { next } { print }' | head -80 | demangle \
            >"$OUT/callgrind.$workload.thread$tid.annotate.txt" || true
    done
    secs=$(sed -nE 's/.*measured_seconds=([0-9.]+).*/\1/p' "$W/client-$workload.txt")
    awk -v w="$workload" -v ir="$total_ir" -v sc="$total_sc" -v cg="$total_cg" -v n="$REQUESTS" -v c="$CONNS" -v s="$secs" \
        'BEGIN { printf "callgrind %s instructions_per_request=%d syscalls_per_request=%.2f clock_gettime_per_request=%.2f requests=%d conns=%d seconds=%s\n", w, ir / n, sc / n, cg / n, n, c, s }'
    for line in "${per_thread[@]}"; do
        read -r tid ir sc cg <<<"$line"
        ((ir * 1000 >= total_ir && ir > 0)) || continue
        awk -v w="$workload" -v t="$tid" -v name="${names[$tid]:-?}" -v ir="$ir" -v sc="$sc" -v cg="$cg" -v n="$REQUESTS" -v tot="$total_ir" \
            'BEGIN { printf "callgrind %s thread=%d name=%s instructions_per_request=%d share_pct=%.1f syscalls_per_request=%.2f clock_gettime_per_request=%.2f\n", w, t, name, ir / n, 100 * ir / tot, sc / n, cg / n }'
    done | sort -t= -k2 -n
done
echo "# dumps and callgrind_annotate text: $OUT"
