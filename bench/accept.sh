#!/usr/bin/env bash
# Durable HTTP accepts per second: Postern on SQLite and on PostgreSQL, beside a bare axum
# handler measured in the same run, then p99 latency at half of Postern's maximum rate.
# Usage: bench/accept.sh [SECONDS] [CONNECTIONS]
source "$(dirname "$0")/lib.sh"
DUR="${1:-10}"; CONNS="${2:-64}"
need_pkg wrk wrk
build --example bare_axum

run_wrk() { wrk -t2 -c"$1" -d"${DUR}s" -s "$2" --latency "$3"; }

declare -A RPS P99 BATCH HALF_RPS HALF_P99
for backend in sqlite postgres; do
  extra=()
  if [ "$backend" = postgres ]; then
    db="postern_bench_$$"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
    extra=(POSTERN_DATABASE_URL="postgres://postgres@127.0.0.1/$db")
  fi
  # An accept-only node: what is measured is the durable accept path alone.
  start_postern "$WORK/$backend" POSTERN_QUEUE_DELIVER=false "${extra[@]}"
  wrk_script "$WORK/post.lua" "$KEY"
  out=$(run_wrk "$CONNS" "$WORK/post.lua" "http://127.0.0.1:$PORT_HTTP/v1/messages")
  echo "$out" | grep -qE "Non-2xx" && { echo "ERROR: non-2xx answers on $backend:"; echo "$out"; exit 1; }
  RPS[$backend]=$(echo "$out" | wrk_rps)
  P99[$backend]=$(echo "$out" | wrk_p99)
  batches=$(metric postern_accept_commit_batch_size_count); msgs=$(metric postern_accept_commit_batch_size_sum)
  BATCH[$backend]=$(python3 -c "print(round($msgs/max($batches,1),1))")
  stored=$(metric 'postern_queue_messages{status="queued"}')
  echo "$backend: ${RPS[$backend]} accepts/s, p99 ${P99[$backend]} ms, ${BATCH[$backend]} messages per commit, $stored stored"
  # p99 at half the maximum rate: each connection waits between requests so that the offered
  # load is about half of what was just measured.
  # The first short run calibrates the delay (latency adds to it), the second measures.
  half=$(python3 -c "print(${RPS[$backend]}/2)")
  delay=$(python3 -c "print(max(1, int(32*1000/$half)))")
  wrk_script "$WORK/half.lua" "$KEY" "$delay"
  got=$(wrk -t2 -c32 -d3s -s "$WORK/half.lua" "http://127.0.0.1:$PORT_HTTP/v1/messages" | wrk_rps)
  delay=$(python3 -c "print(max(1, int($delay * $got / $half)))")
  wrk_script "$WORK/half.lua" "$KEY" "$delay"
  out=$(run_wrk 32 "$WORK/half.lua" "http://127.0.0.1:$PORT_HTTP/v1/messages")
  HALF_RPS[$backend]=$(echo "$out" | wrk_rps); HALF_P99[$backend]=$(echo "$out" | wrk_p99)
  echo "$backend at half load: ${HALF_RPS[$backend]} accepts/s, p99 ${HALF_P99[$backend]} ms"
  stop_postern
  if [ "$backend" = postgres ]; then psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $db" >/dev/null; fi
done

"$ROOT/target/release/examples/bare_axum" 127.0.0.1:18099 & PIDS+=($!)
sleep 0.5
out=$(run_wrk "$CONNS" "$WORK/post.lua" "http://127.0.0.1:18099/v1/messages")
BARE=$(echo "$out" | wrk_rps)

echo
echo "== accept benchmark: wrk -t2 -c$CONNS, ${DUR}s each, same machine, same run =="
printf "%-22s %12s %10s\n" "target" "req/s" "ratio"
printf "%-22s %12s %10s\n" "bare axum handler" "$BARE" "1.00"
for b in sqlite postgres; do
  printf "%-22s %12s %10s\n" "postern ($b)" "${RPS[$b]}" "$(python3 -c "print(round(${RPS[$b]}/$BARE,2))")"
done
echo
printf "%-22s %12s %12s %14s\n" "p99 accept latency" "full: ms" "half: req/s" "half: p99 ms"
for b in sqlite postgres; do
  printf "%-22s %12s %12s %14s\n" "postern ($b)" "${P99[$b]}" "${HALF_RPS[$b]}" "${HALF_P99[$b]}"
done
