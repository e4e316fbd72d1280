#!/usr/bin/env bash
# `make fuzz`: schemathesis (property-based API fuzzing) against a live
# talky on a scratch database, driven by the server's own /openapi.json.
# Fails on any 5xx or any response that breaks the documented schema.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_TIME=${FUZZ_MAX_TIME:-120}
base_db=${DATABASE_URL:-postgres://talky:talky@127.0.0.1:5432/talky}
db=talky_fuzz
export DATABASE_URL="${base_db%/*}/$db"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TALKY_LISTEN=127.0.0.1:${FUZZ_PORT:-18080}
export TALKY_ADMIN_TOKEN=fuzz-admin-token
export RUST_LOG=warn

mkdir -p .talky
if [ ! -x .talky/venv/bin/schemathesis ]; then
  python3 -m venv .talky/venv
  .talky/venv/bin/pip install -q schemathesis
fi
psql "$base_db" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null

cargo build --quiet --bin talky
target/debug/talky serve >.talky/fuzz.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; psql "$base_db" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://$TALKY_LISTEN/health" >/dev/null 2>&1 && break; sleep 0.1; done
key=$(target/debug/talky tenant create fuzz --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
# Something to find for the routes that take ids.
curl -fs -X POST "http://$TALKY_LISTEN/api/v1/campaigns" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d '{"name":"fuzz","caller_id":"+14155550100","agent":{"system_prompt":"p","greeting":"g"}}' >/dev/null

.talky/venv/bin/schemathesis run "http://$TALKY_LISTEN/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-time "$MAX_TIME" --workers 2 --no-color "$@"
