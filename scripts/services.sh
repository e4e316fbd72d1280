#!/usr/bin/env bash
# Brings this machine to the state talky's tests and demo need, and does
# nothing (silently) when it is already there:
#   - Debian packages: libopus-dev, opus-tools (opusinfo, for the recording
#     tests), pkg-config, postgresql, redis-server, and python3-venv + curl
#     (the schemathesis fuzz run of `make test` / `make fuzz`, which makes
#     its own venv under .talky/), and chromium + chromium-driver (its
#     chromedriver) + fonts-dejavu-core for the console's browser tests
#     (tests/it/console_browser.rs; the fonts so screenshots show text)
#   - PostgreSQL running on loopback, with a `talky` role (CREATEDB, for the
#     per-test databases) and a `talky` database
#   - Redis running on loopback
#   - moto (PyPI, in its own venv under .talky/moto-venv) serving an
#     S3-compatible endpoint on 127.0.0.1:${TALKY_MOTO_PORT:-9000}, for the
#     object-storage recording tests (which create their own buckets)
# Used by `make test`, `make demo` and `.ci/run`.
set -euo pipefail

PG_USER=${TALKY_PG_USER:-talky}
PG_PASSWORD=${TALKY_PG_PASSWORD:-talky}
PG_DB=${TALKY_PG_DB:-talky}
PG_PORT=${TALKY_PG_PORT:-5432}
REDIS_PORT=${TALKY_REDIS_PORT:-6379}

say() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- packages ----------------------------------------------------------------
missing=()
for pkg in libopus-dev opus-tools pkg-config postgresql redis-server python3-venv curl \
  chromium chromium-driver fonts-dejavu-core; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null
  # policy-rc.d keeps apt from trying to start services through an init
  # system this machine may not have; we start them ourselves below.
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PostgreSQL --------------------------------------------------------------
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}' | grep -qx "$pg_version/main"; then
  say "creating PostgreSQL $pg_version cluster"
  (cd / && as_root pg_createcluster "$pg_version" main --port "$PG_PORT" >/dev/null)
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  say "starting PostgreSQL $pg_version"
  (cd / && as_root pg_ctlcluster "$pg_version" main start)
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { say "PostgreSQL did not come up on 127.0.0.1:$PG_PORT"; exit 1; }

# From / so that psql, running as postgres, does not warn about a cwd it
# may not enter.
psql_admin() { (cd / && as_root runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"); }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
  say "creating role $PG_USER"
  psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$PG_PASSWORD'" >/dev/null
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != "1" ]; then
  say "creating database $PG_DB"
  psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\"" >/dev/null
fi

# --- Redis -------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root chown redis:redis /var/lib/redis /var/log/redis 2>/dev/null || true
  (cd / && as_root runuser -u redis -- redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir /var/lib/redis --logfile /var/log/redis/talky-redis.log >/dev/null)
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 || { say "Redis did not come up"; exit 1; }
fi

# --- moto (S3-compatible object storage for the recording tests) -----------
MOTO_PORT=${TALKY_MOTO_PORT:-9000}
MOTO_VENV=${TALKY_MOTO_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.talky/moto-venv}
if ! curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/"; then
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    say "installing moto into $MOTO_VENV"
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6' >/dev/null
  fi
  say "starting moto on 127.0.0.1:$MOTO_PORT"
  mkdir -p "$(dirname "$MOTO_VENV")"
  # The whole subshell is detached from our stdout/stderr: a caller that reads
  # our output to EOF must not wait for moto to exit.
  (cd / && exec setsid nohup "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT") \
    >"$(dirname "$MOTO_VENV")/moto.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" && break
    sleep 0.2
  done
  curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" || { say "moto did not come up on 127.0.0.1:$MOTO_PORT"; exit 1; }
fi
