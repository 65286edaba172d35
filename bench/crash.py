#!/usr/bin/env python3
"""bench/crash.py: crash safety of accepts and deliveries, at full size (run by bench/crash.sh).

Submits MESSAGES messages over HTTP from CLIENTS threads while the server is killed with SIGKILL
twice, at random points of the submission, and restarted on the same config and data dir.

- Every message carries an Idempotency-Key from its first try, and a message whose request
  errored (connection refused or reset, no answer, 5xx) is retried only with that same key and
  the same body, so a retry can never queue a second copy.
- Every message carries its sequence number in a header (X-Bench-Seq) and in its subject.
  Every 97th message is invalid on purpose (a bad recipient) and must be refused with a 4xx.
- Delivery goes to the file provider: one <id>.eml per delivered message.

After the submission the queue is left to drain, the server is stopped with SIGTERM, and the
outbox is checked: every message that got a 202 is there exactly once (by Message-ID and by
X-Bench-Seq, under the id the 202 gave), no Message-ID appears twice, and nothing that never
got a 202 was delivered. Prints the counts and PASS or FAIL; exits 1 on FAIL.

Standard library only.
"""

import argparse
import collections
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One `postern serve` process at a time, always on the same HTTP port and data dir."""

    def __init__(self, binary, config, data_dir, port, log_path):
        self.binary, self.config, self.data_dir, self.port = binary, config, data_dir, port
        self.log = open(log_path, "ab")
        # One key sends everything: raise the guard's volume floor so it does not hold the load.
        self.env = dict(os.environ, POSTERN_LOG=os.environ.get("POSTERN_LOG", "warn"),
                        POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE="1000000000",
                        POSTERN_HTTP_LISTEN=f"127.0.0.1:{port}",
                        POSTERN_SMTP_LISTEN="127.0.0.1:0")
        self.proc = None
        self.starts = 0

    def start(self):
        info = os.path.join(self.data_dir, "serve.json")
        if os.path.exists(info):
            os.remove(info)  # a SIGKILLed server leaves its serve.json behind
        self.log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "serve"],
                                     env=self.env, stdout=self.log, stderr=self.log)
        self.starts += 1
        deadline = time.time() + 30
        while not os.path.exists(info):
            if self.proc.poll() is not None:
                raise RuntimeError(f"postern serve exited with {self.proc.returncode}; see {self.log.name}")
            if time.time() > deadline:
                raise RuntimeError("postern serve did not start within 30 s")
            time.sleep(0.02)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line.startswith("postern_queue_messages{"):
                name, value = line.rsplit(" ", 1)
                out[name.split('"')[1]] = int(float(value))
        return out


def is_invalid(seq):
    return seq % 97 == 0


class Submitter:
    def __init__(self, port, key, total, run_id, clients):
        self.port, self.key, self.total, self.run_id, self.clients = port, key, total, run_id, clients
        self.lock = threading.Lock()
        self.next_seq = 1
        self.answered = 0
        self.accepted = {}      # seq -> id from the 202
        self.refused = {}       # seq -> (status, error code)
        self.unanswered = []    # seqs given up on
        self.failed_tries = 0   # requests that errored and were retried with the same key
        self.retried_then_accepted = 0

    def take(self):
        with self.lock:
            seq = self.next_seq
            self.next_seq += 1
            return seq if seq <= self.total else None

    def body(self, seq):
        to = "not an address" if is_invalid(seq) else f"user{seq}@example.org"
        return json.dumps({"from": "app@example.com", "to": [to], "subject": f"crash bench {seq}",
                           "text": f"Message {seq} of the crash benchmark.\n",
                           "headers": {"X-Bench-Seq": str(seq)}}).encode()

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)

    def worker(self):
        conn = self.connect()
        while True:
            seq = self.take()
            if seq is None:
                conn.close()
                return
            body = self.body(seq)
            headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                       "Idempotency-Key": f"{self.run_id}-{seq}"}
            deadline = time.time() + 180
            tries = 0
            while True:
                tries += 1
                status, data = None, b""
                try:
                    conn.request("POST", "/v1/messages", body, headers)
                    r = conn.getresponse()
                    status, data = r.status, r.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = self.connect()
                if status == 202:
                    with self.lock:
                        self.accepted[seq] = json.loads(data)["id"]
                        self.retried_then_accepted += tries > 1
                        self.answered += 1
                    break
                if status is not None and 400 <= status < 500:
                    try:
                        code = json.loads(data)["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = data[:80].decode(errors="replace")
                    with self.lock:
                        self.refused[seq] = (status, code)
                        self.answered += 1
                    break
                # An error or a 5xx: the same request, same key, again.
                with self.lock:
                    self.failed_tries += 1
                if time.time() > deadline:
                    with self.lock:
                        self.unanswered.append(seq)
                        self.answered += 1
                    break
                time.sleep(0.02)


def read_headers(path):
    with open(path, "rb") as f:
        raw = f.read()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    headers = {}
    for line in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), v.strip())
    return headers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True, help="a fresh directory for postern init")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    # SIGTERM (from a wrapper or timeout) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    log(f"seed {seed} (rerun the same kill points with BENCH_SEED={seed})")

    os.makedirs(a.dir, exist_ok=True)
    init = subprocess.run([a.bin, "init", "--json", "--dir", a.dir], check=True, capture_output=True)
    key = json.loads(init.stdout)["api_key"]
    config = os.path.join(a.dir, "postern.toml")
    data_dir = os.path.join(a.dir, "postern-data")
    outbox = os.path.join(data_dir, "outbox")
    port = free_port()
    server = Server(a.bin, config, data_dir, port, os.path.join(a.dir, "serve.log"))
    sub = Submitter(port, key, a.messages, f"crash-{seed}", a.clients)
    kills = []
    try:
        server.start()
        t0 = time.time()
        threads = [threading.Thread(target=sub.worker, daemon=True) for _ in range(a.clients)]
        for t in threads:
            t.start()
        # Two kill points at random places of the submission, one in each part of it.
        points = [int(rng.uniform(0.10, 0.45) * a.messages), int(rng.uniform(0.55, 0.90) * a.messages)]
        for point in points:
            while sub.answered < point and any(t.is_alive() for t in threads):
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.05))
            delivered_before = len([f for f in os.listdir(outbox) if f.endswith(".eml")]) if os.path.isdir(outbox) else 0
            server.kill9()
            down = rng.uniform(0.1, 0.6)
            kills.append((sub.answered, len(sub.accepted), delivered_before, round(down, 2)))
            log(f"SIGKILL after {sub.answered} answers ({len(sub.accepted)} accepted, "
                f"{delivered_before} in the outbox); restarting in {down:.2f} s")
            time.sleep(down)
            server.start()
        for t in threads:
            t.join()
        t_sub = time.time() - t0
        log(f"submission done in {t_sub:.1f} s: {len(sub.accepted)} accepted, {len(sub.refused)} refused, "
            f"{len(sub.unanswered)} unanswered, {sub.failed_tries} failed tries retried with the same key")

        # Let the queue drain: every accepted message delivered, nothing left queued or sending.
        deadline = time.time() + 600
        shown = time.time()
        while True:
            m = server.metrics()
            if time.time() - shown > 10:
                log(f"waiting for the queue to drain: {m}")
                shown = time.time()
            # Only "delivered" is read: Postern's postern_queue_messages gauge keeps the last
            # non-zero value of a status that has no rows any more (see bench/README.md).
            if m.get("delivered", 0) >= len(sub.accepted):
                break
            if time.time() > deadline:
                log(f"queue did not drain in 600 s: {m}")
                break
            time.sleep(0.2)
        drained_after = time.time() - t0
        time.sleep(1)  # anything still to come (a duplicate) has a moment to land
        final = server.metrics()
        rc = server.stop()
        log(f"queue drained {drained_after:.1f} s after the start; /metrics statuses {final}; "
            f"SIGTERM exit code {rc}")
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()

    # --- The store's own view, read after the server stopped (the default SQLite database).
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'postern.db')}?mode=ro", uri=True)
    store_counts = dict(db.execute("SELECT status, COUNT(*) FROM messages GROUP BY status").fetchall())
    db.close()

    # --- Verification against the outbox.
    files = sorted(f for f in os.listdir(outbox) if f.endswith(".eml")) if os.path.isdir(outbox) else []
    leftovers = [f for f in os.listdir(outbox) if f.endswith(".tmp")] if os.path.isdir(outbox) else []
    by_msgid = collections.defaultdict(list)
    by_seq = collections.defaultdict(list)
    no_seq = []
    for f in files:
        h = read_headers(os.path.join(outbox, f))
        by_msgid[h.get("message-id", f"<none:{f}>")].append(f)
        s = h.get("x-bench-seq")
        if s is None or not s.isdigit():
            no_seq.append(f)
        else:
            by_seq[int(s)].append(f[: -len(".eml")])
    accepted = sub.accepted
    missing = sorted(s for s in accepted if s not in by_seq)
    dup_seq = sorted(s for s, fs in by_seq.items() if len(fs) > 1)
    dup_msgid = sorted(m for m, fs in by_msgid.items() if len(fs) > 1)
    not_accepted_delivered = sorted(s for s in by_seq if s not in accepted)
    wrong_id = sorted(s for s in accepted if s in by_seq and accepted[s] not in by_seq[s])
    invalid_accepted = sorted(s for s in accepted if is_invalid(s))
    valid_refused = sorted(s for s in sub.refused if not is_invalid(s))
    expected_refused = sum(1 for s in range(1, a.messages + 1) if is_invalid(s))

    checks = [
        ("two SIGKILLs and restarts happened", len(kills) == 2, f"{len(kills)}"),
        ("every message answered (202 or 4xx)", not sub.unanswered, f"{len(sub.unanswered)} unanswered: {sub.unanswered[:10]}"),
        ("only the invalid messages refused", not valid_refused and not invalid_accepted,
         f"valid refused {[(s, sub.refused[s]) for s in valid_refused[:10]]}, invalid accepted {invalid_accepted[:10]}"),
        ("every accepted message delivered", not missing, f"{len(missing)} missing: {missing[:10]}"),
        ("no accepted message delivered twice (X-Bench-Seq)", not dup_seq, f"{len(dup_seq)}: {dup_seq[:10]}"),
        ("no Message-ID in two files", not dup_msgid, f"{len(dup_msgid)}: {dup_msgid[:5]}"),
        ("nothing delivered that never got a 202", not not_accepted_delivered and not no_seq,
         f"{len(not_accepted_delivered)} seqs {not_accepted_delivered[:10]}, {len(no_seq)} files without X-Bench-Seq"),
        ("each delivered under the id its 202 gave", not wrong_id, f"{len(wrong_id)}: {wrong_id[:10]}"),
        ("outbox files = accepted messages", len(files) == len(accepted), f"{len(files)} files, {len(accepted)} accepted"),
        ("store: one row per accepted message, all delivered", store_counts == {"delivered": len(accepted)},
         f"{store_counts}"),
    ]
    ok = all(c[1] for c in checks)

    print()
    print(f"== crash: {a.messages} messages over HTTP, {a.clients} client threads, SIGKILL twice, seed {seed} ==")
    for i, (answered, acc, outbox_n, down) in enumerate(kills, 1):
        print(f"kill {i}: after {answered} answers ({acc} accepted, {outbox_n} already delivered), down {down} s")
    print(f"submitted              {a.messages}")
    print(f"accepted (202)         {len(accepted)}")
    print(f"refused (4xx)          {len(sub.refused)}  (invalid on purpose: {expected_refused})")
    print(f"unanswered             {len(sub.unanswered)}")
    print(f"failed tries retried   {sub.failed_tries}  (same Idempotency-Key; {sub.retried_then_accepted} messages got their 202 on a retry)")
    print(f"outbox .eml files      {len(files)}  (distinct Message-IDs {len(by_msgid)}, distinct X-Bench-Seq {len(by_seq)}; .tmp leftovers {len(leftovers)})")
    print(f"store rows by status   {store_counts}  (/metrics said {final})")
    print(f"missing / duplicated   {len(missing)} / {len(dup_seq)}")
    print(f"delivered without 202  {len(not_accepted_delivered)}")
    print(f"submission took {t_sub:.1f} s; queue drained {drained_after:.1f} s after the start")
    for name, good, detail in checks:
        print(f"  [{'ok' if good else 'FAIL'}] {name}" + ("" if good else f": {detail}"))
    print(f"crash: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
