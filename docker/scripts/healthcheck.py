"""Container healthchecks without curl: ``python healthcheck.py ready|live|nightly``.

ready   GET http://127.0.0.1:$SOCIALREC_PORT/ready is 200 (a model is loaded): the api's healthcheck,
        which ``depends_on: condition: service_healthy`` and orchestrators' readiness use.
live    GET /health is 200 (the process answers): for liveness probes / restarts.
nightly the scheduler's heartbeat ($SOCIALREC_HOME/retrain/scheduler.heartbeat) is younger than
        3 minutes and the last retrain did not fail (retrain/status.json state != "failed").
Exit 0 healthy, 1 not.
"""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path


def http_ok(path: str) -> bool:
    url = f"http://127.0.0.1:{os.environ.get('SOCIALREC_PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return resp.status == 200
    except OSError:
        return False


def nightly_ok() -> bool:
    home = Path(os.environ.get("SOCIALREC_HOME", "/data/socialrec"))
    beat = home / "retrain" / "scheduler.heartbeat"
    if not beat.exists() or time.time() - beat.stat().st_mtime > 180:
        return False
    try:
        return json.loads((home / "retrain" / "status.json").read_text()).get("state") != "failed"
    except (OSError, ValueError):
        return True  # no retrain yet


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "ready"
    ok = {"ready": lambda: http_ok("/ready"), "live": lambda: http_ok("/health"), "nightly": nightly_ok}[what]()
    sys.exit(0 if ok else 1)
