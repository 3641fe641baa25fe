#!/usr/bin/env python3
"""Fleet scale (run by the benchmark piece scripts/bench.d/47-fleet):

1. The fleet's spread on a virtual clock (`outpost-hub-load spread`): 10,000
   devices at a 5-minute interval registering within one minute, then
   steady, then the hub down for 30 minutes and back; the rules before
   (host-ID hash phases, 5 s jitter, 15 min backoff) and now (slots, backoff
   within the interval then the slot), in one run.
2. The real protocol over TLS (`outpost-hub-load tls`): DEVICES simulated
   devices (100,000 by default) registered for real, then checked in at
   their slots for a bounded window, against one hub on SQLite and against
   two hubs on one PostgreSQL 15 (started here as scripts/bench-hub-pg.py
   does). Hubs, database and generator share this machine's cores.
3. The return over TLS: RETURN_DEVICES (10,000) at a 60 s interval against
   one hub on SQLite, the hub killed for 180 s and started again; the
   generator's devices follow the agent's retry rule.

Environment: OUTPOST_BENCH_FLEET_DEVICES (default 100000),
OUTPOST_BENCH_FLEET_RETURN_DEVICES (default 10000),
OUTPOST_BENCH_FLEET_WINDOW (seconds of steady check-ins, default 120),
OUTPOST_BIN_HUB / OUTPOST_BIN_HUB_LOAD (else built, release, native).
Prints one Markdown section on stdout, progress on stderr. Loopback only,
bounded in devices and time.
"""
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bh = _load("bench_hub", "bench-hub.py")
bp = _load("bench_hub_pg", "bench-hub-pg.py")

DEVICES = int(os.environ.get("OUTPOST_BENCH_FLEET_DEVICES", "100000"))
WINDOW_S = int(os.environ.get("OUTPOST_BENCH_FLEET_WINDOW", "120"))
THREADS = 32
WORKERS = 4
TIME_LIMIT_S = 3600
RETURN_DEVICES = int(os.environ.get("OUTPOST_BENCH_FLEET_RETURN_DEVICES", "10000"))
RETURN_INTERVAL_S = 60
OUTAGE_S = 180


def log(msg):
    print(f"47-fleet: {msg}", file=sys.stderr, flush=True)


def binaries(root):
    hub = os.environ.get("OUTPOST_BIN_HUB", "").strip()
    gen = os.environ.get("OUTPOST_BIN_HUB_LOAD", "").strip()
    if hub and gen:
        return hub, gen
    log("building outpost-hub and outpost-hub-load (release, native)")
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--target", "x86_64-unknown-linux-musl",
         "-p", "outpost-hub", "--bin", "outpost-hub", "--bin", "outpost-hub-load"],
        cwd=root, check=True, stdout=sys.stderr)
    rel = os.path.join(root, "target/x86_64-unknown-linux-musl/release")
    return (hub or os.path.join(rel, "outpost-hub"),
            gen or os.path.join(rel, "outpost-hub-load"))


def spread(gen):
    out = subprocess.run([gen, "spread"], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def tls_load(gen, d, ports, prefix):
    tokfile = os.path.join(d, "token")
    args = [gen, "tls", "--ca", os.path.join(d, "ca.pem"), "--token-file", tokfile,
            "--devices", str(DEVICES), "--threads", str(THREADS), "--window", str(WINDOW_S),
            "--time-limit", str(TIME_LIMIT_S), "--prefix", prefix]
    for p in ports:
        args += ["--hub", f"https://127.0.0.1:{p}"]
    r = subprocess.run(args, capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"47-fleet: outpost-hub-load tls failed ({r.returncode})")
    return json.loads(r.stdout)


def write_token(binary, d, db, env):
    out = subprocess.run([binary, "--db", db, "token", "create"], env=env, check=True,
                         capture_output=True, text=True).stdout.split()[0]
    path = os.path.join(d, "token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (out + "\n").encode())
    os.close(fd)


def run_setup(binary, gen, d, db, env, hubs, count, size, gaps):
    write_token(binary, d, db, env)
    procs = [bp.Hub(binary, d, db, env) for _ in range(hubs)]
    try:
        t0 = time.monotonic()
        r = tls_load(gen, d, [p.port for p in procs], "fleet")
        r["wall_s"] = time.monotonic() - t0
        r["rss"] = [p.peak_rss_kib() for p in procs]
    finally:
        for p in procs:
            p.stop()
    r["registry"] = count()
    r["slot_gaps"] = gaps()
    r["db_bytes"] = size()
    with open("/proc/loadavg") as f:
        r["loadavg"] = " ".join(f.read().split()[:3])
    return r


def return_run(binary, gen, d, env):
    """RETURN_DEVICES devices at a 60 s interval over TLS against one hub on
    SQLite; one interval steady, then the hub killed (SIGKILL) for OUTAGE_S
    and started again on the same port; the generator's devices follow the
    agent's retry rule (`schedule::retry_delay_in`)."""
    db = os.path.join(d, "return.db")
    subprocess.run([binary, "--db", db, "set-interval", str(RETURN_INTERVAL_S)], env=env,
                   check=True, capture_output=True)
    write_token(binary, d, db, env)
    port = bp.free_port()
    args = [binary, "--db", db, "serve", "--listen", f"127.0.0.1:{port}", "--workers",
            str(WORKERS), "--tls-cert", os.path.join(d, "server.pem"),
            "--tls-key", os.path.join(d, "server.key")]

    def start():
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env)
        line = p.stdout.readline().strip()
        if not line.startswith("listening on "):
            p.kill()
            raise SystemExit(f"47-fleet: hub did not start: {line!r}")
        return p

    hub = start()
    window = RETURN_INTERVAL_S * 2 + OUTAGE_S + RETURN_INTERVAL_S * 2
    gen_p = subprocess.Popen(
        [gen, "tls", "--ca", os.path.join(d, "ca.pem"), "--token-file",
         os.path.join(d, "token"), "--devices", str(RETURN_DEVICES), "--threads", str(THREADS),
         "--window", str(window), "--time-limit", str(TIME_LIMIT_S), "--prefix", "ret",
         "--hub", f"https://127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = gen_p.stderr.readline()
        sys.stderr.write(line)
        if "registered" not in line:
            raise SystemExit(f"47-fleet: generator: {line!r}")
        time.sleep(1 + RETURN_INTERVAL_S * 2)
        log(f"hub down for {OUTAGE_S} s")
        hub.kill()
        hub.wait()
        time.sleep(OUTAGE_S)
        hub = start()
        log("hub back")
        out, err = gen_p.communicate(timeout=TIME_LIMIT_S)
        sys.stderr.write(err)
        if gen_p.returncode != 0:
            raise SystemExit(f"47-fleet: outpost-hub-load tls failed ({gen_p.returncode})")
        r = json.loads(out)
    finally:
        if gen_p.poll() is None:
            gen_p.kill()
        hub.kill()
        hub.wait()
    with open("/proc/loadavg") as f:
        r["loadavg"] = " ".join(f.read().split()[:3])
    return r


def sqlite_size(path):
    return sum(os.path.getsize(path + s) for s in ("", "-wal", "-shm")
               if os.path.exists(path + s))


def sqlite_gaps(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT max(slot) + 1 - count(*) FROM devices").fetchone()[0]
    finally:
        c.close()


def sqlite_count(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT count(*) FROM devices").fetchone()[0]
    finally:
        c.close()


def pg_query(pg, sql):
    out = subprocess.run(["psql", pg.url.split("?")[0], "-At", "-c", sql],
                         env={**os.environ, "PGPASSWORD": bp.PASSWORD},
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def main():
    root = bh.repo_root()
    binary, gen = binaries(root)
    log("virtual clock: 10,000 devices, before and now")
    rows = spread(gen)
    d = tempfile.mkdtemp(prefix="outpost-bench-fleet-")
    pg = None
    results = []
    try:
        bh.make_pki(d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        db = os.path.join(d, "hub.db")
        log(f"SQLite, one hub: {DEVICES} devices, {WINDOW_S} s window")
        results.append(("SQLite, one hub", run_setup(
            binary, gen, d, db, env, 1, lambda: sqlite_count(db), lambda: sqlite_size(db),
            lambda: sqlite_gaps(db))))
        pg = bp.Postgres(d)
        pwfile = os.path.join(d, "db-password")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (bp.PASSWORD + "\n").encode())
        os.close(fd)
        penv = {**env, "OUTPOST_HUB_DB_PASSWORD_FILE": pwfile, "OUTPOST_HUB_STATE_DIR": d}
        log(f"return over TLS: {RETURN_DEVICES} devices, {RETURN_INTERVAL_S} s interval, "
            f"{OUTAGE_S} s outage")
        ret = return_run(binary, gen, d, env)
        log(f"PostgreSQL, two hubs: {DEVICES} devices, {WINDOW_S} s window")
        results.append(("PostgreSQL 15, two hubs", run_setup(
            binary, gen, d, pg.url, penv, 2,
            lambda: pg_query(pg, "SELECT count(*) FROM devices"), pg.size,
            lambda: pg_query(pg, "SELECT max(slot) + 1 - count(*) FROM devices"))))
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(d, ignore_errors=True)

    print("## Fleet scale: spread and 100,000 devices")
    print()
    print("Measured by `scripts/bench.d/47-fleet` with `outpost-hub-load` (the hub crate's load "
          "generator, release build).")
    print()
    print("**Spread, virtual clock** (`outpost-hub-load spread`): "
          f"{rows[0]['devices']:,} devices at a {rows[0]['interval_s']} s interval register at "
          f"random instants within {rows[0]['register_s']} s, run steady for three intervals, "
          f"then the hub is down for {rows[0]['outage_s'] // 60} minutes and back. Each device "
          "follows the agent's own scheduling functions (`src/schedule.rs`, "
          "`checkin::next_due_ms`) with the hub's own phase function; clocks agree and "
          "requests arrive when sent, so this is the schedule's spread alone. Mean "
          f"{rows[0]['mean_per_s']:.1f} check-ins/s. Peak/mean is the fullest 1-second bin over "
          "the mean: steady (after the registrations) and in the four intervals after the "
          "return. Wait: from the hub's return to a device's first check-in; late: past the "
          "device's first slot after the return. Goals (issue 19): steady <= 1.2, return <= 2, "
          "late <= one interval.")
    print()
    print("| rules | steady peak/mean | return peak/mean | longest wait after return | "
          "latest past its slot | attempts while down |")
    print("|---|---|---|---|---|---|")
    names = {"hash-phases": "before: host-ID hash phase, 5 s jitter, backoff to 15 min",
             "slots": "now: slots, no jitter, backoff within the interval then the slot"}
    for r in rows:
        print(f"| {names.get(r['rules'], r['rules'])} | {r['steady_peak_over_mean']:.2f} | "
              f"{r['return_peak_over_mean']:.2f} | {r['max_wait_s']:.0f} s | "
              f"{r['max_late_s']:.0f} s | {r['failed_attempts']:,} |")
    print()
    print(f"**{DEVICES:,} devices over TLS** (`outpost-hub-load tls`): each device registers "
          "for real (its own host ID, install secret and credential; the registry holds all "
          f"of them), then checks in at the phase the hub gave it for a {WINDOW_S} s window "
          + ("(a whole 5-minute interval: every device checks in once). " if WINDOW_S >= 300
             else "of the 5-minute interval (a bounded window: the steady rate is the same in "
             "every window of the interval). ")
          + f"{THREADS} generator threads; each request through the "
          "agent's own HTTPS client with a new connection and a full TLS handshake (the "
          "costliest case for the hub); `outpost-hub serve --workers 4` per hub. PostgreSQL 15 "
          "(Debian) on the same machine, fsync on, synchronous_commit off. Hubs, database and "
          f"generator share the machine's {os.cpu_count()} cores (the benchmark ran niced, "
          "beside other work: load average at its end in the last column). Latency is per "
          "request as the generator sees it; send lag is how late the generator itself sent "
          "a check-in after its slot.")
    print()
    print("| setup | registry | registrations | registration p99 | check-ins in window "
          "(due) | check-ins/s sustained (peak second) | p50 | p99 | max send lag | refused "
          "/ errors | hub peak RSS | database size | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results:
        rss = " + ".join(f"{k:,} KiB" for k in r["rss"])
        refused = sum(r["refused"].values())
        print(f"| {name} | {r['registry']:,} devices ({r['slot_gaps']} slot gaps) | {r['registered']:,} in "
              f"{r['register_s']:.0f} s ({r['registered'] / max(r['register_s'], 0.001):.0f}/s) | "
              f"{r['register_p99_ms']:.0f} ms | {r['checkins_ok']:,} ({r['due']:,}) | "
              f"{r['mean_per_s']:.0f} ({r['peak_per_s']}) | {r['p50_ms']:.1f} ms | "
              f"{r['p99_ms']:.1f} ms | {r['max_send_lag_ms']} ms | {refused} / {r['errors']} | "
              f"{rss} | {r['db_bytes'] / 1e6:.1f} MB | {r['loadavg']} |")


    rc = ret["recovery"] or {}
    print()
    print(f"**The return over TLS**: {RETURN_DEVICES:,} devices at a {RETURN_INTERVAL_S} s "
          f"interval against one hub on SQLite, as above; two intervals steady, then the hub "
          f"killed (SIGKILL) for {OUTAGE_S} s and started again on the same port and "
          f"database. The generator's devices follow the agent's own retry rule "
          f"(`schedule::retry_delay_in`: full jitter while the ceiling is below the interval, "
          f"then the slot). Fullest second in the interval after the return over the fleet's "
          f"mean ({RETURN_DEVICES / RETURN_INTERVAL_S:.0f}/s); wait and lateness as in the "
          f"virtual clock (the return is the first success after the first failure).")
    print()
    print("| failed attempts while down | return peak/mean | longest wait after return | "
          "latest past its slot | not back | check-ins ok / refused / errors | load avg |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {rc.get('failed', 0):,} | {rc.get('peak_over_mean', 0):.2f} | "
          f"{rc.get('max_wait_s', 0):.1f} s | {rc.get('max_late_s', 0):.1f} s | "
          f"{rc.get('not_back', 0)} | {ret['checkins_ok']:,} / {sum(ret['refused'].values())} / "
          f"{ret['errors']:,} | {ret['loadavg']} |")


if __name__ == "__main__":
    main()
