#!/usr/bin/env bash
# bench/detector.sh: the guard's cost per message on the hot path.
#
# Runs crates/postern/examples/detector.rs (release): the full per-message observe path with
# every signal (key check: access; accept: volume, novelty and spread, SimHash content, rate
# denominators; delivery outcome: provider and key rates) over BENCH_MESSAGES pre-built
# messages from 200 keys of 50 tenants, next to an empty function call in the same run.
# Three runs; read the full path's ns/message against the 2,000 ns target. See bench/README.md.
#
# Usage: bash bench/detector.sh            (env: BENCH_MESSAGES=200000)
source "$(dirname "$0")/lib.sh"
N="${BENCH_MESSAGES:-200000}"
build --example detector
for run in 1 2 3; do
  log "run $run of 3"
  "$WORK/bin/detector" "$N"
done
