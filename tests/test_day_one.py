"""scripts/day-one.sh: from nothing (an empty SOCIALREC_HOME, no server) to an API that answers a
recommendation to an API key with readiness true, through the compose services' own scripts,
against a local Neo4j the script starts (its own, on a free port in 7690..7699), in production mode."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def _free(ports) -> int | None:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def test_day_one_goes_from_nothing_to_a_recommendation_with_a_key(tmp_path, shared_data_dir):
    if shutil.which("java") is None or shutil.which("mvn") is None:
        if os.environ.get("SOCIALREC_CI"):
            pytest.fail("CI needs java and mvn")
        pytest.skip("java/mvn not available")
    neo4j_port = _free(range(7690, 7700))
    api_port = _free(range(18000, 18100))
    if neo4j_port is None or api_port is None:
        pytest.skip("no free port")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update(SOCIALREC_HOME=str(tmp_path / "home"), SOCIALREC_DATA_DIR=str(shared_data_dir),
               SOCIALREC_CLI=f"{sys.executable} -m api.cli", PYTHONPATH=str(REPO), SOCIALREC_MODE="production",
               SOCIALREC_TRAIN_ARGS="--models popular --no-tune", SOCIALREC_NEO4J_HEAP="512m",
               SOCIALREC_NEO4J_PAGECACHE="128m")
    r = subprocess.run(["bash", str(REPO / "scripts" / "day-one.sh"), "--dataset", "filmtrust", "--port", str(api_port),
                        "--neo4j-port", str(neo4j_port), "--stop"],
                       capture_output=True, text=True, env=env, timeout=1500)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ready"] is True and out["model_version"] and out["dataset"] == "filmtrust"
    assert len(out["recommendation"]["items"]) == 5
    secrets = tmp_path / "home" / "secrets"
    assert (secrets / "api_key_hashes").read_text().startswith("storefront:")
    assert oct((secrets / "neo4j_password").stat().st_mode & 0o777) == "0o600"
    # no secret reached the logs
    password = (secrets / "neo4j_password").read_text()
    assert password not in r.stderr and password not in (tmp_path / "home" / "api.log").read_text()
    assert out["storefront_key"] not in (tmp_path / "home" / "api.log").read_text()
