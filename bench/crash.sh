#!/usr/bin/env bash
# bench/crash.sh: 10,000 messages submitted over HTTP while the server is SIGKILLed twice and
# restarted; then every message that got a 202 must be in the outbox exactly once and nothing
# else. The client and the checks are in bench/crash.py (stdlib Python). Exits 1 on FAIL.
#
# Usage: bash bench/crash.sh            (env: BENCH_MESSAGES=10000 BENCH_CLIENTS=16 BENCH_SEED=N)
source "$(dirname "$0")/lib.sh"
need_pkg python3 python3
build
seed=()
[ -n "${BENCH_SEED:-}" ] && seed=(--seed "$BENCH_SEED")
python3 "$ROOT/bench/crash.py" --bin "$BIN" --dir "$WORK/crash" \
  --messages "${BENCH_MESSAGES:-10000}" --clients "${BENCH_CLIENTS:-16}" "${seed[@]}"
