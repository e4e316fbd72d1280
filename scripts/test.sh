#!/usr/bin/env bash
# `make test` after the set-up: fmt check, clippy -D warnings, every test,
# then the short schemathesis run against a live server (scripts/fuzz.sh
# --short; TALKY_SKIP_FUZZ=1 skips it), and one closing line that sums the
# test results of all test binaries and says how the fuzz run went.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
fuzz_log=$(mktemp)
trap 'rm -f "$log" "$fuzz_log"' EXIT
# The process tests (lifetime, outage, load_smoke) run `talky-sim sim`
# beside `talky serve`; cargo builds only the tested package's binary, so
# every binary of the workspace is built (fresh) first.
cargo build --workspace --bins --quiet
set +e
cargo test --workspace --quiet 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "${TALKY_SKIP_FUZZ:-0}" = 1 ]; then
  fuzz="fuzz: skipped"
else
  bash scripts/fuzz.sh --short 2>&1 | tee "$fuzz_log"
  fuzz_status=${PIPESTATUS[0]}
  if [ "$fuzz_status" -eq 0 ]; then
    fuzz="fuzz: 0 failures"
  else
    fuzz="fuzz: FAILED (exit $fuzz_status)"
    [ "$status" -eq 0 ] && status=$fuzz_status
  fi
fi
set -e
awk -v fuzz="$fuzz" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed; %s\n", p, f, fuzz }' "$log"
exit "$status"
