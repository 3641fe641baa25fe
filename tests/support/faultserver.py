#!/usr/bin/env python3
"""A fault-injecting HTTP(S) server for outpost's tests (Python 3 stdlib only).

It always runs as a native process, also when the agent's tests run under
qemu. It listens on 127.0.0.1 (port 0 unless --port), prints "PORT <n>" as
its first line on stdout, and serves until killed or --max-seconds passed.
The request path picks the behaviour (a trailing /outpost/v1/... is cut off,
so an agent can use e.g. https://127.0.0.1:PORT/stall as its endpoint):

  /ok, anything else    200, JSON echo {"method","path","user_agent","body"}
  /reset                headers (Content-Length 100), then a TCP reset
  /stall                headers + 10 of 100 body bytes, then silence
  /trickle              100-byte body, one byte per second
  /oversized?n=N        200 with an N-byte body (default 1 MiB, Content-Length)
  /oversized-chunked    200, 1 MiB in chunked encoding (no Content-Length)
  /invalid-utf8         200, body with bytes that are not UTF-8
  /invalid-json         200, a truncated JSON document
  /wrong-types          200, JSON whose fields have the wrong types
  /missing-fields       200, JSON object without the expected fields
  /status/N             status N with a short JSON body (500, 502, 404, ...)
  /429-delta            429 with Retry-After: 7
  /503-date             503 with Retry-After: an IMF-fixdate 120 s ahead
  /redirect/N           status N (default 302), Location: /ok on this server
  /redirect-loop        302 to itself
  /garbage              bytes that are not HTTP at all, then close
  /huge-body            200, Content-Length 100 MiB, the body streamed
  /headers-stall        headers (Content-Length 100), then silence
  /lying-length         Content-Length 1000, a 2-byte body, then close
  /short-length         Content-Length 5 for a longer valid JSON body
  /http10               HTTP/1.0 200 without Content-Length, body until close
  /huge-header          200 with one 1 MiB header line
  /many-headers         200 with 100000 small headers
  /deep-json            200, a JSON body nested 100000 levels deep
  /deep-json-32k        200, JSON nested 32000 deep (64000 bytes: within
                        the agent's body limit, so its JSON parser sees it)
  /bad-utf8-header      200 with a header value that is not UTF-8
  /absurd-interval      200, a well-formed check-in answer asking for an
                        interval of 2^64-1 ms and a phase of 2^63 ms
  /absurd-retry         503 with Retry-After: 99999999999999999999
  /negative-retry       429 with Retry-After: -5

With --refuse it binds a port, prints it, closes it and exits: connecting to
that port is then refused (nothing listens). With --blackhole it listens with
a backlog of 0, fills that backlog with one connection of its own and never
accepts: a client's TCP connect then hangs until the client's timeout.

With --tls-cert/--tls-key it speaks TLS (the handshake runs in the
connection's thread, so a client that rejects the certificate does no harm).
With --log FILE every request line is appended to FILE ("METHOD PATH UA").
Never sends anything to any address but the client that connected.
"""
import argparse
import email.utils
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

STALL_SECONDS = 30  # bounded: a client without a timeout still ends
TRICKLE_BYTES = 100


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or "0")
    body = rest
    while len(body) < length:
        chunk = conn.recv(min(65536, length - len(body)))
        if not chunk:
            break
        body += chunk
    return parts[0], parts[1], headers, body[:length]


def head(status, reason, length=None, extra=(), ctype="application/json"):
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def respond(conn, status, reason, body, extra=()):
    conn.sendall(head(status, reason, len(body), extra) + body)


REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other",
           307: "Temporary Redirect", 308: "Permanent Redirect", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}


def serve(conn, args):
    req = read_request(conn)
    if req is None:
        return
    method, target, headers, body = req
    path, _, query = target.partition("?")
    # An agent configured with this server (plus a mode path) as its
    # endpoint appends the protocol path: /stall/outpost/v1/checkin -> /stall.
    if "/outpost/v1/" in path:
        path = path[: path.index("/outpost/v1/")] or "/ok"
    if args.log:
        with open(args.log, "a") as f:
            f.write(f"{method} {target} {headers.get('user-agent', '-')}\n")
    if path == "/reset":
        conn.sendall(head(200, "OK", 100))
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "reset"
    if path == "/stall":
        conn.sendall(head(200, "OK", 100) + b'{"interval":')
        time.sleep(STALL_SECONDS)
        return
    if path == "/trickle":
        conn.sendall(head(200, "OK", TRICKLE_BYTES))
        for _ in range(TRICKLE_BYTES):
            conn.sendall(b" ")
            time.sleep(1)
        return
    if path == "/oversized":
        n = 1 << 20
        for kv in query.split("&"):
            if kv.startswith("n="):
                n = int(kv[2:])
        conn.sendall(head(200, "OK", n))
        block = b"x" * 65536
        sent = 0
        while sent < n:
            part = block[: min(len(block), n - sent)]
            conn.sendall(part)
            sent += len(part)
        return
    if path == "/oversized-chunked":
        conn.sendall(head(200, "OK", None, ["Transfer-Encoding: chunked"]))
        block = b"y" * 65536
        for _ in range(16):
            conn.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        return
    if path == "/invalid-utf8":
        return respond(conn, 200, "OK", b'{"phase":"\xff\xfe\xfd"}')
    if path == "/invalid-json":
        return respond(conn, 200, "OK", b'{"interval": 300, "phase": ')
    if path == "/wrong-types":
        return respond(conn, 200, "OK", b'{"interval": "soon", "phase": 7}')
    if path == "/missing-fields":
        return respond(conn, 200, "OK", b'{"unrelated": true}')
    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        return respond(conn, code, REASONS.get(code, "Status"), b'{"error":"injected"}')
    if path == "/429-delta":
        return respond(conn, 429, REASONS[429], b"{}", ["Retry-After: 7"])
    if path == "/503-date":
        when = email.utils.formatdate(time.time() + 120, usegmt=True)
        return respond(conn, 503, REASONS[503], b"{}", [f"Retry-After: {when}"])
    if path == "/redirect-loop":
        scheme = "https" if args.tls_cert else "http"
        loc = f"{scheme}://127.0.0.1:{args.bound_port}/redirect-loop"
        return respond(conn, 302, REASONS[302], b"", [f"Location: {loc}"])
    if path == "/garbage":
        conn.sendall(bytes((i * 2654435761 >> 13) & 0xFF for i in range(4096)))
        return
    if path == "/huge-body":
        n = 100 << 20
        conn.sendall(head(200, "OK", n))
        block = b"z" * 65536
        sent = 0
        try:
            while sent < n:
                conn.sendall(block)
                sent += len(block)
        except OSError:
            pass
        return
    if path == "/headers-stall":
        conn.sendall(head(200, "OK", 100))
        time.sleep(STALL_SECONDS)
        return
    if path == "/lying-length":
        conn.sendall(head(200, "OK", 1000) + b"{}")
        return
    if path == "/short-length":
        conn.sendall(head(200, "OK", 5) + b'{"v":1,"interval_ms":1}')
        return
    if path == "/http10":
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"unrelated":1}')
        return
    if path == "/huge-header":
        return respond(conn, 200, "OK", b"{}", ["X-Huge: " + "h" * (1 << 20)])
    if path == "/many-headers":
        return respond(conn, 200, "OK", b"{}", [f"X-H{i}: v" for i in range(100000)])
    if path in ("/deep-json", "/deep-json-32k"):
        n = 32000 if path.endswith("32k") else 100000
        return respond(conn, 200, "OK", b"[" * n + b"]" * n)
    if path == "/bad-utf8-header":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad: \xff\xfe\r\nConnection: close\r\n\r\n{}")
        return
    if path == "/absurd-interval":
        body = json.dumps({"v": 1, "interval_ms": 2**64 - 1, "phase_ms": 2**63,
                           "server_time": int(time.time()), "inventory_wanted": False,
                           "desired_tag": "", "desired": None}).encode()
        return respond(conn, 200, "OK", body)
    if path == "/absurd-retry":
        return respond(conn, 503, REASONS[503], b"{}", ["Retry-After: 99999999999999999999"])
    if path == "/negative-retry":
        return respond(conn, 429, REASONS[429], b"{}", ["Retry-After: -5"])
    if path.startswith("/redirect"):
        code = int(path[len("/redirect/"):] or 302) if path.startswith("/redirect/") else 302
        scheme = "https" if args.tls_cert else "http"
        loc = f"{scheme}://127.0.0.1:{args.bound_port}/ok"
        return respond(conn, code, REASONS.get(code, "Redirect"), b"", [f"Location: {loc}"])
    echo = {
        "method": method,
        "path": path,
        "user_agent": headers.get("user-agent", ""),
        "content_type": headers.get("content-type", ""),
        "body": body.decode("utf-8", "replace"),
    }
    respond(conn, 200, "OK", json.dumps(echo).encode())


def handle(raw, ctx, args):
    conn = raw
    try:
        raw.settimeout(STALL_SECONDS + 5)
        if ctx is not None:
            conn = ctx.wrap_socket(raw, server_side=True)
        if serve(conn, args) == "reset":
            raw.close()
            return
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--log")
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--refuse", action="store_true")
    p.add_argument("--blackhole", action="store_true")
    args = p.parse_args()
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    if args.refuse:
        print(f"PORT {srv.getsockname()[1]}", flush=True)
        srv.close()
        return
    if args.blackhole:
        srv.listen(0)
        filler = socket.create_connection(srv.getsockname(), timeout=5)
        print(f"PORT {srv.getsockname()[1]}", flush=True)
        time.sleep(args.max_seconds)
        filler.close()
        return
    srv.listen(64)
    args.bound_port = srv.getsockname()[1]
    print(f"PORT {args.bound_port}", flush=True)
    deadline = time.monotonic() + args.max_seconds
    srv.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            raw, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(raw, ctx, args), daemon=True).start()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
