#!/usr/bin/env bash
# Autobahn|Testsuite (fuzzingclient) against a bay: mothership terminates the WebSockets and relays
# every message to Examples/bay/chat_bay.py in its echo mode (config mode = "echo"), which sends each
# message back to its sender. Loopback only.
#
# Installing wstest (Autobahn|Testsuite runs only under Python 2.7; pyenv has 2.7.18):
#   ~/.pyenv/versions/2.7.18/bin/python -m pip install "virtualenv<20.22"
#   ~/.pyenv/versions/2.7.18/bin/python -m virtualenv ~/.venvs/wstest
#   ~/.venvs/wstest/bin/pip install autobahntestsuite
# No pins were needed (pip on 2.7 resolves autobahntestsuite 25.10.1, autobahn 0.10.9, Twisted 19.10.0);
# to reproduce that exact set:
#   ~/.venvs/wstest/bin/pip install autobahntestsuite==25.10.1 autobahn==0.10.9 Twisted==19.10.0 \
#       txaio==2.1.0 cryptography==3.3.2 pyOpenSSL==19.1.0 zope.interface==4.6.0
#
# Usage (from anywhere):
#   Examples/bay/autobahn.sh
#   CASES='9.*' Examples/bay/autobahn.sh            # only the large-message section (~10 s)
#   SKIP_9=1 Examples/bay/autobahn.sh               # everything but 9.*  (the full run takes ~80 s,
#                                                   mostly 1 s timeouts of failing cases)
# Env:
#   MOTHERSHIP_BIN  the binary (default: <repo>/.build/release/mothership; copied before the run so
#                   a rebuild during the run does not change it)
#   WSTEST          the wstest executable (default: wstest on PATH, else ~/.venvs/wstest/bin/wstest)
#   REPORTS_DIR     where the reports go (default: /tmp/autobahn-reports); index.json and the HTML
#                   report end up in $REPORTS_DIR/clients
#   CASES           comma-separated case patterns (default: 1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*)
#   EXCLUDE         comma-separated case patterns to exclude (default: none)
#   SKIP_9=1        drop 9.* from CASES
#   KEEP=1          keep the temp dir (manifest, mothership log)
# Exit status: 0 when no case FAILED, 1 when some did, 2 when the run itself broke.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${MOTHERSHIP_BIN:-$REPO/.build/release/mothership}")
REPORTS_DIR=$(realpath -m "${REPORTS_DIR:-/tmp/autobahn-reports}")
CASES=${CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*}
EXCLUDE=${EXCLUDE:-}
if [[ ${SKIP_9:-0} == 1 ]]; then CASES=$(tr ',' '\n' <<<"$CASES" | { grep -v '^9\.' || true; } | paste -sd, -); fi
[[ -n $CASES ]] || { echo "no cases to run" >&2; exit 2; }
if [[ -z ${WSTEST:-} ]]; then
  if command -v wstest >/dev/null; then WSTEST=$(command -v wstest); else WSTEST=$HOME/.venvs/wstest/bin/wstest; fi
fi
[[ -x $WSTEST ]] || { echo "wstest not found ($WSTEST); see the top of $0" >&2; exit 2; }
[[ -x $BIN ]] || { echo "mothership binary not found: $BIN" >&2; exit 2; }

W=$(mktemp -d /tmp/autobahn.XXXXXX)
MS_PID=
stop_mothership() {
  [[ -n $MS_PID ]] || return 0
  if kill -0 "$MS_PID" 2>/dev/null; then
    kill -TERM "$MS_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$MS_PID" 2>/dev/null; then echo "mothership did not stop in 15 s; killing it" >&2; kill -KILL "$MS_PID" 2>/dev/null || true; fi
  fi
  wait "$MS_PID" 2>/dev/null || true
  # mothership runs in its own session (setsid): anything left in its process group is an orphan.
  if pgrep -g "$MS_PID" >/dev/null 2>&1; then
    echo "warning: processes left in mothership's group: $(pgrep -g "$MS_PID" | paste -sd' ' -); killing them" >&2
    kill -KILL -- "-$MS_PID" 2>/dev/null || true
  fi
  MS_PID=
}
WSTEST_PID=
cleanup() {
  if [[ -n $WSTEST_PID ]]; then kill -TERM "$WSTEST_PID" 2>/dev/null || true; wait "$WSTEST_PID" 2>/dev/null || true; fi
  stop_mothership; [[ ${KEEP:-0} == 1 ]] && echo "kept $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
cp "$BIN" "$W/mothership"
cp "$HERE/chat_bay.py" "$W/chat_bay.py"
cat >"$W/ship-manifest.toml" <<TOML
[mothership]
name = "autobahn"

[mothership.bind]
http = "127.0.0.1:$PORT"

[[bays.websocket]]
name = "echo"
command = "python3"
args = ["$W/chat_bay.py"]
routes = [{ bind = "http", pattern = "/ws" }]
config = { mode = "echo" }
TOML

# Job control off: setsid gives mothership its own session and process group (pgid = its pid).
setsid "$W/mothership" run -c "$W/ship-manifest.toml" >"$W/mothership.log" 2>&1 &
MS_PID=$!
URL="ws://127.0.0.1:$PORT/ws"
# Ready when the route answers a plain GET with 426 (the bay is docked; 503 until then).
code=000
for _ in $(seq 300); do
  kill -0 "$MS_PID" 2>/dev/null || break
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ws" || true)
  [[ $code == 426 ]] && break
  sleep 0.1
done
if [[ $code != 426 ]]; then
  echo "mothership/bay not ready (last HTTP status $code):" >&2; cat "$W/mothership.log" >&2; exit 2
fi
echo "mothership $("$W/mothership" --version 2>/dev/null || true) ($BIN) pid $MS_PID, bay echo at $URL"

mkdir -p "$REPORTS_DIR"
rm -rf "$REPORTS_DIR/clients"
python3 - "$W/fuzzingclient.json" "$REPORTS_DIR/clients" "$URL" "$CASES" "$EXCLUDE" <<'PY'
import json, sys
spec, outdir, url, cases, exclude = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(",") if c.strip()]
json.dump({"outdir": outdir, "servers": [{"agent": "mothership", "url": url}],
           "cases": split(cases), "exclude-cases": split(exclude), "exclude-agent-cases": {}},
          open(spec, "w"), indent=2)
PY
echo "cases: $CASES${EXCLUDE:+ (excluding $EXCLUDE)}; reports in $REPORTS_DIR/clients"
start=$(date +%s)
# wstest's own output (one line per case) goes to a log; its exit status says little, index.json tells.
# In the background so that a signal to this script is handled at once (cleanup stops wstest too).
(cd "$W" && exec "$WSTEST" -m fuzzingclient -s "$W/fuzzingclient.json") >"$REPORTS_DIR/wstest.log" 2>&1 &
WSTEST_PID=$!
wait "$WSTEST_PID" || echo "wstest exited with $? (see $REPORTS_DIR/wstest.log)" >&2
WSTEST_PID=
echo "wstest took $(($(date +%s) - start)) s"
stop_mothership
cp "$W/mothership.log" "$REPORTS_DIR/mothership.log"

[[ -f $REPORTS_DIR/clients/index.json ]] || { echo "no index.json; see $REPORTS_DIR/wstest.log" >&2; exit 2; }
python3 - "$REPORTS_DIR/clients/index.json" <<'PY'
import collections, json, sys
index = json.load(open(sys.argv[1]))
cols = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
key = lambda c: tuple(int(p) for p in c.split("."))
failed_any = False
for agent, cases in sorted(index.items()):
    per = collections.defaultdict(collections.Counter)
    failed, close_issues = [], []
    for cid, r in cases.items():
        b = r["behavior"]
        per[cid.split(".")[0]][b if b in cols else "other"] += 1
        if b == "FAILED":
            failed.append(cid)
        if r.get("behaviorClose") not in ("OK", "INFORMATIONAL", "NON-STRICT", None):
            close_issues.append("%s(%s)" % (cid, r["behaviorClose"]))
    has_other = any(c["other"] for c in per.values())
    head = cols + (["other"] if has_other else [])
    print("\nAgent %s: %d cases" % (agent, len(cases)))
    print("%-8s" % "section" + "".join("%15s" % h for h in head) + "%8s" % "total")
    total = collections.Counter()
    for s in sorted(per, key=int):
        total.update(per[s])
        print("%-8s" % s + "".join("%15d" % per[s][h] for h in head) + "%8d" % sum(per[s].values()))
    print("%-8s" % "all" + "".join("%15d" % total[h] for h in head) + "%8d" % sum(total.values()))
    failed.sort(key=key)
    print("\nFAILED (%d): %s" % (len(failed), " ".join(failed) or "none"))
    if close_issues:
        close_issues.sort(key=lambda s: key(s.split("(")[0]))
        print("closing handshake not OK (%d): %s" % (len(close_issues), " ".join(close_issues)))
    failed_any = failed_any or bool(failed)
sys.exit(1 if failed_any else 0)
PY
