#!/usr/bin/env bash
# Crash safety at scale: 10,000 messages submitted over HTTP while the server is killed with
# SIGKILL twice and restarted; then every accepted message must be in the outbox exactly once
# (by Message-ID) and no refused one at all. Same check as tests/crash.rs, at full size.
# Usage: bench/crash.sh [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q aiosmtpd; }
POSTERN_TEST_CRASH_MESSAGES="${1:-10000}" cargo test --release -p postern --test crash -- --nocapture 2>&1 \
  | grep -E "^crash:|test result|panicked|assert"
