#!/usr/bin/env python3
"""A TCP relay on the host for lab scenarios that need a slow link.

    relay.py TARGET_PORT RATE DIR

Listens on 127.0.0.1 (a free port, written to DIR/port; guests reach it at
10.0.2.2:PORT) and forwards every connection to 127.0.0.1:TARGET_PORT (TLS
passes through untouched). Traffic towards the client is copied as it comes
until a connection has carried 64 KiB; past that (an artifact download, not
a check-in) it is paced to RATE bytes a second, its byte count is written to
DIR/progress as "CONNECTION-NUMBER BYTES", and while the file DIR/hold
exists it is paused. The upgrade-power-cut scenario uses this to cut the
guest's power at a chosen byte of a download, or right after its end.
"""
import os
import socket
import sys
import threading
import time

BIG = 64 * 1024
CHUNK = 16 * 1024


def write_progress(d, n, total):
    tmp = os.path.join(d, "progress.tmp")
    with open(tmp, "w") as f:
        f.write(f"{n} {total}\n")
    os.replace(tmp, os.path.join(d, "progress"))


def pump_up(src, dst):
    try:
        while True:
            b = src.recv(CHUNK)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (dst,):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def pump_down(src, dst, n, rate, d):
    total = 0
    try:
        while True:
            b = src.recv(CHUNK)
            if not b:
                break
            total += len(b)
            if total > BIG:
                while os.path.exists(os.path.join(d, "hold")):
                    time.sleep(0.05)
                time.sleep(len(b) / rate)
            dst.sendall(b)
            if total > BIG:
                write_progress(d, n, total)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn, n, target, rate, d):
    try:
        up = socket.create_connection(("127.0.0.1", target), timeout=10)
        up.settimeout(None)
    except OSError:
        conn.close()
        return
    t = threading.Thread(target=pump_up, args=(conn, up), daemon=True)
    t.start()
    pump_down(up, conn, n, rate, d)
    t.join(timeout=5)
    conn.close()
    up.close()


def main():
    target, rate, d = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(f"{ls.getsockname()[1]}\n")
    os.replace(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    n = 0
    while True:
        conn, _ = ls.accept()
        n += 1
        threading.Thread(target=serve, args=(conn, n, target, rate, d), daemon=True).start()


if __name__ == "__main__":
    main()
