"""``socialrec serve --workers 2``: every worker sees every event, /metrics counts every worker.

A real pre-forked server (a subprocess on a free loopback port) over a copy of the filmtrust
test home; requests use a fresh connection each, so the kernel spreads them over both workers
(the test checks that both answered, from the per-worker metric files).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.api.conftest import TEST_KEY, api_keys_setting, auth

ROOT = Path(__file__).resolve().parents[2]
RECS = "/v1/users/{}/recommendations"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_workers(api_settings, tmp_path_factory):
    home = tmp_path_factory.mktemp("workers-home")
    shutil.copytree(api_settings.home, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("queue"))
    metrics_dir = tmp_path_factory.mktemp("workers-metrics")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update(SOCIALREC_HOME=str(home), SOCIALREC_MODE="test", SOCIALREC_DATASET="filmtrust",
               SOCIALREC_PSEUDONYM_KEY=TEST_KEY, SOCIALREC_API_KEYS=api_keys_setting(),
               SOCIALREC_RELOAD_POLL_SECONDS="0", SOCIALREC_DATA_DIR=str(api_settings.data_dir),
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PYTHONPATH=str(ROOT))
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        pytest.fail("2-worker server not ready")
    yield url, metrics_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def _user_with_history(shared_data_dir) -> str:
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    return str(ratings["u"].value_counts().index[7])


def test_an_event_reaches_every_worker_before_its_next_answer(two_workers, shared_data_dir):
    url, metrics_dir = two_workers
    user = _user_with_history(shared_data_dir)
    top = httpx.get(url + RECS.format(user), params={"k": 5}, headers=auth("storefront")).json()["items"][0]["item_id"]
    r = httpx.post(f"{url}/v1/events", json={"events": [{"user_id": user, "item_id": top, "kind": "purchase"}]},
                   headers={**auth("events"), "Idempotency-Key": f"w-{uuid.uuid4().hex}"})
    assert r.status_code == 202
    for _ in range(20):  # a new connection each: both workers answer
        items = [it["item_id"] for it in httpx.get(url + RECS.format(user), params={"k": 5}, headers=auth("storefront")).json()["items"]]
        assert top not in items
    pids = {re.sub(r"\D", "", p.name) for p in metrics_dir.glob("counter_*.db")}
    assert len(pids) >= 2, "only one worker answered; the test proved nothing"


def test_metrics_count_the_requests_of_every_worker(two_workers):
    url, _ = two_workers

    def count() -> float:
        text = httpx.get(f"{url}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("socialrec_http_requests_total") and "/health" in line)

    before = count()
    for _ in range(30):
        assert httpx.get(f"{url}/health").status_code == 200
    assert count() - before == 30
