"""``socialrec pseudonym``: the ETL's pseudonym of a raw id, with the key, never echoing raw ids."""

from __future__ import annotations

import json

from etl.pseudonymise import Pseudonymiser
from tests.api.test_cli import run_cli

KEY = "pseudonym-test-key-" + "x" * 16


def test_pseudonym_matches_the_etl_and_keeps_input_order(tmp_path):
    r = run_cli(["pseudonym", "cust-1093", " 42", "--json"], {"SOCIALREC_PSEUDONYM_KEY": KEY}, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    p = Pseudonymiser(KEY.encode())
    assert out["pseudonyms"] == [p.user("cust-1093"), p.user("42")]
    assert "cust-1093" not in r.stdout + r.stderr  # neither echoed nor logged


def test_pseudonym_reads_ids_from_stdin(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update({"SOCIALREC_HOME": str(tmp_path / "home"), "SOCIALREC_PSEUDONYM_KEY": KEY})
    r = subprocess.run([sys.executable, "-m", "api.cli", "pseudonym", "--stdin"], input="a\nb\n\n",
                       capture_output=True, text=True, env=env, timeout=120)
    p = Pseudonymiser(KEY.encode())
    assert r.returncode == 0 and r.stdout.split() == [p.user("a"), p.user("b")]


def test_pseudonym_without_a_key_in_production_exits_2(tmp_path):
    r = run_cli(["pseudonym", "cust-1093"], {"SOCIALREC_MODE": "production"}, tmp_path)
    assert r.returncode == 2 and "SOCIALREC_PSEUDONYM_KEY" in r.stderr and r.stdout == ""
    assert "cust-1093" not in r.stderr


def test_pseudonym_without_ids_exits_2(tmp_path):
    r = run_cli(["pseudonym"], {"SOCIALREC_PSEUDONYM_KEY": KEY}, tmp_path)
    assert r.returncode == 2 and "raw user id" in r.stderr
