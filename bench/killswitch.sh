#!/usr/bin/env bash
# bench/killswitch.sh: how fast `postern pause --all` stops new provider calls. A running
# `postern serve` relays to a local SMTP sink that timestamps the start of every provider call
# (MAIL FROM); a client streams sends over HTTP; then `postern pause --all` is run as an
# operator would. Reported per trial: the time from launching the command to the start of the
# last provider call after it (0 when none started after it), and how many calls started after
# the command. Target: <= 100 ms. Several trials, then median and max.
# The client, sink and timing are in bench/killswitch.py (stdlib Python + aiosmtpd).
#
# Usage: bash bench/killswitch.sh   (env: BENCH_TRIALS=7 BENCH_RATE=400; BENCH_BIN=PATH runs that
#        binary instead of building the release one)
source "$(dirname "$0")/lib.sh"
need_pkg python3 python3
if [ ! -x "$ROOT/.venv/bin/python" ] || ! "$ROOT/.venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  log "creating $ROOT/.venv with aiosmtpd"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check aiosmtpd
fi
if [ -n "${BENCH_BIN:-}" ]; then
  mkdir -p "$WORK/bin"; cp "$BENCH_BIN" "$BIN"
  log "using $BENCH_BIN; load average: $(cut -d" " -f1-3 /proc/loadavg) on $(nproc) cores"
else
  build
fi
"$ROOT/.venv/bin/python" "$ROOT/bench/killswitch.py" --bin "$BIN" --dir "$WORK/ks" \
  --trials "${BENCH_TRIALS:-7}" --rate "${BENCH_RATE:-400}"
