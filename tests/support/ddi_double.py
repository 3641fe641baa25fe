#!/usr/bin/env python3
"""A TEST DOUBLE of a hawkBit DDI server (Python 3 stdlib only), for what
gooseBit cannot express: deployments whose chunk carries several artifacts
(hawkBit's software modules), cancelAction, maintenance windows, download
"skip", the GatewayToken, and scripted failures for the `run` loop. It is
NOT hawkBit: its answers follow hawkBit's DDI documentation (shapes in
docs/hawkbit.md), nothing more.

Usage: ddi_double.py DIR CERT KEY
Listens on 127.0.0.1 (free port), prints "PORT <n>", serves until killed
(or 300 s). Before each request it re-reads DIR/scenario.json:

  {"tenant": "DEFAULT", "controller": "edge-1", "sleep": "00:00:10",
   "auth": "TargetToken abc",          # required Authorization (else 401)
   "fail": 0,                          # answer the next N polls with 503
   "deployment": {"id": "7", "download": "forced", "update": "forced",
                  "maintenanceWindow": null,
                  "artifacts": ["/path/file", ...]},   # or null
   "cancel": {"id": "c1", "stopId": "7"},              # or null
   "feedback_fail": false}             # true: every feedback POST gets 503

and appends one JSON line per request to DIR/requests.jsonl:
{"t": unix float, "method", "path", "auth": bool (the right header),
 "status", "body"}.
"""
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
import time

d, cert, key = sys.argv[1:4]
fails_done = 0
lock = threading.Lock()


def scenario():
    with open(os.path.join(d, "scenario.json")) as f:
        return json.load(f)


def log(entry):
    with lock, open(os.path.join(d, "requests.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        # Kept until the request is logged: the log line must exist before
        # the client can see the answer (a test reads the log right after).
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.pending = (status, body, ctype)
        return status

    def send_pending(self):
        status, body, ctype = self.pending
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self, method):
        global fails_done
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace") if n else ""
        s = scenario()
        base = f"/{s['tenant']}/controller/v1/{s['controller']}"
        host = f"https://127.0.0.1:{self.server.server_address[1]}"
        ok_auth = self.headers.get("Authorization") == s["auth"]
        path = self.path.split("?")[0]
        if not ok_auth:
            status = self.reply(401, {"error": "unauthorized"})
        elif method == "GET" and path == base:
            with lock:
                failing = fails_done < s.get("fail", 0)
                if failing:
                    fails_done += 1
            if failing:
                status = self.reply(503, {"error": "busy"})
            else:
                links = {}
                dep = s.get("deployment")
                if s.get("cancel"):
                    links["cancelAction"] = {"href": f"{host}{base}/cancelAction/{s['cancel']['id']}"}
                elif dep:
                    links["deploymentBase"] = {"href": f"{host}{base}/deploymentBase/{dep['id']}?c=-2129030598"}
                status = self.reply(200, {"config": {"polling": {"sleep": s["sleep"]}}, "_links": links})
        elif method == "GET" and s.get("deployment") and path == f"{base}/deploymentBase/{s['deployment']['id']}":
            dep = s["deployment"]
            arts = []
            for p in dep["artifacts"]:
                data = open(p, "rb").read()
                name = os.path.basename(p)
                href = f"{host}{base}/softwaremodules/1/artifacts/{name}"
                arts.append({
                    "filename": name,
                    "hashes": {"sha1": hashlib.sha1(data).hexdigest(),
                               "md5": hashlib.md5(data).hexdigest(),
                               "sha256": hashlib.sha256(data).hexdigest()},
                    "size": len(data),
                    "_links": {"download": {"href": href},
                               "md5sum": {"href": href + ".MD5SUM"}},
                })
            deployment = {"download": dep["download"], "update": dep["update"],
                          "chunks": [{"part": "bApp", "version": "x", "name": "outpost",
                                      "artifacts": arts}]}
            if dep.get("maintenanceWindow"):
                deployment["maintenanceWindow"] = dep["maintenanceWindow"]
            status = self.reply(200, {"id": dep["id"], "deployment": deployment})
        elif method == "GET" and s.get("deployment") and path.startswith(f"{base}/softwaremodules/1/artifacts/"):
            name = path.rsplit("/", 1)[-1]
            match = [p for p in s["deployment"]["artifacts"] if os.path.basename(p) == name]
            if match:
                status = self.reply(200, open(match[0], "rb").read(), "application/octet-stream")
            else:
                status = self.reply(404, {"error": "no such artifact"})
        elif method == "GET" and s.get("cancel") and path == f"{base}/cancelAction/{s['cancel']['id']}":
            c = s["cancel"]
            status = self.reply(200, {"id": c["id"], "cancelAction": {"stopId": c["stopId"]}})
        elif method == "POST" and path.endswith("/feedback"):
            status = self.reply(503 if s.get("feedback_fail") else 200, b"")
        elif method == "PUT" and path == f"{base}/configData":
            status = self.reply(200, b"")
        else:
            status = self.reply(404, {"error": "not found"})
        log({"t": time.time(), "method": method, "path": self.path, "auth": ok_auth,
             "status": status, "body": body})
        self.send_pending()

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"PORT {srv.server_address[1]}", flush=True)
threading.Timer(300, lambda: os._exit(0)).start()
srv.serve_forever()
