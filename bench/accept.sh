#!/usr/bin/env bash
# bench/accept.sh: durable HTTP accepts per second.
#
# Postern on SQLite, then on PostgreSQL (each a fresh `postern init`, delivery ON into the
# default file provider in a throwaway outbox), then a bare axum JSON handler and the cheapest
# durable handler on a file, on SQLite and on Postern's messages table (examples/durable_floor.rs), all measured with the
# same wrk command in the same run. Then p99 latency at half of each backend's maximum, with
# an open-loop fixed-rate generator (bench/openloop.rs). See bench/README.md.
#
# Usage: bash bench/accept.sh            (env: BENCH_SECS=12 BENCH_CONNS=128 BENCH_THREADS=2)
#
# 128 connections: a group commit answers a batch only after its flush (~2 ms on this disk),
# so with few connections the rate is bound by connections / flush time rather than by the
# server (32 connections cap it near 32 / 2.5 ms whatever the server does). BENCH_CONNS=32
# shows that bound.
source "$(dirname "$0")/lib.sh"
SECS="${BENCH_SECS:-12}"; CONNS="${BENCH_CONNS:-128}"; THREADS="${BENCH_THREADS:-2}"
OL_CONNS=64    # connections of the open-loop generator (enough to never run out at half load)

need_pkg wrk wrk
need_pkg curl curl
pg_ready
build --example bare_axum --example durable_floor
build_openloop
write_body "$WORK/body.json"

# Group commits per flush of SQLite's log (one flush covers every commit made before it began);
# "-" where the commit is its own flush (PostgreSQL).
commits_per_flush() { # commits_per_flush METRICS_FILE
  local f; f=$(from_snapshot "$1" postern_accept_log_flushes_total)
  if [ "$(calc "int($f)")" = 0 ]; then echo -; else
    calc "round($(from_snapshot "$1" postern_accept_commit_batch_size_count) / $f, 2)"; fi
}

# The server's CPU time (user + system, all threads) per request over a wrk run: the figure that
# explains a ratio, since the server and wrk share two cores.
cpu_ticks() { # cpu_ticks PID: user + system clock ticks of a live process, all its threads
  [ -r "/proc/$1/stat" ] || die "process $1 is gone (see its log under $WORK)"
  awk '{print $14 + $15}' "/proc/$1/stat"
}
us_per_req() { # us_per_req TICKS_BEFORE TICKS_AFTER REQUESTS
  calc "round(($2 - $1) * 1e6 / $(getconf CLK_TCK) / max(1, $3), 1)"
}

# wrk_row NAME PID LUA URL: lets the disk settle, runs wrk on URL (saved as wrk-NAME.txt) and
# fills NAME's RPS, P99, NON2XX, SOCKERR and CPU (of process PID over the run).
wrk_row() {
  local name="$1" pid="$2" lua="$3" url="$4" t0 out
  settle; t0=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s "$lua" --latency "$url")
  echo "$out" > "$WORK/wrk-$name.txt"
  CPU[$name]=$(us_per_req "$t0" "$(cpu_ticks "$pid")" "$(echo "$out" | wrk_requests)")
  RPS[$name]=$(echo "$out" | wrk_rps); P99[$name]=$(echo "$out" | wrk_p99)
  NON2XX[$name]=$(echo "$out" | wrk_non2xx); SOCKERR[$name]=$(echo "$out" | wrk_sockerr)
}

declare -A CPU RPS P99 NON2XX SOCKERR ACCEPTED DELIVERED BACKLOG BATCH PERFLUSH
declare -A H_CPU H_OFFERED H_RPS H_P50 H_P99 H_P999 H_MAX H_NON2XX H_ERR
DBS=()
CLEANUP_HOOKS+=('for d in "${DBS[@]:-}"; do [ -n "$d" ] && pg_dropdb "$d"; done')

openloop_at() { # openloop_at NAME PORT RATE [HEADER...]: fills the H_* figures for NAME (server: $MEASURED_PID)
  local name="$1" port="$2" rate="$3"; shift 3
  local count; count=$(calc "int($rate * $SECS)")
  settle
  local t0; t0=$(cpu_ticks "$MEASURED_PID")
  local out; out=$("$OPENLOOP" "127.0.0.1:$port" /v1/messages "$rate" "$count" "$OL_CONNS" "$WORK/body.json" "$@")
  H_CPU[$name]=$(us_per_req "$t0" "$(cpu_ticks "$MEASURED_PID")" "$count")
  echo "  open loop: $out" >&2
  H_OFFERED[$name]=$(echo "$out" | kv offered_rps); H_RPS[$name]=$(echo "$out" | kv achieved_rps)
  H_P50[$name]=$(echo "$out" | kv p50_ms); H_P99[$name]=$(echo "$out" | kv p99_ms)
  H_P999[$name]=$(echo "$out" | kv p999_ms); H_MAX[$name]=$(echo "$out" | kv max_ms)
  H_NON2XX[$name]=$(echo "$out" | kv non2xx); H_ERR[$name]=$(echo "$out" | kv errors)
}

for backend in sqlite postgres; do
  extra=()
  if [ "$backend" = postgres ]; then
    db="postern_bench_accept_$$"; DBS+=("$db"); pg_createdb "$db"
    extra=(POSTERN_DATABASE_URL="postgres://postgres@127.0.0.1/$db")
  fi
  log "postern on $backend: init in a fresh dir, serve with delivery on (file provider)"
  start_postern "$WORK/$backend" "${extra[@]}"
  wrk_script "$WORK/$backend.lua" "$WORK/body.json" "$KEY"
  url="http://127.0.0.1:$PORT_HTTP/v1/messages"
  # One request by hand first: a wrong key or body would otherwise show up only as non-2xx.
  code=$(curl -s -o "$WORK/first.json" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data-binary @"$WORK/body.json" "$url")
  [ "$code" = 202 ] || die "first POST answered $code: $(cat "$WORK/first.json")"
  log "wrk -t$THREADS -c$CONNS -d${SECS}s on postern ($backend)"
  wrk_row "$backend" "$SERVE_PID" "$WORK/$backend.lua" "$url"
  metrics_snapshot "$WORK/metrics-$backend.txt"
  m="$WORK/metrics-$backend.txt"
  ACCEPTED[$backend]=$(from_snapshot "$m" 'postern_messages_accepted_total{source="http"}')
  DELIVERED[$backend]=$(from_snapshot "$m" 'postern_queue_messages{status="delivered"}')
  BACKLOG[$backend]=$(calc "int(${ACCEPTED[$backend]} - ${DELIVERED[$backend]})")
  BATCH[$backend]=$(calc "round($(from_snapshot "$m" postern_accept_commit_batch_size_sum) / max(1, $(from_snapshot "$m" postern_accept_commit_batch_size_count)), 1)")
  PERFLUSH[$backend]=$(commits_per_flush "$m")
  log "$backend: ${RPS[$backend]} req/s, non-2xx ${NON2XX[$backend]}, socket errors ${SOCKERR[$backend]}; accepted ${ACCEPTED[$backend]}, delivered ${DELIVERED[$backend]}, backlog ${BACKLOG[$backend]}"
  half=$(calc "round(${RPS[$backend]} / 2)")
  log "open loop at $half req/s (half of max) for ${SECS}s on postern ($backend)"
  MEASURED_PID=$SERVE_PID openloop_at "$backend" "$PORT_HTTP" "$half" "Authorization: Bearer $KEY"
  stop_postern
  if [ "$backend" = postgres ]; then pg_dropdb "$db"; fi

  # The same on an accept-only node ([queue] deliver = false): what the accept path alone does,
  # to show how much the concurrent delivery above costs.
  extra=()
  if [ "$backend" = postgres ]; then
    db="postern_bench_accept_off_$$"; DBS+=("$db"); pg_createdb "$db"
    extra=(POSTERN_DATABASE_URL="postgres://postgres@127.0.0.1/$db")
  fi
  start_postern "$WORK/$backend-off" POSTERN_QUEUE_DELIVER=false "${extra[@]}"
  wrk_script "$WORK/$backend-off.lua" "$WORK/body.json" "$KEY"
  log "wrk -t$THREADS -c$CONNS -d${SECS}s on postern ($backend), accept-only node"
  t="$backend-off"
  wrk_row "$t" "$SERVE_PID" "$WORK/$t.lua" "http://127.0.0.1:$PORT_HTTP/v1/messages"
  metrics_snapshot "$WORK/metrics-$t.txt"; m="$WORK/metrics-$t.txt"
  ACCEPTED[$t]=$(from_snapshot "$m" 'postern_messages_accepted_total{source="http"}'); DELIVERED[$t]=0
  BACKLOG[$t]=${ACCEPTED[$t]}
  BATCH[$t]=$(calc "round($(from_snapshot "$m" postern_accept_commit_batch_size_sum) / max(1, $(from_snapshot "$m" postern_accept_commit_batch_size_count)), 1)")
  PERFLUSH[$t]=$(commits_per_flush "$m")
  log "$t: ${RPS[$t]} req/s, non-2xx ${NON2XX[$t]}, socket errors ${SOCKERR[$t]}"
  half=$(calc "round(${RPS[$t]} / 2)")
  log "open loop at $half req/s (half of max) for ${SECS}s on postern ($t)"
  MEASURED_PID=$SERVE_PID openloop_at "$t" "$PORT_HTTP" "$half" "Authorization: Bearer $KEY"
  stop_postern
  if [ "$backend" = postgres ]; then pg_dropdb "$db"; fi
done

BARE_PORT=$(free_port)
"$WORK/bin/bare_axum" "$BARE_PORT" 2>/dev/null & BARE_PID=$!; PIDS+=("$BARE_PID")
wait_port "$BARE_PORT"
log "wrk -t$THREADS -c$CONNS -d${SECS}s on the bare axum handler"
wrk_row bare "$BARE_PID" "$WORK/sqlite.lua" "http://127.0.0.1:$BARE_PORT/v1/messages"
# The generator's own floor: the bare handler at the same rate as Postern-on-SQLite's half load.
log "open loop at ${H_OFFERED[sqlite-off]} req/s on the bare handler (the method's floor)"
MEASURED_PID=$BARE_PID openloop_at bare "$BARE_PORT" "${H_OFFERED[sqlite-off]}"
kill "$BARE_PID"; wait "$BARE_PID" 2>/dev/null || true

# Three more references: the cheapest durable accept (durable_floor.rs: parse, append every body
# that arrived during the last flush with one write, fdatasync, answer), on a file, on an SQLite
# table of (id, body), and as a row of Postern's own `messages` table with its indexes. They
# tell what a durable design reaches on this machine in this run, and split the gap to Postern:
# the disk, SQLite, the message table, and Postern's own work per message (auth, checks, MIME,
# guard, counts).
for t in floor-file floor-sqlite floor-messages; do
  port=$(free_port)
  case $t in floor-sqlite) mode=(--sqlite);; floor-messages) mode=(--sqlite-messages);; *) mode=();; esac
  "$WORK/bin/durable_floor" "${mode[@]}" "127.0.0.1:$port" "$WORK/$t.data" 2>/dev/null & FLOOR_PID=$!; PIDS+=("$FLOOR_PID")
  wait_port "$port"
  log "wrk -t$THREADS -c$CONNS -d${SECS}s on the durable floor (${t#floor-})"
  wrk_row "$t" "$FLOOR_PID" "$WORK/sqlite.lua" "http://127.0.0.1:$port/v1/messages"
  half=$(calc "round(${RPS[$t]} / 2)")
  log "open loop at $half req/s (half of its max) on the durable floor (${t#floor-})"
  MEASURED_PID=$FLOOR_PID openloop_at "$t" "$port" "$half"
  kill "$FLOOR_PID"; wait "$FLOOR_PID" 2>/dev/null || true
  rm -f "$WORK/$t.data"*
done

# The disk's own floor for a durable answer: one 8 KiB append + fdatasync at a time, in the
# scratch dir (the same filesystem the databases used), the way one commit's flush is.
FSYNC=$(python3 - "$WORK/fsync.probe" <<'PY2'
import os, sys, time
f = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
lat = []
for _ in range(400):
    t = time.perf_counter(); os.write(f, b"x" * 8192); os.fdatasync(f); lat.append(time.perf_counter() - t)
lat.sort()
print(f"p50_ms={lat[len(lat)//2]*1000:.2f} p99_ms={lat[int(len(lat)*0.99)]*1000:.2f} max_ms={lat[-1]*1000:.2f}")
PY2
)
log "one append + fdatasync at a time: $FSYNC"

echo
echo "== accept: POST /v1/messages, wrk -t$THREADS -c$CONNS -d${SECS}s, ~1 KiB JSON body, same machine, same run =="
printf "%-24s %11s %9s %8s %9s %7s %9s | %9s %9s %8s %7s %7s\n" target "req/s" "ratio" "cpu us" "p99 ms" non-2xx "sock err" accepted delivered backlog "msg/commit" "commit/flush"
for t in sqlite postgres bare floor-file floor-sqlite floor-messages sqlite-off postgres-off; do
  case $t in bare) name="bare axum";; floor-*) name="durable floor (${t#floor-})";; *-off) name="postern (${t%-off}) *";; *) name="postern ($t)";; esac
  if [ "$t" = bare ] || [ "${t#floor-}" != "$t" ]; then extra="$(printf "%9s %9s %8s %7s %7s" - - - - -)"; else
    extra="$(printf "%9s %9s %8s %7s %7s" "${ACCEPTED[$t]}" "${DELIVERED[$t]}" "${BACKLOG[$t]}" "${BATCH[$t]}" "${PERFLUSH[$t]}")"; fi
  printf "%-24s %11s %9s %8s %9s %7s %9s | %s\n" "$name" "${RPS[$t]}" "$(calc "round(${RPS[$t]} / ${RPS[bare]}, 3)")" "${CPU[$t]}" \
    "${P99[$t]}" "${NON2XX[$t]}" "${SOCKERR[$t]}" "$extra"
done
echo "(ratio = req/s / bare axum req/s; cpu us = the server's CPU time per request during wrk, all its threads;"
echo " accepted/delivered/backlog = Postern's own counters when wrk ended:"
echo " delivery into the file provider ran concurrently with the accepts, on the same 2 cores and disk."
echo " * = accept-only node, [queue] deliver = false: the accept path alone, for comparison;"
echo " durable floor = examples/durable_floor.rs: parse, group-append to a file, an SQLite table of (id, body),"
echo " or Postern's messages table with its indexes (messages), flush, answer)"
echo
echo "== latency at half of the maximum: open loop, fixed rate, ${SECS}s, $OL_CONNS connections, latency from due time =="
printf "%-24s %10s %10s %8s %8s %8s %9s %9s %7s %7s\n" target "offered/s" "achieved/s" "cpu us" "p50 ms" "p99 ms" "p99.9 ms" "max ms" non-2xx errors
for t in sqlite postgres sqlite-off postgres-off bare floor-file floor-sqlite floor-messages; do
  case $t in bare) name="bare axum (floor)";; floor-*) name="durable floor (${t#floor-})";; *-off) name="postern (${t%-off}) *";; *) name="postern ($t)";; esac
  printf "%-24s %10s %10s %8s %8s %8s %9s %9s %7s %7s\n" "$name" "${H_OFFERED[$t]}" "${H_RPS[$t]}" "${H_CPU[$t]}" "${H_P50[$t]}" \
    "${H_P99[$t]}" "${H_P999[$t]}" "${H_MAX[$t]}" "${H_NON2XX[$t]}" "${H_ERR[$t]}"
done
echo "disk floor (one 8 KiB append + fdatasync at a time, same filesystem): $FSYNC"
bad=0
for t in sqlite postgres bare floor-file floor-sqlite floor-messages sqlite-off postgres-off; do
  [ "${NON2XX[$t]}" = 0 ] && [ "${SOCKERR[$t]}" = 0 ] && [ "${H_NON2XX[$t]:-0}" = 0 ] && [ "${H_ERR[$t]:-0}" = 0 ] || bad=1
done
echo
if [ "$bad" = 0 ]; then echo "accept: every answer was 2xx, no socket errors"; else echo "accept: FAIL: some answers were not 2xx or had socket errors (see above)"; exit 1; fi
