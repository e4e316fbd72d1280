#!/usr/bin/env bash
# `make demo`: talky against the local PostgreSQL and Redis (started by
# scripts/services.sh), migrations applied, a demo tenant with a fresh API
# key, and three curl commands that work. Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://talky:talky@127.0.0.1:5432/talky}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TALKY_LISTEN=${TALKY_LISTEN:-127.0.0.1:8080}
mkdir -p .talky
# The admin token is made once and kept (out of git) so reruns agree.
if [ -z "${TALKY_ADMIN_TOKEN:-}" ]; then
  [ -s .talky/admin_token ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > .talky/admin_token
  TALKY_ADMIN_TOKEN=$(cat .talky/admin_token)
  export TALKY_ADMIN_TOKEN
fi

cargo build --quiet --bin talky
bin=target/debug/talky

"$bin" migrate >/dev/null
"$bin" serve >.talky/demo.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

base="http://$TALKY_LISTEN"
for _ in $(seq 1 100); do
  curl -fs "$base/health/ready" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "talky did not start; see .talky/demo.log" >&2; tail -5 .talky/demo.log >&2; exit 1; }
  sleep 0.1
done
curl -fs "$base/health/ready" >/dev/null || { echo "talky is not ready; see .talky/demo.log" >&2; exit 1; }

key=$("$bin" tenant create demo --reuse --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

auth="Authorization: Bearer $key"
campaign='{"name":"Demo campaign","caller_id":"+14155550100","agent":{"system_prompt":"You are Ada, a friendly assistant confirming appointments.","greeting":"Hi, this is Ada calling about your appointment."}}'
# The demo campaign, made on the first run and reused after.
id=$(curl -fs "$base/api/v1/campaigns?limit=1000" -H "$auth" | python3 -c '
import json, sys
items = [c for c in json.load(sys.stdin)["items"] if c["name"] == "Demo campaign"]
print(items[0]["id"] if items else "")')
if [ -z "$id" ]; then
  id=$(curl -fs -X POST "$base/api/v1/campaigns" -H "$auth" -H 'Content-Type: application/json' -d "$campaign" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
fi

cmd1="curl -s $base/api/v1/campaigns -H '$auth'"
cmd2="curl -s -X POST $base/api/v1/campaigns/$id/contacts -H '$auth' -H 'Content-Type: text/csv' --data-binary \$'phone,name,plan\\n+14155550123,Ann,gold\\n+442079460958,Ben,basic\\n'"
cmd3="curl -s '$base/api/v1/campaigns/$id/contacts?limit=10' -H '$auth'"

# Check that each command works before showing it.
for cmd in "$cmd1" "$cmd2" "$cmd3"; do
  out=$(eval "$cmd")
  echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(1 if "status" in d and "type" in d else 0)' \
    || { echo "demo check failed: $cmd -> $out" >&2; exit 1; }
done

cat <<MSG

talky is running on $base (log: .talky/demo.log)
  tenant  demo
  API key $key
  admin   TALKY_ADMIN_TOKEN in .talky/admin_token

Try:
  # 1. list campaigns
  $cmd1

  # 2. upload contacts (CSV) to the demo campaign
  $cmd2

  # 3. list the campaign's contacts
  $cmd3

API description: $base/openapi.json   readiness: $base/health/ready
Ctrl-C stops the server.
MSG

if [ -n "${TALKY_DEMO_NO_WAIT:-}" ]; then
  exit 0
fi
wait $server
