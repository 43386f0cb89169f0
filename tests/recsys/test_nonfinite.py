"""No NaN reaches a version, and a NaN version already on disk is served safely (issue 14 item 8)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient


def _fitted(snapshot):
    from recsys.models.als import AlternatingLeastSquaresModel
    from recsys.models.popular import PopularModel

    return {"als": AlternatingLeastSquaresModel(factors=4, iterations=3, seed=0).fit(snapshot),
            "popular": PopularModel().fit(snapshot)}


def _poison(models, user: int):
    models["als"].user_factors_ = models["als"].user_factors_.copy()
    models["als"].user_factors_[user] = np.nan
    return models


def test_training_refuses_to_save_a_version_with_nan_vectors(tiny_snapshot, tmp_path):
    from recsys.versions import NonFiniteModelError, save_version

    models = _poison(_fitted(tiny_snapshot), 3)
    with pytest.raises(NonFiniteModelError, match="NaN"):
        save_version(tmp_path, tiny_snapshot, models, {"serving_model": "als"})
    assert not any((tmp_path / "models").rglob("manifest.json"))  # nothing half-written
    assert issubclass(NonFiniteModelError, RuntimeError)  # the CLI's exit 1, not 2


def test_the_quality_gate_rejects_a_non_finite_candidate():
    from recsys.retrain import quality_gate

    nan_metrics = quality_gate({"protocol": "temporal", "metrics": {"ndcg@10": float("nan")}}, None, 0.05)
    assert not nan_metrics["passed"] and "not finite" in nan_metrics["reason"]
    nan_vectors = quality_gate({"protocol": "temporal", "metrics": {"ndcg@10": 0.2},
                                "nonfinite": {"als": {"users": 1}}}, None, 0.05)
    assert not nan_vectors["passed"]


def test_a_user_with_nan_scores_gets_popular_items_and_ready_says_unhealthy(tiny_snapshot, tmp_path):
    from api.app import AppState, create_app
    from api.settings import Settings
    from recsys.serving import RecommendationService
    from recsys.versions import ModelVersion

    snap = tiny_snapshot
    models = _poison(_fitted(snap), 3)
    service = RecommendationService(ModelVersion("v-nan", snap.dataset, {"serving_model": "als"}, snap, models), lambda u: u)
    out = service.recommend(str(snap.user_ids[3]), k=5)
    assert out["strategy"] in ("popular_fallback", "cold_start_social") and len(out["items"]) == 5
    assert all(np.isfinite(it["score"]) for it in out["items"])
    assert service.recommend(str(snap.user_ids[4]), k=5)["strategy"] == "personalized"  # others unaffected
    settings = Settings(home=tmp_path, neo4j_uri=None, mode="test", reload_poll_seconds=0)
    app = create_app(settings, state=AppState(service=service, pseudonymise=lambda u: u, dataset=snap.dataset))
    with TestClient(app) as client:
        r = client.get("/ready")
        assert r.status_code == 503 and "unhealthy" in r.json()["detail"]


def test_a_rejected_retrain_is_visible_in_metrics(tiny_snapshot, tmp_path):
    """Issue 14 item 17: retrain outcomes by label in /metrics."""
    import json

    from api.app import AppState, create_app
    from api.settings import Settings

    (tmp_path / "retrain").mkdir()
    (tmp_path / "retrain" / "history.jsonl").write_text(
        "\n".join(json.dumps({"state": s}) for s in ("promoted", "rejected", "promoted", "rejected")) + "\n")
    settings = Settings(home=tmp_path, neo4j_uri=None, mode="test", reload_poll_seconds=0)
    with TestClient(create_app(settings, state=AppState())) as client:
        text = client.get("/metrics").text
    assert 'socialrec_retrain_runs_total{outcome="rejected"} 2' in text
    assert 'socialrec_retrain_last_outcome{outcome="rejected"} 1' in text
    assert 'socialrec_retrain_last_outcome{outcome="promoted"} 0' in text
