"""Start gooseBit (PyPI `goosebit`, a server implementing hawkBit's DDI API)
on 127.0.0.1 with TLS, for tests/ddi_goosebit.rs.

Usage: goosebit_serve.py DIR CERT KEY POLL_TIME
Creates the SQLite schema in DIR, binds a free loopback port, prints
"listening on PORT" and serves until killed (or 300 s at most).
"""
import asyncio
import os
import socket
import sys
import threading

d, cert, key, poll = sys.argv[1:5]
os.environ["GOOSEBIT_DB_URI"] = f"sqlite:///{d}/goosebit.sqlite3"
os.environ["GOOSEBIT_SECRET_KEY"] = "test-only-secret-key-0123456789"
os.environ["GOOSEBIT_POLL_TIME"] = poll
os.environ["GOOSEBIT_ARTIFACTS_DIR"] = f"{d}/artifacts"

from tortoise import Tortoise  # noqa: E402
from goosebit.db.config import TORTOISE_CONF  # noqa: E402


async def schema():
    await Tortoise.init(config=TORTOISE_CONF)
    await Tortoise.generate_schemas()
    await Tortoise.close_connections()


asyncio.run(schema())

import uvicorn  # noqa: E402

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
print(f"listening on {port}", flush=True)
threading.Timer(300, lambda: os._exit(0)).start()
uvicorn.run("goosebit:app", host="127.0.0.1", port=port, ssl_certfile=cert,
            ssl_keyfile=key, log_level="warning")
