#!/usr/bin/env bash
# `make fuzz`: schemathesis (property-based API fuzzing) against a live
# talky on a scratch database, driven by the server's own /openapi.json,
# with a real tenant key. Fails on any 5xx or any response that breaks the
# documented schema.
#   scripts/fuzz.sh           full run (FUZZ_MAX_TIME seconds, default 120)
#   scripts/fuzz.sh --short   bounded run for `make test` (FUZZ_MAX_EXAMPLES
#                             per operation, default 10; FUZZ_MAX_TIME, default
#                             60 s, bounds the whole run: `make test` keeps
#                             within its 30-minute budget)
# Extra arguments go to `schemathesis run`. schemathesis lives in a venv
# under .talky/ (made once; quiet when it is there).
set -euo pipefail
cd "$(dirname "$0")/.."
short=0
if [ "${1:-}" = "--short" ]; then
  short=1
  shift
fi
base_db=${DATABASE_URL:-postgres://talky:talky@127.0.0.1:5432/talky}
db=talky_fuzz_$$
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export DATABASE_URL="${base_db%/*}/$db"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TALKY_LISTEN=127.0.0.1:${FUZZ_PORT:-$(free_port)}
export TALKY_ADMIN_TOKEN=fuzz-admin-token-$$
export TALKY_REDIS__KEY_PREFIX="talky-fuzz-$$:"
export TALKY_RECORDINGS__DIR=".talky/fuzz-recordings-$$"
# The fuzzer is one client sending as fast as it can: the per-key rate
# limit (tested on its own) would only turn its requests into 429s.
export TALKY_API__RATE_PER_SECOND=100000
export TALKY_API__BURST=100000
export RUST_LOG=warn

mkdir -p .talky
if [ ! -x .talky/venv/bin/schemathesis ]; then
  echo "fuzz: installing schemathesis into .talky/venv" >&2
  rm -rf .talky/venv
  python3 -m venv .talky/venv
  .talky/venv/bin/pip install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
psql "$base_db" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null

cargo build --quiet --bin talky
target/debug/talky serve >".talky/fuzz-$$.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$base_db" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$TALKY_RECORDINGS__DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://$TALKY_LISTEN/health" >/dev/null 2>&1 && break; sleep 0.1; done
key=$(target/debug/talky tenant create fuzz --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
# Something to find for the routes that take ids.
curl -fs -X POST "http://$TALKY_LISTEN/api/v1/campaigns" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d '{"name":"fuzz","caller_id":"+14155550100","agent":{"system_prompt":"p","greeting":"g"}}' >/dev/null

if [ "$short" = 1 ]; then
  limits=(--max-examples "${FUZZ_MAX_EXAMPLES:-10}" --max-time "${FUZZ_MAX_TIME:-60}")
else
  limits=(--max-time "${FUZZ_MAX_TIME:-120}")
fi
set +e
.talky/venv/bin/schemathesis run "http://$TALKY_LISTEN/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  "${limits[@]}" --workers 2 --no-color "$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "fuzz: schemathesis found failures (server log: .talky/fuzz-$$.log)" >&2
  trap - EXIT
  cleanup
  exit "$status"
fi
rm -f ".talky/fuzz-$$.log"
