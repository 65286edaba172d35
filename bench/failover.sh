#!/usr/bin/env bash
# bench/failover.sh: at a fixed rate through two local SMTP sinks (aiosmtpd), the primary goes
# away mid-run; reports messages lost, duplicated, and how long the messages that were in flight
# took to be delivered by the backup. Two ways of going away, in the same run:
#   kill  the primary is SIGKILLed (connections reset, even in the middle of a transaction)
#   stop  the primary closes its listener and answers 421 to open sessions (a clean shutdown)
# The client, sinks and checks are in bench/failover.py (stdlib Python + aiosmtpd for the sinks).
#
# Usage: bash bench/failover.sh      (env: BENCH_RATE=1000 BENCH_SECONDS=10 BENCH_MODES="kill stop")
source "$(dirname "$0")/lib.sh"
need_pkg python3 python3
if [ ! -x "$ROOT/.venv/bin/python" ] || ! "$ROOT/.venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  log "creating $ROOT/.venv with aiosmtpd"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check aiosmtpd
fi
build
rc=0
for mode in ${BENCH_MODES:-kill stop}; do
  "$ROOT/.venv/bin/python" "$ROOT/bench/failover.py" --bin "$BIN" --dir "$WORK/$mode" --mode "$mode" \
    --sink "$ROOT/crates/postern/tests/support/sink.py" \
    --rate "${BENCH_RATE:-1000}" --seconds "${BENCH_SECONDS:-10}" || rc=1
done
exit $rc
