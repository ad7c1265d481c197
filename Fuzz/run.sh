#!/usr/bin/env bash
# Runs one fuzz target: Fuzz/run.sh <target> [seconds] [libFuzzer options...]
# Builds it first (Fuzz/build.sh), fuzzes from its seed corpus Fuzz/corpus/<target>/ with new inputs
# kept in .build-fuzz/corpus/<target>/ (the seeds stay as committed), and stops after `seconds`
# (default 60). A crash, a broken property or an input taking over 30 s (a hang) leaves the input in
# Fuzz/crashes/ and exits non-zero.
# FUZZ_NO_BUILD=1 skips the build. FUZZ_TIMEOUT=<seconds> changes the hang limit: libFuzzer measures it
# in wall-clock time, so a process stopped for longer (SIGSTOP during someone's benchmark) "times out";
# long runs on a shared machine want a large one.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: Fuzz/run.sh <target> [seconds] [libFuzzer options...]}
seconds=${2:-60}
shift $(($# >= 2 ? 2 : 1))
[ -n "${FUZZ_NO_BUILD:-}" ] || Fuzz/build.sh "$target"
mkdir -p ".build-fuzz/corpus/$target" Fuzz/crashes
dict=()
[ -f "Fuzz/dict/$target.dict" ] && dict=(-dict="Fuzz/dict/$target.dict")
extra=()
# TOMLKit 0.6.0 never frees a parsed table (TOMLTable has no deinit): not the manifest loader's leak.
if [ "$target" = manifest ]; then
    extra=(-detect_leaks=0 -rss_limit_mb=4096)  # and memory grows by about 15 KB a run
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi
# The Swift runtime's own crash backtracer would race AddressSanitizer's report.
export SWIFT_BACKTRACE=enable=no
exec ".build-fuzz/fuzz-$target" -max_total_time="$seconds" -print_final_stats=1 -timeout="${FUZZ_TIMEOUT:-30}" -rss_limit_mb=2048 \
    -artifact_prefix="Fuzz/crashes/$target-" "${dict[@]}" "${extra[@]}" "$@" ".build-fuzz/corpus/$target" "Fuzz/corpus/$target"
