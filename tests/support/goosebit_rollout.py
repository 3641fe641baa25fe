"""Create a rollout on a running gooseBit the way its operators do, through
its own REST API (the calls its web UI makes), for tests/ddi_goosebit.rs.

Usage: goosebit_rollout.py URL CAFILE SWU [NAME]
First call creates the initial user (POST /setup); every call logs in
(POST /login), uploads SWU as software (PUT /api/v1/software, multipart)
and starts a rollout of it on feed "default" (PUT /api/v1/rollouts).
Prints "software ID rollout ID".
"""
import sys

import httpx

url, ca, swu = sys.argv[1:4]
name = sys.argv[4] if len(sys.argv) > 4 else "outpost"
user = {"username": "admin@example.test", "password": "test-only-password"}

with httpx.Client(base_url=url, verify=ca, timeout=30) as c:
    r = c.post("/login", data=user)
    if r.status_code == 401:
        r = c.post("/setup", data=user)
    r.raise_for_status()
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    with open(swu, "rb") as f:
        r = c.put("/api/v1/software", headers=auth,
                  files={"file": (swu.rsplit("/", 1)[-1], f, "application/octet-stream")})
    if r.status_code != 200:
        sys.exit(f"software upload: HTTP {r.status_code}: {r.text}")
    sw = r.json()["id"]
    r = c.put("/api/v1/rollouts", headers=auth,
              json={"name": name, "feed": "default", "software_id": sw})
    if r.status_code != 200:
        sys.exit(f"rollout: HTTP {r.status_code}: {r.text}")
    print(f"software {sw} rollout {r.json()['id']}", flush=True)
