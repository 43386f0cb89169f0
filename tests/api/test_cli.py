"""The command line: exit codes 0/1/2 and one JSON object on stdout with --json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_cli(args, env_extra, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update({"SOCIALREC_HOME": str(tmp_path / "home"), **env_extra})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_unknown_dataset_exits_2(tmp_path):
    r = run_cli(["etl", "--dataset", "nope", "--json"], {}, tmp_path)
    assert r.returncode == 2 and "unknown dataset" in r.stderr and r.stdout == ""


def test_unknown_model_exits_2(tmp_path, shared_data_dir):
    r = run_cli(["evaluate", "--dataset", "filmtrust", "--protocol", "cv5-full", "--models", "als,magic", "--json"],
                {"SOCIALREC_DATA_DIR": str(shared_data_dir)}, tmp_path)
    assert r.returncode == 2 and "magic" in r.stderr


def test_bad_shop_export_exits_2_naming_file_and_line(tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "interactions.csv").write_text("user_id,item_id,kind,value,ts\nu1,i1,purchase,1,2024-01-01\n")
    (shop / "items.csv").write_text("item_id,category\n\"unterminated,x\n")
    r = run_cli(["etl", "--dataset", f"csv:{shop}", "--json"], {"SOCIALREC_PSEUDONYM_KEY": "shop-test-key-0123456789abcdefghijk"}, tmp_path)
    assert r.returncode == 2, r.stderr
    assert "items.csv" in r.stderr


def test_shop_export_without_key_is_refused_in_production(tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "interactions.csv").write_text("user_id,item_id,kind,value,ts\nu1,i1,purchase,1,2024-01-01\n")
    r = run_cli(["etl", "--dataset", f"csv:{shop}"], {}, tmp_path)
    assert r.returncode == 2 and "SOCIALREC_PSEUDONYM_KEY" in r.stderr


def test_invalid_mode_is_a_configuration_error_naming_the_variable(tmp_path):
    r = run_cli(["etl", "--dataset", "filmtrust"], {"SOCIALREC_MODE": "prod"}, tmp_path)
    assert r.returncode == 2 and "SOCIALREC_MODE" in r.stderr


def test_an_interrupted_load_is_completed_before_training(tmp_path, shared_data_dir):
    """A store without a completion record (a load killed midway) gets the ETL again."""
    from api.cli import _ensure_loaded
    from api.settings import Settings
    from etl.datasets import read_dataset
    from etl.pseudonymise import Pseudonymiser
    from graph.store import EmbeddedStore

    settings = Settings(home=tmp_path / "home", data_dir=shared_data_dir, mode="test", pseudonym_key="k-test")
    store = EmbeddedStore(settings.home / "store", "filmtrust")
    loaded = read_dataset("filmtrust", shared_data_dir, Pseudonymiser(settings.resolved_pseudonym_key()), tmp_path)
    store.write_meta("etl", {"dataset": "filmtrust", "state": "loading"})
    store.upsert("interactions", loaded.tables["interactions"].iloc[:1000])  # ... and then the process died
    report = _ensure_loaded(settings, "filmtrust", store, progress=False)
    assert report is not None
    assert store.counts()["interactions"] == 35_494
    assert store.read_meta("etl")["state"] == "complete"
    assert _ensure_loaded(settings, "filmtrust", store, progress=False) is None  # complete: nothing to do


@pytest.mark.slow
def test_etl_then_evaluate_json_on_filmtrust(tmp_path, shared_data_dir):
    env = {"SOCIALREC_DATA_DIR": str(shared_data_dir)}
    r = run_cli(["etl", "--dataset", "filmtrust", "--json", "--no-progress"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for table, line in report["tables"].items():
        assert line["read"] == line["loaded"] + line["quarantined"], table
    assert report["tables"]["interactions"]["read"] == 35497
    r = run_cli(["evaluate", "--dataset", "filmtrust", "--protocol", "random-80-10-10", "--models", "popular,als",
                 "--k", "10,20", "--no-tune", "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # exactly one JSON object
    assert out["dataset"] == "filmtrust" and out["protocol"] == "random-80-10-10"
    assert {"precision@10", "recall@10", "ndcg@10", "hr@10", "map@10", "coverage@10", "recall@20"} <= set(out["models"]["als"])
    assert (tmp_path / "home" / "reports").is_dir()
