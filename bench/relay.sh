#!/usr/bin/env bash
# bench/relay.sh: delivery throughput into Postfix's smtp-sink, Postern beside Postfix.
#
# One smtp-sink (run with -c, so it counts every message it receives) serves three
# measurements in the same run, each of N messages of about 1 KiB:
#   1. Postern, drain: N messages are queued on an accept-only node ([queue] deliver = false),
#      then a delivering node is started on the same data dir; the clock runs from starting it
#      until the sink has received all N and Postern's queue shows all N delivered.
#   2. Postern, end to end: a fresh delivering node; the clock runs from the first HTTP submission
#      (N as fast as 32 connections go) until the sink has all N and Postern shows all N delivered.
#   3. Postfix, end to end, as shared/PEERS.md sets it up: smtp-source -s 20 -m N -l 1024 into
#      Postfix, which relays to the same sink; the clock runs from starting smtp-source until the
#      sink has all N and Postfix's queue is empty.
# (2) and (3) are like for like: each includes taking the messages in. See bench/README.md.
#
# Usage: bash bench/relay.sh            (env: BENCH_MESSAGES=20000)
source "$(dirname "$0")/lib.sh"
N="${BENCH_MESSAGES:-20000}"
SUBMIT_CONNS=32

need_pkg smtp-sink postfix
need_pkg curl curl
build
build_openloop
write_body "$WORK/body.json"

SINK_PORT=$(free_port)
smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 256 > "$WORK/sink.out" 2>&1 & PIDS+=($!)
wait_port "$SINK_PORT"
# Messages the sink has received so far (its -c counter line, last one written).
sink_count() { tr '\r' '\n' < "$WORK/sink.out" | awk '/mesg=/ {for (i=1;i<=NF;i++) if ($i ~ /^mesg=/) {sub("mesg=","",$i); n=$i}} END {print n+0}'; }
now() { date +%s.%N; }

relay=(POSTERN_PROVIDERS_RELAY_TYPE=smtp POSTERN_PROVIDERS_RELAY_HOST=127.0.0.1
       POSTERN_PROVIDERS_RELAY_PORT="$SINK_PORT" POSTERN_PROVIDERS_RELAY_MAX_CONNECTIONS=32
       POSTERN_ROUTES_DEFAULT='["relay"]' POSTERN_QUEUE_CONCURRENCY=128)

submit() { # submit N: N POSTs to the running Postern, as fast as $SUBMIT_CONNS connections go
  local out; out=$("$OPENLOOP" "127.0.0.1:$PORT_HTTP" /v1/messages 0 "$1" "$SUBMIT_CONNS" "$WORK/body.json" "Authorization: Bearer $KEY")
  log "  submitted: $out"
  [ "$(echo "$out" | kv non2xx)" = 0 ] && [ "$(echo "$out" | kv errors)" = 0 ] || die "some submissions were not accepted: $out"
  [ "$(echo "$out" | kv requests)" = "$1" ] || die "not every submission was answered: $out"
}

# wait_postern_delivered SINK_BEFORE DIR: until the sink has N more messages and Postern counts N
# delivered; fails at once on a message that is deferred, bounced or expired.
wait_postern_delivered() {
  local before="$1" dir="$2" deadline=$(( $(date +%s) + 900 )) m="$WORK/m.txt"
  while :; do
    metrics_snapshot "$m" || true
    local d bad
    d=$(from_snapshot "$m" 'postern_queue_messages{status="delivered"}')
    bad=$(calc "int($(from_snapshot "$m" 'postern_queue_messages{status="deferred"}') + $(from_snapshot "$m" 'postern_queue_messages{status="bounced"}') + $(from_snapshot "$m" 'postern_queue_messages{status="expired"}'))")
    [ "$bad" = 0 ] || { grep . "$m" | grep postern_queue_messages >&2; tail -5 "$dir/serve.log" >&2; die "Postern deferred, bounced or expired $bad messages"; }
    [ "$d" -ge "$N" ] && [ $(( $(sink_count) - before )) -ge "$N" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || die "Postern delivered only $d of $N in 900 s"
    sleep 0.1
  done
}

# --- 1. Postern, drain of a pre-filled queue
log "postern drain: filling the queue with $N messages on an accept-only node"
start_postern "$WORK/drain" POSTERN_QUEUE_DELIVER=false "${relay[@]}"
submit "$N"
[ "$(metric 'postern_queue_messages{status="queued"}')" = "$N" ] || die "expected $N queued"
stop_postern
log "postern drain: starting a delivering node on the same data dir"
before=$(sink_count)
t0=$(now)
start_postern "$WORK/drain" "${relay[@]}"
wait_postern_delivered "$before" "$WORK/drain"
t1=$(now)
stop_postern
DRAIN_SECS=$(calc "round($t1 - $t0, 2)"); DRAIN_RATE=$(calc "round($N / ($t1 - $t0))")
DRAIN_SINK=$(( $(sink_count) - before ))
log "postern drain: $N in $DRAIN_SECS s = $DRAIN_RATE msg/s (sink received $DRAIN_SINK)"

# --- 2. Postern, end to end
log "postern end to end: fresh node, submitting $N over HTTP while it delivers"
start_postern "$WORK/e2e" "${relay[@]}"
before=$(sink_count)
t0=$(now)
submit "$N"
t_sub=$(now)
wait_postern_delivered "$before" "$WORK/e2e"
t1=$(now)
stop_postern
E2E_SECS=$(calc "round($t1 - $t0, 2)"); E2E_RATE=$(calc "round($N / ($t1 - $t0))")
E2E_SUBMIT=$(calc "round($N / ($t_sub - $t0))")
E2E_SINK=$(( $(sink_count) - before ))
log "postern end to end: $N in $E2E_SECS s = $E2E_RATE msg/s (submission alone $E2E_SUBMIT msg/s; sink received $E2E_SINK)"

# --- 3. Postfix: smtp-source → Postfix → smtp-sink, as shared/PEERS.md sets it up
if postfix status >/dev/null 2>&1; then die "Postfix is already running here; stop it (postfix stop) and run again"; fi
cp /etc/postfix/main.cf "$WORK/main.cf.orig"; cp /etc/postfix/master.cf "$WORK/master.cf.orig"
CLEANUP_HOOKS+=('postfix stop >/dev/null 2>&1; cp "$WORK/main.cf.orig" /etc/postfix/main.cf; cp "$WORK/master.cf.orig" /etc/postfix/master.cf')
PF_PORT=$(free_port)
postconf -e "inet_interfaces = loopback-only" "mydestination =" "relayhost = [127.0.0.1]:$SINK_PORT" \
  "mynetworks = 127.0.0.0/8" "maillog_file = /var/log/postfix.log" "myhostname = bench.local"
sed -i -E "s/^(smtp|[0-9]+)(\s+inet\s+n\s+-\s+[yn-]\s+-\s+-\s+smtpd)/$PF_PORT\2/" /etc/postfix/master.cf
grep -qE "^$PF_PORT\s+inet" /etc/postfix/master.cf || die "could not set Postfix's smtpd port in master.cf"
newaliases
postfix start 2>&1 | grep -v "^postfix/postfix-script: starting" >&2 || true
wait_port "$PF_PORT"
postqueue -p 2>/dev/null | grep -q "Mail queue is empty" || die "Postfix's queue is not empty before the run (postsuper -d ALL clears it)"
touch /var/log/postfix.log; LOG_OFFSET=$(( $(stat -c %s /var/log/postfix.log) + 1 ))
log "postfix: smtp-source -s 20 -m $N -l 1024 into 127.0.0.1:$PF_PORT, relaying to the sink"
before=$(sink_count)
t0=$(now)
smtp-source -s 20 -m "$N" -l 1024 -f app@example.com -t bob@example.org "127.0.0.1:$PF_PORT"
t_sub=$(now)
deadline=$(( $(date +%s) + 900 ))
while [ $(( $(sink_count) - before )) -lt "$N" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "Postfix relayed only $(( $(sink_count) - before )) of $N in 900 s"
  sleep 0.1
done
until postqueue -p 2>/dev/null | grep -q "Mail queue is empty"; do sleep 0.1; done
t1=$(now)
PF_SECS=$(calc "round($t1 - $t0, 2)"); PF_RATE=$(calc "round($N / ($t1 - $t0))")
PF_SUBMIT=$(calc "round($N / ($t_sub - $t0))")
PF_SINK=$(( $(sink_count) - before ))
sleep 1   # postlogd writes the log a moment later
PF_SENT=$(tail -c +"$LOG_OFFSET" /var/log/postfix.log | grep -c "status=sent" || true)
postfix stop >/dev/null 2>&1 || true
log "postfix: $N in $PF_SECS s = $PF_RATE msg/s (injection alone $PF_SUBMIT msg/s; sink received $PF_SINK, log status=sent $PF_SENT)"

echo
echo "== relay: $N messages of ~1 KiB into smtp-sink on 127.0.0.1, same machine, same run =="
printf "%-52s %9s %10s %11s\n" "" "seconds" "msg/s" "sink got"
printf "%-52s %9s %10s %11s\n" "postern, drain of a pre-filled queue (32 conns)" "$DRAIN_SECS" "$DRAIN_RATE" "$DRAIN_SINK"
printf "%-52s %9s %10s %11s\n" "postern, end to end: HTTP submit + deliver" "$E2E_SECS" "$E2E_RATE" "$E2E_SINK"
printf "%-52s %9s %10s %11s\n" "postfix, end to end: smtp-source -s 20 + relay" "$PF_SECS" "$PF_RATE" "$PF_SINK"
echo
printf "%-52s %9s\n" "ratio postern/postfix, end to end (like for like)" "$(calc "round($E2E_RATE / $PF_RATE, 2)")"
printf "%-52s %9s\n" "ratio postern drain / postfix end to end" "$(calc "round($DRAIN_RATE / $PF_RATE, 2)")"
echo "(intake alone: postern HTTP $E2E_SUBMIT msg/s while delivering; postfix SMTP $PF_SUBMIT msg/s while relaying;"
echo " postfix's log shows $PF_SENT status=sent lines for this run)"
[ "$DRAIN_SINK" = "$N" ] && [ "$E2E_SINK" = "$N" ] && [ "$PF_SINK" = "$N" ] \
  || { echo "relay: WARNING: the sink did not receive exactly $N messages in every part (see 'sink got')"; exit 1; }
