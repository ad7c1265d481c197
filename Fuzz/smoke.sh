#!/usr/bin/env bash
# CI's short fuzzing: builds every target once, then runs each for a few seconds (default 10) from its
# seed corpus with a fixed seed. Any crash, memory error, broken property or timeout fails it; the
# input is left in Fuzz/crashes/. Usage: Fuzz/smoke.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
targets="head-parser chunked proxy-protocol websocket docking ja4h manifest payload-json"
Fuzz/build.sh $targets
failed=()
for target in $targets; do
    log=.build-fuzz/smoke-$target.log
    if FUZZ_NO_BUILD=1 Fuzz/run.sh "$target" "$seconds" -seed=1 >"$log" 2>&1; then
        echo "fuzz-$target: $(grep -h '^#[0-9]*.*DONE' "$log" | tail -n 1)"
    else
        echo "fuzz-$target: FAILED (log: $log)"
        grep -h -m 5 -A 5 'property violated\|ERROR:\|Assertion' "$log" || tail -n 20 "$log"
        failed+=("$target")
    fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz smoke failed: ${failed[*]}"; exit 1; }
