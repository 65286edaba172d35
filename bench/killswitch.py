#!/usr/bin/env python3
"""bench/killswitch.py: one kill-switch run of several trials (see bench/killswitch.sh).

The SMTP sink runs in this process (aiosmtpd in a thread) and records time.time() at every
MAIL FROM, which is when a provider call starts; the client's clock is the same clock. Each
trial: resume, stream sends at RATE/s for 1.5 s, launch `postern pause --all` (t0 = just before
the process starts), keep streaming for another second, then measure

    stop = (start of the last provider call at or after t0) - t0     (0 if none)

i.e. command launch (process start, store write, every worker seeing it) to the last new call;
in-flight calls that started before t0 may finish, which is allowed. Prints each trial, then
median and max; exits 1 if the max is over 100 ms.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller


class Stamper:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.calls.append(time.time())
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 OK queued"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--rate", type=int, default=400)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    stamper = Stamper()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        sink_port = s.getsockname()[1]
    sink = Controller(stamper, hostname="127.0.0.1", port=sink_port)
    sink.start()

    env = dict(os.environ, POSTERN_LOG="warn", POSTERN_HTTP_LISTEN="127.0.0.1:0",
               POSTERN_SMTP_LISTEN="127.0.0.1:0", POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE="1000000000",
               POSTERN_ROUTES_DEFAULT='["sink"]', POSTERN_PROVIDERS_SINK_TYPE="smtp",
               POSTERN_PROVIDERS_SINK_HOST="127.0.0.1", POSTERN_PROVIDERS_SINK_PORT=str(sink_port))
    home = os.path.join(a.dir, "postern")
    key = json.loads(subprocess.check_output([a.bin, "init", "--json", "--dir", home], env=env))["api_key"]
    conf = os.path.join(home, "postern.toml")
    server = subprocess.Popen([a.bin, "--config", conf, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(a.dir, "serve.log"), "w"))
    info = os.path.join(home, "postern-data", "serve.json")
    for _ in range(300):
        if os.path.exists(info) and os.path.getsize(info) > 0:
            break
        time.sleep(0.05)
    port = int(json.load(open(info))["http"].rsplit(":", 1)[1])

    def cli(*args):
        return subprocess.run([a.bin, "--config", conf, *args], env=env, capture_output=True, text=True)

    local = threading.local()

    def send(i):
        for _ in range(3):
            try:
                if not hasattr(local, "c"):
                    local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                body = json.dumps({"from": "app@example.com", "to": [f"user{i}@example.org"],
                                   "subject": f"Kill switch {i}", "text": "hello"})
                local.c.request("POST", "/v1/messages", body=body,
                                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = local.c.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                local.__dict__.pop("c", None)
        return 0

    results = []
    n = 0
    try:
        with ThreadPoolExecutor(max_workers=32) as pool:
            for trial in range(1, a.trials + 1):
                r = cli("resume", "--all")
                if r.returncode != 0 and "no pause" not in (r.stderr + r.stdout):
                    log(f"resume: {r.stderr.strip()}")
                time.sleep(0.5)
                start = time.monotonic()
                t0 = None
                pause_proc = None
                i = 0
                while time.monotonic() - start < 2.5:
                    due = start + i / a.rate
                    d = due - time.monotonic()
                    if d > 0:
                        time.sleep(d)
                    if t0 is None and time.monotonic() - start >= 1.5:
                        t0 = time.time()
                        pause_proc = subprocess.Popen([a.bin, "--config", conf, "pause", "--all",
                                                       "--reason", "kill switch bench"], env=env,
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    pool.submit(send, n)
                    n += 1
                    i += 1
                if pause_proc.wait() != 0:
                    raise SystemExit(f"pause failed: {pause_proc.stderr.read().decode()}")
                time.sleep(1.0)
                with stamper.lock:
                    before = sum(1 for c in stamper.calls if c < t0)
                    after = [c for c in stamper.calls if c >= t0]
                stop_ms = (max(after) - t0) * 1000 if after else 0.0
                results.append(stop_ms)
                log(f"trial {trial}: last new provider call {stop_ms:.1f} ms after the command "
                    f"({len(after)} calls started after it, {before} before)")
                with stamper.lock:
                    stamper.calls.clear()
    finally:
        cli("resume", "--all")
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        sink.stop()
    med, mx = statistics.median(results), max(results)
    print(json.dumps({"trials": len(results), "rate_per_second": a.rate,
                      "stop_ms": [round(x, 1) for x in results],
                      "median_ms": round(med, 1), "max_ms": round(mx, 1), "target_ms": 100}))
    log(f"kill switch: median {med:.1f} ms, max {mx:.1f} ms (target <= 100 ms)")
    sys.exit(0 if mx <= 100 else 1)


if __name__ == "__main__":
    main()
