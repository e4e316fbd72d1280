#!/usr/bin/env bash
# `make demo`: a whole simulated campaign. PostgreSQL and Redis are started
# by scripts/services.sh (same as the tests); `talky-sim demo` then runs every
# provider emulator on loopback, talky's server against them, a campaign of
# ten contacts (one per callee persona) through the REST API, and prints a
# table per contact. `make demo KEEP=1` keeps the server up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgres://talky:talky@127.0.0.1:5432/talky}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export TALKY_LISTEN=${TALKY_LISTEN:-127.0.0.1:8080}
mkdir -p .talky
# The admin token (for /metrics and the actor tree) is made once and kept
# (out of git) so reruns agree.
if [ -z "${TALKY_ADMIN_TOKEN:-}" ]; then
  [ -s .talky/admin_token ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > .talky/admin_token
  TALKY_ADMIN_TOKEN=$(cat .talky/admin_token)
  export TALKY_ADMIN_TOKEN
fi
# Logs go to a file; the terminal shows the demo's progress and table.
export RUST_LOG=${RUST_LOG:-warn}

# talky-sim runs the demo; talky is built too for `talky calls show ID`.
cargo build --quiet --workspace --bins
bin=target/debug/talky-sim
args=()
[ -n "${KEEP:-}" ] && args+=(--keep-running)
"$bin" demo "${args[@]}" 2>.talky/demo.log || {
  echo "the demo failed; the last lines of .talky/demo.log:" >&2
  tail -20 .talky/demo.log >&2
  exit 1
}
echo "(talky's log: .talky/demo.log; admin token for GET /metrics: .talky/admin_token)"
