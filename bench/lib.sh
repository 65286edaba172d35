# Shared helpers for the benchmarks. Source it; it sets ROOT, BIN and a scratch dir in $WORK.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/postern"
WORK="$(mktemp -d /tmp/postern-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need_pkg() { # need_pkg COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
}

build() {
  (cd "$ROOT" && cargo build --release --quiet --bin postern "$@")
}

# start_postern DIR [ENV=VALUE...]: init + serve in DIR on free ports; sets PORT_HTTP, PORT_SMTP, KEY, SERVE_PID.
start_postern() {
  local dir="$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/init.json" ] || env "$@" "$BIN" init --json --dir "$dir" > "$dir/init.json"
  KEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["api_key"])' "$dir/init.json")
  rm -f "$dir/postern-data/serve.json"
  env POSTERN_LOG=warn POSTERN_HTTP_LISTEN=127.0.0.1:0 POSTERN_SMTP_LISTEN=127.0.0.1:0 "$@" \
    "$BIN" --config "$dir/postern.toml" serve > "$dir/serve.log" 2>&1 &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 1 300); do [ -s "$dir/postern-data/serve.json" ] && break; sleep 0.05; done
  PORT_HTTP=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["http"].split(":")[1])' "$dir/postern-data/serve.json")
}

stop_postern() { kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }

# metric NAME_WITH_LABELS: a value from /metrics (0 if absent).
metric() {
  curl -s "http://127.0.0.1:$PORT_HTTP/metrics" | awk -v m="$1" '$1 == m {print $2; found=1} END {if (!found) print 0}'
}

wrk_script() { # wrk_script FILE KEY [DELAY_MS]
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body   = '{"from":"app@example.com","to":["bob@example.org"],"subject":"Benchmark","text":"Hello, this is a benchmark message of ordinary size."}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
LUA
  if [ -n "${3:-}" ]; then echo "function delay() return $3 end" >> "$1"; fi
}

# rps and p99 (ms) from wrk --latency output on stdin
wrk_rps() { awk '/Requests\/sec/ {print $2}'; }
wrk_p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'; }
