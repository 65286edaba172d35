#!/usr/bin/env bash
# Delivery throughput into Postfix's smtp-sink: Postern draining its queue through the smtp
# provider, beside Postfix relaying the same number of messages to the same sink, in one run.
# Usage: bench/relay.sh [MESSAGES]
source "$(dirname "$0")/lib.sh"
N="${1:-20000}"
need_pkg smtp-sink postfix
SINK_PORT=25925
PF_PORT=2526

smtp-sink -u nobody 127.0.0.1:$SINK_PORT 256 & PIDS+=($!)
sleep 0.3

# --- Postern: fill the queue on an accept-only node, then time a delivering node draining it.
relay=(POSTERN_PROVIDERS_RELAY_TYPE=smtp POSTERN_PROVIDERS_RELAY_HOST=127.0.0.1
       POSTERN_PROVIDERS_RELAY_PORT=$SINK_PORT POSTERN_PROVIDERS_RELAY_MAX_CONNECTIONS=32
       POSTERN_ROUTES_DEFAULT='["relay"]' POSTERN_QUEUE_CONCURRENCY=128)
start_postern "$WORK/pt" POSTERN_QUEUE_DELIVER=false "${relay[@]}"
python3 - "$PORT_HTTP" "$KEY" "$N" <<'PY'
import http.client, json, sys, threading
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"from": "app@example.com", "to": ["bob@example.org"], "subject": "relay bench",
                   "text": "x" * 900})
def worker(count):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(count):
        c.request("POST", "/v1/messages", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        assert r.status == 202, r.status
ts = [threading.Thread(target=worker, args=(n // 8 + (1 if i < n % 8 else 0),)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
stop_postern
start=$(date +%s.%N)
start_postern "$WORK/pt" "${relay[@]}"
while [ "$(metric 'postern_queue_messages{status="delivered"}')" -lt "$N" ]; do
  failed=$(metric 'postern_queue_messages{status="deferred"}')
  [ "$failed" -gt 0 ] && { echo "ERROR: $failed deferred"; tail -5 "$WORK/pt/serve.log"; exit 1; }
  sleep 0.1
done
end=$(date +%s.%N)
stop_postern
PT_RATE=$(python3 -c "print(round($N/($end-$start)))")
echo "postern: $N messages delivered in $(python3 -c "print(round($end-$start,2))") s (including startup): $PT_RATE msg/s"

# --- Postfix: smtp-source → Postfix → smtp-sink, set up as ../shared/PEERS.md describes.
postfix stop >/dev/null 2>&1 || true
postconf -e "inet_interfaces = loopback-only" "mydestination =" "relayhost = [127.0.0.1]:$SINK_PORT" \
  "mynetworks = 127.0.0.0/8" "maillog_file = /var/log/postfix.log" "myhostname = bench.local" >/dev/null
sed -i -E "s/^(smtp|[0-9]+)(\s+inet\s+n\s+-\s+y?-?\s*-\s+-\s+smtpd)/$PF_PORT\2/" /etc/postfix/master.cf
grep -qE "^$PF_PORT\s+inet" /etc/postfix/master.cf || { echo "could not set Postfix's smtpd port"; exit 1; }
newaliases; postfix start >/dev/null 2>&1; sleep 1
start=$(date +%s.%N)
smtp-source -s 20 -m "$N" -l 1024 -f app@example.com -t bob@example.org 127.0.0.1:$PF_PORT
until postqueue -p 2>/dev/null | grep -q "Mail queue is empty"; do sleep 0.1; done
end=$(date +%s.%N)
postfix stop >/dev/null 2>&1 || true
PF_RATE=$(python3 -c "print(round($N/($end-$start)))")
echo "postfix: $N messages relayed in $(python3 -c "print(round($end-$start,2))") s: $PF_RATE msg/s"

echo
echo "== relay benchmark: $N messages into smtp-sink, same machine, same run =="
printf "%-40s %10s\n" "postern queue → smtp-sink (32 conns)" "$PT_RATE msg/s"
printf "%-40s %10s\n" "smtp-source → postfix → smtp-sink" "$PF_RATE msg/s"
printf "%-40s %10s\n" "ratio postern/postfix" "$(python3 -c "print(round($PT_RATE/$PF_RATE,2))")"
