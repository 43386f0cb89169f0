"""A/B experiments in serving: stable split, responses carry experiment/variant, exposures logged,
events on shown items attributed, and an offline replay of lastfm's test fold where ALS beats popularity."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import AppState, create_app
from api.settings import Settings
from recsys.campaigns.experiments import (
    Experiment,
    ExperimentError,
    ExposureLog,
    analyze_experiment,
    attribute,
    exposure_log_path,
    save_experiment,
)


def _exp(name="ab", dataset="ds", shares=(0.5, 0.5)) -> Experiment:
    return Experiment(name=name, dataset=dataset, variants={"control": "popular", "treatment": "als"},
                      shares=dict(zip(("control", "treatment"), shares)), salt=name)


def test_variant_split_is_stable_and_matches_the_shares():
    exp = _exp(shares=(0.3, 0.7))
    users = [f"u_{i}" for i in range(20000)]
    a, b = exp.variant_of(users), exp.variant_of(list(reversed(users)))[::-1]
    assert (a == b).all()
    assert abs((a == "treatment").mean() - 0.7) < 0.015


def test_bad_configs_are_refused(tmp_path):
    with pytest.raises(ExperimentError):
        save_experiment(tmp_path, _exp(shares=(0.5, 0.6)))
    save_experiment(tmp_path, _exp("first"))
    with pytest.raises(ExperimentError, match="already runs"):
        save_experiment(tmp_path, _exp("second"))


def test_exposure_log_survives_reopening_and_holds_pseudonyms_only(tmp_path):
    from etl.pseudonymise import Pseudonymiser

    pseudo = Pseudonymiser(b"exp-test").user
    log = ExposureLog(tmp_path / "x.sqlite")
    log.record(pseudo("alice@example.com"), "treatment", "v1/als", ["i1", "i2"], ts=10.0)
    log.close()
    again = ExposureLog(tmp_path / "x.sqlite")
    rows = again.read()
    again.close()
    assert rows["items"].tolist() == [["i1", "i2"]] and rows["user"].tolist() == [pseudo("alice@example.com")]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("x.sqlite*"))
    assert b"alice" not in raw


def test_only_later_events_on_shown_items_within_the_window_count():
    exposures = pd.DataFrame({"ts": [100.0, 100.0, 100.0], "user": ["a", "b", "c"], "variant": ["control", "treatment", "treatment"],
                              "model_version": "v", "items": [["x", "y"], ["x"], ["z"]]})
    inter = pd.DataFrame({"user_id": ["a", "a", "b", "c", "c"], "item_id": ["y", "q", "x", "z", "z"],
                          "kind": ["purchase", "view", "view", "view", "view"], "ts": [150.0, 150.0, 50.0, 100.0 + 10 * 86400, 99.0]})
    got = attribute(exposures, inter, window_s=86400).set_index("user")
    assert got.loc["a", "hit"] == 1 and got.loc["a", "conversion"] == 1   # shown y, bought y later
    assert got.loc["b", "hit"] == 0                                        # interacted before being shown
    assert got.loc["c", "hit"] == 0                                        # after the window / before
    res = analyze_experiment(_exp(), exposures, inter, window_s=86400)
    assert res["variants"]["control"]["hit_rate"] == 1.0 and res["variants"]["treatment"]["users"] == 2


@pytest.fixture(scope="module")
def replay(lastfm_snapshot, shared_data_dir, tmp_path_factory):
    """lastfm: ALS and popularity fitted on a random 80 % of interactions, served in-process under
    an experiment (control = popular, treatment = als); every test user asks for 10 items."""
    from recsys.evaluation import random_holdout
    from recsys.models.als import AlternatingLeastSquaresModel
    from recsys.models.popular import PopularModel
    from recsys.serving import RecommendationService
    from recsys.versions import ModelVersion

    snap = lastfm_snapshot
    train, test = random_holdout(snap.interactions, 0.2, np.random.default_rng(0))
    train_snap = snap.with_interactions(train)
    models = {"als": AlternatingLeastSquaresModel(factors=32, iterations=10, weighting="binary", seed=0).fit(train_snap),
              "popular": PopularModel().fit(train_snap)}
    identity = str  # the snapshot's ids are already pseudonyms
    service = RecommendationService(ModelVersion("replay-v1", snap.dataset, {"serving_model": "als"}, train_snap, models), identity)
    home = tmp_path_factory.mktemp("experiment-home")
    exp = Experiment(name="als-vs-popular", dataset=snap.dataset, variants={"control": "popular", "treatment": "als"},
                     shares={"control": 0.5, "treatment": 0.5}, salt="replay-2026", started_at=0.0)
    save_experiment(home, exp)
    # the embedded store both for the replayed events and for `experiment analyze` (which runs without
    # SOCIALREC_NEO4J_URI below), whatever the environment says
    settings = Settings(home=home, data_dir=shared_data_dir, mode="test", dataset=snap.dataset, reload_poll_seconds=0,
                        neo4j_uri=None)
    app = create_app(settings, state=AppState(service=service, pseudonymise=identity, dataset=snap.dataset))
    with TestClient(app) as client:
        users = np.flatnonzero(np.diff(test.indptr) > 0)
        responses = [client.get(f"/v1/users/{snap.user_ids[u]}/recommendations", params={"k": 10}).json() for u in users]
        yield {"client": client, "snap": snap, "test": test, "users": users, "responses": responses, "home": home, "exp": exp}


def test_responses_carry_the_experiment_and_a_stable_variant(replay):
    rs, client, snap = replay["responses"], replay["client"], replay["snap"]
    assert all(r["experiment"] == "als-vs-popular" for r in rs)
    by_variant = {r["variant"]: r["model_version"] for r in rs}
    assert by_variant == {"control": "replay-v1/popular", "treatment": "replay-v1/als"}
    again = client.get(f"/v1/users/{rs[0]['user_id']}/recommendations", params={"k": 10}).json()
    assert again["variant"] == rs[0]["variant"] and again["items"] == rs[0]["items"]


def test_offline_replay_of_the_test_fold_shows_als_beating_popularity(replay, monkeypatch, capsys):
    client, snap, test, home = replay["client"], replay["snap"], replay["test"], replay["home"]
    coo = test.tocoo()
    events = [{"user_id": str(snap.user_ids[u]), "item_id": str(snap.item_ids[i]), "kind": "play", "value": float(max(v, 1.0))}
              for u, i, v in zip(coo.row, coo.col, coo.data)]
    for s in range(0, len(events), 1000):
        r = client.post("/v1/events", json={"events": events[s:s + 1000]}, headers={"Idempotency-Key": f"replay-{uuid.uuid4().hex}"})
        assert r.status_code == 202, r.text
    assert client.app.state.socialrec.events.replayer.drain(120)

    from api.cli import main

    monkeypatch.setenv("SOCIALREC_HOME", str(home))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    monkeypatch.delenv("SOCIALREC_NEO4J_URI", raising=False)
    capsys.readouterr()
    assert main(["experiment", "analyze", "als-vs-popular", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    als, pop = res["variants"]["treatment"], res["variants"]["control"]
    assert als["users"] + pop["users"] == len(replay["users"]) and not res["srm"]["flagged"]
    diff = res["differences"]["treatment"]["hit_rate"]
    assert als["hit_rate"] > pop["hit_rate"] and diff["ci"][0] > 0, res  # the better model wins, CI excludes zero
    log = ExposureLog(exposure_log_path(home, "als-vs-popular"))
    assert len(log.read()) >= len(replay["users"])
    log.close()


def test_cli_experiment_create_stop_and_bad_input(monkeypatch, tmp_path, capsys):
    from api.cli import main

    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    args = ["experiment", "create", "--dataset", "filmtrust", "--name", "a1", "--variants", "control=als,treatment=itemcf"]
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shares"] == {"control": 0.5, "treatment": 0.5}
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    assert main([*args[:5], "a2", *args[6:]]) == 2 and "already runs" in capsys.readouterr().err
    assert main([*args[:5], "a3", "--variants", "als"]) == 2 and "NAME=MODEL" in capsys.readouterr().err
    assert main(["experiment", "stop", "a1"]) == 0
    assert main([*args[:5], "a2", *args[6:], "--shares", "0.2,0.8"]) == 0
    capsys.readouterr()
    assert main(["experiment", "list", "--json"]) == 0
    listed = {e["name"]: e["status"] for e in json.loads(capsys.readouterr().out)["experiments"]}
    assert listed == {"a1": "stopped", "a2": "running"}
    assert main(["experiment", "analyze", "nope"]) == 2


def test_cli_experiment_refuses_a_model_the_promoted_version_lacks(api_settings, monkeypatch, capsys):
    from api.cli import main
    from recsys.campaigns.experiments import list_experiments

    monkeypatch.setenv("SOCIALREC_HOME", str(api_settings.home))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    code = main(["experiment", "create", "--dataset", "filmtrust", "--name", "nope", "--variants", "control=als,treatment=hybrid"])
    assert code == 2 and "not in the promoted version" in capsys.readouterr().err
    assert list_experiments(api_settings.home) == []  # nothing written: the served responses stay unchanged
