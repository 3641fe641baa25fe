#!/usr/bin/env python3
"""Hub check-ins per second on SQLite, on PostgreSQL, and with two hubs on
one PostgreSQL (run by the benchmark piece scripts/bench.d/45-hub-pg).

Uses the release `outpost-hub` (built as scripts/bench-hub.py does, or
OUTPOST_BIN_HUB) and the client of scripts/bench-hub.py (Python, TLS, a new
connection per check-in as `outpost checkin` makes one). Starts a real
PostgreSQL 15 of its own (initdb in a temp dir, as the `postgres` user when
run as root; 127.0.0.1 and a socket in that dir only; password login with
the password in a 0600 file given to the hubs by
OUTPOST_HUB_DB_PASSWORD_FILE). PostgreSQL runs with fsync on and
synchronous_commit off (a crash loses the last few commits, never
consistency: what the hub's SQLite WAL with synchronous=NORMAL also gives).
Hubs, PostgreSQL and the client share this machine's cores. Prints one
Markdown section on stdout, progress on stderr. Loopback only, bounded in
requests and time.
"""
import importlib.util
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

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_hub", os.path.join(HERE, "bench-hub.py"))
bh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bh)

FLEET = 100
REQUESTS = 3000
THREADS = 8
TIME_LIMIT_S = 120
PG_BIN = os.environ.get("OUTPOST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")
PASSWORD = "bench-" + os.urandom(8).hex()


def log(msg):
    print(f"45-hub-pg: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self, d):
        # The postgres user must reach its dir (mkdtemp made `d` 0700).
        os.chmod(d, 0o711)
        self.root = os.path.join(d, "pg")
        os.mkdir(self.root, 0o700)
        self.prefix = []
        pwfile = os.path.join(self.root, "initpw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            for p in (self.root, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.root, "data")
        subprocess.run(self.prefix + [f"{PG_BIN}/initdb", "-D", self.data, "-A", "scram-sha-256",
                                      "-U", "outpost", f"--pwfile={pwfile}", "-E", "UTF8",
                                      "--locale=C", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL)
        os.remove(pwfile)
        self.port = free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                f"-c synchronous_commit=off -c max_connections=40")
        subprocess.run(self.prefix + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-l",
                                      os.path.join(self.root, "log"), "-w", "-o", opts, "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.url = f"postgres://outpost@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def size(self):
        out = subprocess.run(["psql", self.url.split("?")[0], "-At", "-c",
                              "SELECT pg_database_size('postgres')"],
                             env={**os.environ, "PGPASSWORD": PASSWORD},
                             capture_output=True, text=True)
        return int(out.stdout.strip() or 0)

    def stop(self):
        subprocess.run(self.prefix + [f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w",
                                      "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Hub(bh.Hub):
    def __init__(self, binary, d, db, env):
        self.db = db
        args = [binary, "--db", db, "serve", "--listen", "127.0.0.1:0", "--workers", "4",
                "--tls-cert", os.path.join(d, "server.pem"),
                "--tls-key", os.path.join(d, "server.key")]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise SystemExit(f"45-hub-pg: hub did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])


def load(binary, d, db, env, hubs):
    """Register FLEET devices, then REQUESTS check-ins spread over `hubs`
    hub processes in turn from THREADS client threads."""
    procs = [Hub(binary, d, db, env) for _ in range(hubs)]
    try:
        token = subprocess.run([binary, "--db", db, "token", "create"], env=env, check=True,
                               capture_output=True, text=True).stdout.split()[0]
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
            status, out = bh.request(procs[i % hubs].port, ctx, "POST",
                                     "/outpost/v1/register", body)
            if status != 200:
                raise SystemExit(f"45-hub-pg: register {i}: {status} {out[:200]!r}")
            creds.append((f"bench-{i:04d}", json.loads(out)["credential"]))
        bodies = [(json.dumps({"v": 1, "host_id": h, "agent": "0.1.0",
                               "health": {"ok": True, "failing": []},
                               "inventory_hash": "sha256:" + "0" * 64,
                               "desired_tag": "d-0000000000000000", "inventory": None},
                              separators=(",", ":")), c) for h, c in creds]
        counter = iter(range(REQUESTS))
        lock = threading.Lock()
        errors, lat = [], []
        deadline = time.monotonic() + TIME_LIMIT_S

        def worker():
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                b, cred = bodies[i % len(bodies)]
                t = time.monotonic()
                try:
                    status, _ = bh.request(procs[i % hubs].port, ctx, "POST",
                                           "/outpost/v1/checkin", b, cred)
                    if status != 200:
                        errors.append(status)
                except OSError as e:
                    errors.append(str(e))
                with lock:
                    lat.append(time.monotonic() - t)

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        if errors or len(lat) != REQUESTS:
            raise SystemExit(f"45-hub-pg: {len(errors)} errors ({errors[:3]}), done {len(lat)}")
        lat.sort()
        return {"wall": wall, "rate": REQUESTS / wall, "p50": lat[len(lat) // 2] * 1000,
                "p99": lat[int(len(lat) * 0.99)] * 1000,
                "rss": [p.peak_rss_kib() for p in procs]}
    finally:
        for p in procs:
            p.stop()


def main():
    binary = bh.hub_binary(bh.repo_root())
    d = tempfile.mkdtemp(prefix="outpost-bench-hub-pg-")
    pg = None
    rows = []
    try:
        bh.make_pki(d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        log(f"SQLite, one hub: {FLEET} devices, {REQUESTS} check-ins")
        rows.append(("SQLite, one hub", load(binary, d, os.path.join(d, "hub.db"), env, 1),
                     os.path.getsize(os.path.join(d, "hub.db"))))
        pg = Postgres(d)
        pwfile = os.path.join(d, "db-password")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (PASSWORD + "\n").encode())
        os.close(fd)
        penv = {**env, "OUTPOST_HUB_DB_PASSWORD_FILE": pwfile, "OUTPOST_HUB_STATE_DIR": d}
        for hubs in (1, 2):
            log(f"PostgreSQL, {hubs} hub(s): {FLEET} devices, {REQUESTS} check-ins")
            subprocess.run(["psql", pg.url.split("?")[0], "-q", "-c",
                            "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                           env={**os.environ, "PGPASSWORD": PASSWORD}, check=True,
                           capture_output=True)
            r = load(binary, d, pg.url, penv, hubs)
            rows.append((f"PostgreSQL 15, {hubs} hub{'s' if hubs > 1 else ''}", r, pg.size()))
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(d, ignore_errors=True)
    print("## Hub on PostgreSQL: one and two hubs")
    print()
    print(f"`outpost-hub serve` (release, {os.path.getsize(binary) / 1e6:.2f} MB static binary, "
          f"4 workers each) over TLS on loopback; {FLEET} registered devices; {REQUESTS} "
          f"steady-state check-ins from the Python client of scripts/bench-hub.py with "
          f"{THREADS} threads, a new TLS connection each, sent to the hubs in turn. "
          f"PostgreSQL 15 (Debian) on the same machine, fsync on, synchronous_commit off; "
          f"each hub keeps 4 connections. Hubs, database and client share the machine's "
          f"{os.cpu_count()} cores, so a second hub adds no CPU here: the row shows that two "
          f"hubs on one database work as one server and what it costs, not how far it "
          f"scales on more machines. Latency is per check-in as the client sees it.")
    print()
    print("| setup | check-ins | wall time | check-ins/s | p50 | p99 | hub peak RSS | database size |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r, size in rows:
        rss = " + ".join(f"{k} KiB" for k in r["rss"])
        print(f"| {name} | {REQUESTS} | {r['wall']:.2f} s | {r['rate']:.0f} | "
              f"{r['p50']:.1f} ms | {r['p99']:.1f} ms | {rss} | {size / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
