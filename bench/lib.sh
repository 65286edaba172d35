# Shared helpers for the benchmarks; each bench/*.sh sources this file.
# Sets ROOT, WORK (a scratch dir removed at exit), BIN (a private copy of the release binary)
# and cleans up every process it was told about (PIDS) at exit.
#
# Environment:
#   BENCH_NO_BUILD=1  use the binaries already in target/release instead of running cargo build
#   BENCH_KEEP=1      keep the scratch dir (logs, databases, outbox) for inspection
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/postern-bench.XXXXXX)"
BIN="$WORK/bin/postern"
PIDS=()
CLEANUP_HOOKS=()

cleanup() {
  local rc=$?
  set +e
  for h in "${CLEANUP_HOOKS[@]:-}"; do [ -n "$h" ] && eval "$h"; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "scratch dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

APT_UPDATED=0
need_pkg() { # need_pkg COMMAND DEBIAN_PACKAGE: installs the package if the command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -q >/dev/null 2>&1 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || die "could not install $2"
}

# build [--example NAME...]: release build (unless BENCH_NO_BUILD=1), then copies the binaries
# into $WORK/bin so that a rebuild by someone else during the run cannot swap them.
build() {
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bin postern $*"
    (cd "$ROOT" && cargo build --release --quiet --bin postern "$@")
  fi
  mkdir -p "$WORK/bin"
  cp "$ROOT/target/release/postern" "$BIN"
  while [ $# -gt 0 ]; do
    if [ "$1" = --example ]; then cp "$ROOT/target/release/examples/$2" "$WORK/bin/$2"; shift; fi
    shift
  done
  log "load average: $(cut -d" " -f1-3 /proc/loadavg) on $(nproc) cores"
  log "postern binary built $(date -r "$ROOT/target/release/postern" '+%F %T'), tree at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes under crates/')"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT
  for _ in $(seq 1 "${2:-100}"); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2)' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listening on 127.0.0.1:$1"
}

# start_postern DIR [ENV=VALUE...]: `postern init` in DIR the first time, then `serve` on free
# ports with the given environment; sets PORT_HTTP, KEY and SERVE_PID.
start_postern() {
  local dir="$1"; shift
  mkdir -p "$dir"
  if [ ! -f "$dir/init.json" ]; then
    env "$@" "$BIN" init --json --dir "$dir" > "$dir/init.json" || die "postern init failed"
  fi
  KEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["api_key"])' "$dir/init.json")
  rm -f "$dir/postern-data/serve.json"
  # One key sends the whole load: the guard's volume floor is raised so it measures its cost on
  # the hot path without holding the benchmark's own traffic.
  env POSTERN_LOG="${POSTERN_LOG:-warn}" POSTERN_HTTP_LISTEN=127.0.0.1:0 POSTERN_SMTP_LISTEN=127.0.0.1:0 \
    POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE="${POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE:-1000000000}" "$@" \
    "$BIN" --config "$dir/postern.toml" serve >> "$dir/serve.log" 2>&1 &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 1 300); do
    [ -s "$dir/postern-data/serve.json" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { tail -20 "$dir/serve.log" >&2; die "postern serve exited"; }
    sleep 0.05
  done
  [ -s "$dir/postern-data/serve.json" ] || { tail -20 "$dir/serve.log" >&2; die "postern did not start"; }
  PORT_HTTP=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["http"].rsplit(":",1)[1])' "$dir/postern-data/serve.json")
}

stop_postern() { # SIGTERM (drain), then wait for the process to exit
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
}

# metric 'NAME{LABELS}': one value from GET /metrics (0 if absent).
metric() {
  curl -sf "http://127.0.0.1:$PORT_HTTP/metrics" \
    | awk -v m="$1" '$1 == m {print $2; found=1} END {if (!found) print 0}'
}
# metrics_snapshot FILE: all of /metrics into FILE
metrics_snapshot() { curl -sf "http://127.0.0.1:$PORT_HTTP/metrics" > "$1"; }
# from_snapshot FILE 'NAME{LABELS}'
from_snapshot() { awk -v m="$2" '$1 == m {print $2; found=1} END {if (!found) print 0}' "$1"; }

# PostgreSQL on 127.0.0.1:5432 (trust auth), started if it is not running.
pg_ready() {
  need_pkg psql postgresql-client
  if ! psql -qtA -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    sleep 1
  fi
  psql -qtA -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null || die "PostgreSQL is not reachable on 127.0.0.1"
}
pg_createdb() { PGOPTIONS='-c client_min_messages=warning' psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }
pg_dropdb() { psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 || true; }

# openloop: the fixed-rate load generator (bench/openloop.rs), compiled with rustc.
build_openloop() {
  OPENLOOP="$WORK/bin/openloop"
  mkdir -p "$WORK/bin"
  rustc -O --edition 2024 "$ROOT/bench/openloop.rs" -o "$OPENLOOP"
}

# The message every HTTP benchmark posts (about 1 KiB of text, like smtp-source -l 1024).
# settle: before a measured phase, the disk finishes writing back what earlier phases left in
# the page cache (another node's outbox and database, the burst of the same node's full-load
# phase), and the node gets a second to copy its log into the database, so that a phase is
# not charged for the write-back of the one before it.
settle() { sync; sleep 1; }

write_body() { # write_body FILE
  python3 - "$1" <<'PY'
import json, sys
text = ("Hello, this is a benchmark message of ordinary size. " * 20)[:1000]
json.dump({"from": "app@example.com", "to": ["bob@example.org"], "subject": "Benchmark", "text": text},
          open(sys.argv[1], "w"))
PY
}

wrk_script() { # wrk_script FILE BODY_FILE KEY
  local body; body=$(cat "$2")
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body   = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $3"
LUA
}

# Figures from `wrk --latency` output on stdin.
wrk_rps() { awk '/^Requests\/sec/ {print $2}'; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses/ {n=$NF} END {print n+0}'; }
wrk_requests() { awk '/requests in/ {print $1}'; }
wrk_sockerr() { awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10; f=1} END {if (!f) print 0}'; }
wrk_p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'; }
kv() { # kv KEY < "a=1 b=2"
  tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'
}
calc() { python3 -c "print($*)"; }
