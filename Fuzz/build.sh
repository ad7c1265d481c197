#!/usr/bin/env bash
# Builds the fuzz targets (libFuzzer + AddressSanitizer): Fuzz/build.sh [target...] (all without one).
#
# Each target is one module compiled straight with swiftc from its harness (Fuzz/harness/<target>.swift,
# plus Fuzz/harness/Common.swift) and the few Sources files it tests, so the parser's own code is
# instrumented for coverage. What those files import (NIOCore, NIOHTTP1, Crypto, TOMLKit, ...) comes
# uninstrumented from the package's release build: its modules, the include flags SwiftPM used for
# them (read from .build/release.yaml) and its object files, gathered into one archive so the linker
# takes only what a target needs. Binaries: .build-fuzz/fuzz-<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-fuzz
mkdir -p "$OUT"

# target: the Sources files compiled into it (besides the harness)
sources_of() {
    case "$1" in
    head-parser)
        echo Fuzz/harness/HTTP1Support.swift Sources/Relay/HTTP1/{HeadParser,MessageHead,RequestTarget,HeadWriter,ByteWriter,BodyFraming}.swift \
            Sources/Relay/Proxy/LocalResponse.swift ;;
    chunked)
        echo Fuzz/harness/HTTP1Support.swift Sources/Relay/HTTP1/{HeadParser,MessageHead,RequestTarget,BodyFraming}.swift ;;
    proxy-protocol)
        echo Sources/Relay/ProxyProtocol/{ProxyHeaderParser,ProxyHeader}.swift ;;
    websocket)
        echo Fuzz/harness/WebSocketSupport.swift Sources/Relay/Bays/{WebSocketRules,PerMessageDeflate,MessageDeflate}.swift ;;
    docking)
        echo Sources/DockingProtocol/*.swift ;;
    ja4h)
        echo Fuzz/harness/HTTP1Support.swift Sources/Relay/HTTP1/{HeadParser,MessageHead,RequestTarget}.swift \
            Sources/Relay/Edge/JA4H.swift ;;
    manifest)
        echo Sources/ShipManifest/*.swift ;;
    payload-json)
        echo Sources/Payloads/PayloadJSON.swift ;;
    *) echo "unknown fuzz target: $1" >&2; return 1 ;;
    esac
}
ALL_TARGETS="head-parser chunked proxy-protocol websocket docking ja4h manifest payload-json"
TARGETS=${*:-$ALL_TARGETS}
for target in $TARGETS; do sources_of "$target" >/dev/null; done

# The release build of the library targets the harnesses import (a no-op after `swift build -c release`).
if [ -z "${FUZZ_RELEASE_BIN:-}" ]; then
    echo "== swift build -c release --target Payloads (the modules the harnesses import)"
    swift build -c release --target Payloads 2>&1 | tail -n 3
    FUZZ_RELEASE_BIN=$(swift build -c release --show-bin-path)
fi
BIN=$FUZZ_RELEASE_BIN
YAML=$(dirname "$(dirname "$BIN")")/release.yaml

# Include flags: those SwiftPM passed when it compiled Payloads (it imports everything the harnesses do).
python3 - "$YAML" >"$OUT/flags" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("args: [") and '"-module-name","Payloads"' in line:
        args = json.loads(line[len("args: "):])
        keep, i = [], 0
        while i < len(args):
            if args[i] in ("-I", "-Xcc"):
                keep += args[i:i + 2]; i += 2
            else:
                i += 1
        print("\n".join(keep))
        break
else:
    sys.exit("no compile command for Payloads in " + sys.argv[1])
PY

# Dependency objects (library targets only: no executables, tests or build tools) in one archive.
find "$BIN" -path '*.build/*.o' \
    ! -path '*/MothershipCLI.build/*' ! -path '*Tests.build/*' ! -path '*/MothershipTestSupport.build/*' \
    ! -path '*-tool.build/*' ! -path '*/CLI.build/*' ! -path '*/CLICommands.build/*' | sort >"$OUT/objects"
# The toolchain's llvm-ar: GNU ar's symbol index misses symbols of some Swift objects.
LLVM_AR=$(dirname "$(readlink -f "$(command -v swiftc)")")/llvm-ar
rm -f "$OUT/libdeps.a"
xargs -d '\n' "$LLVM_AR" qcsT "$OUT/libdeps.a" <"$OUT/objects"

mapfile -t FLAGS <"$OUT/flags"
for target in $TARGETS; do
    module=fuzz_${target//-/_}
    echo "== fuzz-$target"
    # shellcheck disable=SC2046
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 -module-name "$module" -package-name mothership_fuzz \
        -module-cache-path "$OUT/ModuleCache" "${FLAGS[@]}" \
        Fuzz/harness/Common.swift "Fuzz/harness/$target.swift" $(sources_of "$target") \
        -use-ld=lld "$OUT/libdeps.a" -lz -lbrotlienc -lstdc++ \
        -o "$OUT/fuzz-$target"
done
