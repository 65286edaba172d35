#!/usr/bin/env bash
# Authenticating one send request: cached key lookup + SHA-256 hash check + policy checks,
# beside an empty async call in the same run; plus the hash comparison's time for a wrong key
# differing in its first vs its last byte (constant time: ratio ~1). Target: <= 20 us/request.
# BENCH_PROFILE=dev runs the debug build (quicker to build; slower figures).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${BENCH_PROFILE:-release}" = dev ]; then
  cargo run --quiet -p postern --example auth_bench
else
  cargo run --quiet --release -p postern --example auth_bench
fi
