#!/usr/bin/env python3
"""Hub check-ins per second on loopback and the hub's peak RSS (run by the
benchmark piece scripts/bench.d/40-hub; kept outside bench.d so shellcheck
only sees shell there).

Builds the release `outpost-hub` natively (or takes OUTPOST_BIN_HUB), makes a
test CA and server certificate with openssl, registers a small fleet, then
sends a fixed number of steady-state check-ins from a few client threads,
each on a fresh connection (as `outpost checkin` does): over TLS, and over
plain HTTP on loopback for comparison. Hub and client share this machine's
cores. Peak RSS is the hub's VmHWM from /proc at the end of each run.
Prints one Markdown section on stdout, progress on stderr. Loopback only,
bounded in requests and time.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

FLEET = 50
REQUESTS = 2000
THREADS = 8
TIME_LIMIT_S = 60


def log(msg):
    print(f"40-hub: {msg}", file=sys.stderr, flush=True)


def repo_root():
    return os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def hub_binary(root):
    given = os.environ.get("OUTPOST_BIN_HUB", "").strip()
    if given:
        return given
    log("building outpost-hub (release, native)")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--target", "x86_64-unknown-linux-musl",
         "-p", "outpost-hub", "--bin", "outpost-hub"],
        cwd=root, check=True, stdout=sys.stderr)
    return os.path.join(root, "target/x86_64-unknown-linux-musl/release/outpost-hub")


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext")


class Hub:
    def __init__(self, binary, d, tls):
        self.db = os.path.join(d, "hub.db")
        args = [binary, "--db", self.db, "serve", "--listen", "127.0.0.1:0"]
        if tls:
            args += ["--tls-cert", os.path.join(d, "server.pem"),
                     "--tls-key", os.path.join(d, "server.key")]
        else:
            args += ["--insecure-http"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise SystemExit(f"40-hub: hub did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def request(port, ctx, method, path, body, cred=None):
    if ctx:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if cred:
        headers["Authorization"] = f"Bearer {cred}"
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def run(binary, d, tls, token_args):
    hub = Hub(binary, d, tls)
    try:
        token = subprocess.run([binary, "--db", hub.db, "token", "create", *token_args],
                               check=True, capture_output=True, text=True).stdout.strip()
        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        creds = []
        for i in range(FLEET):
            body = json.dumps({
                "v": 1, "token": token, "host_id": f"bench-{i:04d}",
                "install_secret": "s" * 64, "project": None, "hostname": f"edge-{i}",
                "tags": {}, "agent": "0.1.0",
                "inventory": {"arch": "x86_64", "cpus": 4, "memory_bytes": 8000000000,
                              "os": "Debian GNU/Linux 12", "kernel": "6.1.0",
                              "interfaces": []},
                "inventory_hash": "sha256:" + "0" * 64})
            status, out = request(hub.port, ctx, "POST", "/outpost/v1/register", body)
            if status != 200:
                raise SystemExit(f"40-hub: register {i}: {status} {out[:200]!r}")
            creds.append((f"bench-{i:04d}", json.loads(out)["credential"]))
        bodies = []
        for host, cred in creds:
            b = json.dumps({"v": 1, "host_id": host, "agent": "0.1.0",
                            "health": {"ok": True, "failing": []},
                            "inventory_hash": "sha256:" + "0" * 64,
                            "desired_tag": "d-0000000000000000", "inventory": None},
                           separators=(",", ":"))
            bodies.append((b, cred))
        counter = iter(range(REQUESTS))
        lock = threading.Lock()
        errors = []
        deadline = time.monotonic() + TIME_LIMIT_S

        def worker():
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                b, cred = bodies[i % len(bodies)]
                try:
                    status, _ = request(hub.port, ctx, "POST", "/outpost/v1/checkin", b, cred)
                    if status != 200:
                        errors.append(status)
                except (OSError, http.client.HTTPException) as e:
                    errors.append(str(e))

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        done = REQUESTS if time.monotonic() < deadline else None
        if errors or done is None:
            raise SystemExit(f"40-hub: {len(errors)} errors ({errors[:3]}), finished: {done}")
        steady = len(bodies[0][0])
        return {"wall": wall, "rate": REQUESTS / wall, "rss": hub.peak_rss_kib(),
                "body": steady}
    finally:
        hub.stop()


def main():
    root = repo_root()
    binary = hub_binary(root)
    d = tempfile.mkdtemp(prefix="outpost-bench-hub-")
    try:
        make_pki(d)
        results = []
        for tls in (True, False):
            for f in ("hub.db", "hub.db-wal", "hub.db-shm"):
                try:
                    os.remove(os.path.join(d, f))
                except FileNotFoundError:
                    pass
            log(f"{'TLS' if tls else 'plain HTTP'}: {FLEET} devices, {REQUESTS} check-ins")
            results.append((tls, run(binary, d, tls, [])))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    size = os.path.getsize(binary)
    cores = os.cpu_count()
    base = results[0][1]["rate"]
    print("## Hub: check-ins per second and memory")
    print()
    print(f"`outpost-hub serve` (release, 4 workers, {size / 1e6:.2f} MB static binary) on "
          f"loopback; {FLEET} registered devices; {REQUESTS} steady-state check-ins "
          f"({results[0][1]['body']}-byte body) from a Python client with {THREADS} threads, "
          f"each on a new connection as `outpost checkin` makes one. Hub and client share "
          f"the machine's {cores} cores (the rate includes the client's own CPU use). Peak "
          f"RSS is the hub's VmHWM. The last column is the rate times 300, an upper bound "
          f"for a fleet checking in every 5 minutes with perfectly spread phases. Context "
          f"for fleet planning only: the hub is a reference server, not the fleet-scale one.")
    print()
    print("| transport | check-ins | wall time | check-ins/s | vs TLS | hub peak RSS | rate x 300 s |")
    print("|---|---|---|---|---|---|---|")
    for tls, r in results:
        print(f"| {'TLS (rustls, ring), new connection each' if tls else 'plain HTTP (loopback test mode)'} "
              f"| {REQUESTS} | {r['wall']:.2f} s | {r['rate']:.0f} | {r['rate'] / base:.2f}x "
              f"| {r['rss']} KiB | {int(r['rate'] * 300):,} |")


if __name__ == "__main__":
    main()
