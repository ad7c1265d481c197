#!/usr/bin/env bash
# Builds the example payloads (C, no libc) into WebAssembly modules with the Swift toolchain's own
# clang and wasm-ld: `Examples/payloads/build.sh [OUTDIR]` (default: Examples/payloads/build).
# CLANG may name another clang with the wasm32 target and wasm-ld next to it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
if [[ -z "${CLANG:-}" ]]; then
    swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
    CLANG=$swift_bin/clang
fi
mkdir -p "$out"
for source in "$here"/*.c; do
    name=$(basename "$source" .c)
    # -fno-builtin: no calls to memcpy/memset appear (there is no libc to provide them).
    # A 16 KiB shadow stack keeps the initial memory small (the host caps it at 16 MiB).
    "$CLANG" --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Werror \
        -Wl,--no-entry -Wl,-z,stack-size=16384 \
        -o "$out/$name.wasm" "$source"
    echo "built $out/$name.wasm"
done
