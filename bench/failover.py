#!/usr/bin/env python3
"""bench/failover.py: one failover run (see bench/failover.sh).

Starts two aiosmtpd sinks (tests/support/sink.py, one .eml file per accepted message) and a
Postern whose default route is [primary, backup]. Sends messages over HTTP at a fixed rate
(open loop: a late answer does not slow the schedule) for SECONDS; halfway through, the primary
goes away (--mode kill: SIGKILL; --mode stop: SIGUSR1, the sink closes its listener and answers
421). Then waits until everything accepted is delivered and reports:

- lost: accepted (202) but in neither sink; duplicated: Message-IDs found more than once;
- in flight at the switch: messages whose attempt on the primary started before it went away
  and that the backup delivered; their
  delay is from the moment the primary went away to their delivery (from the event log),
  p50/p90/p99/max; the same for messages still queued (never tried) at that moment;
- as the reference from the same run, accept-to-delivery latency of the messages delivered by
  the primary before it went away.

Exits 1 when a message is lost or duplicated or the in-flight p99 is over 1 s.
"""

import argparse
import datetime
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_sink(script, directory):
    p = subprocess.Popen([sys.executable, script, "--dir", directory],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("PORT "):
        raise SystemExit(f"sink said {line!r}")
    return p, int(line.split()[1])


def message_ids(directory):
    ids = []
    for name in os.listdir(directory):
        if not name.endswith(".eml"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            for raw in f:
                if raw.lower().startswith(b"message-id:"):
                    ids.append(raw.split(b":", 1)[1].strip().decode())
                    break
    return ids


def ms(rfc3339):
    return int(datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--mode", choices=["kill", "stop"], default="kill")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    sinks = {}
    for name in ("primary", "backup"):
        d = os.path.join(a.dir, name)
        os.makedirs(d, exist_ok=True)
        sinks[name] = (d,) + start_sink(a.sink, d)
    # One key sends everything: raise the guard's volume floor so it does not hold the load.
    env = dict(os.environ, POSTERN_LOG="warn", POSTERN_HTTP_LISTEN="127.0.0.1:0",
               POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE="1000000000",
               POSTERN_SMTP_LISTEN="127.0.0.1:0", POSTERN_ROUTES_DEFAULT='["primary", "backup"]')
    for name, (_, _, port) in sinks.items():
        up = name.upper()
        env[f"POSTERN_PROVIDERS_{up}_TYPE"] = "smtp"
        env[f"POSTERN_PROVIDERS_{up}_HOST"] = "127.0.0.1"
        env[f"POSTERN_PROVIDERS_{up}_PORT"] = str(port)
    home = os.path.join(a.dir, "postern")
    init = json.loads(subprocess.check_output([a.bin, "init", "--json", "--dir", home], env=env))
    key = init["api_key"]
    conf = os.path.join(home, "postern.toml")
    server = subprocess.Popen([a.bin, "--config", conf, "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(a.dir, "serve.log"), "w"))
    info = os.path.join(home, "postern-data", "serve.json")
    for _ in range(300):
        if os.path.exists(info) and os.path.getsize(info) > 0:
            break
        time.sleep(0.05)
    port = int(json.load(open(info))["http"].rsplit(":", 1)[1])

    local = threading.local()

    def conn():
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        return local.c

    def request(method, path, body=None):
        for attempt in range(3):
            try:
                c = conn()
                headers = {"Authorization": f"Bearer {key}"}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                local.__dict__.pop("c", None)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")

    text = ("Hello, this is a benchmark message of ordinary size. " * 20)[:1000]
    accepted = {}  # id -> accept time (ms)
    errors = [0]
    lock = threading.Lock()

    def send(i):
        body = json.dumps({"from": "app@example.com", "to": [f"user{i}@example.org"],
                           "subject": f"Failover {i}", "text": text,
                           "idempotency_key": f"bench-{i}"})
        try:
            status, data = request("POST", "/v1/messages", body)
        except Exception:
            status, data = 0, b""
        with lock:
            if status == 202:
                accepted[json.loads(data)["id"]] = int(time.time() * 1000)
            else:
                errors[0] += 1

    total = a.rate * a.seconds
    went_away_at = None
    log(f"{a.mode}: {total} messages at {a.rate}/s; the primary goes away after {a.seconds / 2:.0f} s")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(total):
            due = start + i / a.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if went_away_at is None and i >= total // 2:
                went_away_at = int(time.time() * 1000)
                _, proc, _ = sinks["primary"]
                if a.mode == "kill":
                    proc.kill()
                else:
                    proc.send_signal(signal.SIGUSR1)
            pool.submit(send, i)
    sent_for = time.monotonic() - start
    log(f"sent in {sent_for:.1f} s ({total / sent_for:.0f}/s offered); accepted {len(accepted)}, refused/failed {errors[0]}")

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        _, m = request("GET", "/metrics")
        delivered = 0
        for line in m.decode().splitlines():
            if line.startswith('postern_queue_messages{status="delivered"}'):
                delivered = int(line.split()[-1])
        if delivered >= len(accepted):
            break
        time.sleep(0.25)
    drained = time.monotonic() - start

    primary_ids = message_ids(sinks["primary"][0])
    backup_ids = message_ids(sinks["backup"][0])
    all_ids = primary_ids + backup_ids
    unique = set(all_ids)
    duplicated = len(all_ids) - len(unique)

    in_flight, queued, reference, failovers, lost = [], [], [], 0, 0
    slowest = (-1, None)
    for mid, accepted_at in accepted.items():
        status, data = request("GET", f"/v1/messages/{mid}")
        m = json.loads(data)
        if m.get("status") != "delivered":
            lost += 1
            continue
        ev = m["events"]
        failovers += any(e["kind"] == "failover" for e in ev)
        done = [e for e in ev if e["kind"] == "delivered"]
        if not done:
            lost += 1
            continue
        at, provider = ms(done[0]["at"]), done[0].get("provider")
        tried_primary = any(e["kind"] == "attempted" and e.get("provider") == "primary"
                            and ms(e["at"]) < went_away_at for e in ev)
        if provider == "backup" and accepted_at < went_away_at and tried_primary:
            in_flight.append(at - went_away_at)
            if at - went_away_at > slowest[0]:
                slowest = (at - went_away_at, m)
        elif provider == "backup" and accepted_at < went_away_at:
            queued.append(at - went_away_at)
        elif provider == "primary" and at < went_away_at:
            reference.append(at - accepted_at)
    lost = max(lost, len(accepted) - len(unique))

    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    for _, proc, _ in sinks.values():
        if proc.poll() is None:
            proc.kill()

    def dist(v):
        return (f"n={len(v)} p50={pct(v, 50):.0f} ms p90={pct(v, 90):.0f} ms "
                f"p99={pct(v, 99):.0f} ms max={max(v) if v else float('nan'):.0f} ms")

    print(f"== failover ({a.mode}) at {a.rate} msg/s for {a.seconds} s ==")
    print(f"accepted            {len(accepted)}  (refused or failed: {errors[0]})")
    print(f"delivered           primary {len(primary_ids)}, backup {len(backup_ids)}; all drained after {drained:.1f} s")
    print(f"lost                {lost}")
    print(f"duplicated          {duplicated}")
    print(f"failed over inline  {failovers} messages")
    print(f"in flight -> backup {dist(in_flight)}  (attempt on the primary under way when it went away)")
    print(f"queued -> backup    {dist(queued)}  (not yet tried when it went away)")
    print(f"reference           {dist(reference)}  (accept to delivery through the primary, before)")
    if slowest[1] is not None:
        print("slowest in flight:")
        for e in slowest[1]["events"]:
            print(f"  {e['at']} {e['kind']:<10} {e.get('provider', ''):<8} {e.get('detail', '')}")
    ok = lost == 0 and duplicated == 0 and (not in_flight or pct(in_flight, 99) <= 1000)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
