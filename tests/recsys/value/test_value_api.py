"""The customer-value routes on a tiny FastAPI app."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.problems import install_problem_handlers
from api.routes.value import get_pseudonymise, get_value_state, router
from recsys.value.pipeline import CustomerValueResult


def _result() -> CustomerValueResult:
    users = pd.DataFrame({
        "user_id": ["p_alice", "p_bob"], "clv": [12.5, 0.0], "influence": [0.2, 0.0], "pagerank": [0.7, 0.3],
        "weighted_value": [13.1, 0.0], "segment_id": ["C01", "unconnected"], "rfm_segment": ["champions", "no_transactions"],
        "churn_risk": [0.1, float("nan")], "p_alive": [0.9, float("nan")], "propensity": [0.4, float("nan")],
        "explanation": [[{"feature": "recency_weeks", "value": 1.0, "contribution": 0.8}], []],
    })
    segments = pd.DataFrame([
        {"segment_id": "C01", "size": 1, "total_value": 12.5, "mean_value": 12.5, "churn_risk_share": 0.0,
         "top_categories": [{"category": "books", "share": 1.0}], "top_influencers": [{"user_id": "p_alice", "influence": 0.2}],
         "rfm_mix": [], "members_by_rule": {"graph": 1}},
        {"segment_id": "unconnected", "size": 1, "total_value": 0.0, "mean_value": 0.0, "churn_risk_share": None,
         "top_categories": [], "top_influencers": [], "rfm_mix": [], "members_by_rule": {"unconnected": 1}},
    ])
    return CustomerValueResult(dataset="toy", value_unit="interactions", users=users, segments=segments,
                               metrics={"segments": {"modularity": 0.42}})


@pytest.fixture()
def client():
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_value_state] = _result
    app.dependency_overrides[get_pseudonymise] = lambda: (lambda raw: "p_" + raw)
    return TestClient(app)


def test_user_value_pseudonymises_the_raw_id(client):
    r = client.get("/v1/users/alice/value")
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == "alice" and body["clv"] == 12.5 and body["segment"] == "C01"
    assert {"user_id", "clv", "influence", "weighted_value", "segment", "explanation"} <= set(body)
    assert body["explanation"][0]["feature"] == "recency_weeks"
    assert client.get("/v1/users/bob/value").json()["churn_risk"] is None  # NaN -> null


def test_unknown_user_is_a_404_problem(client):
    r = client.get("/v1/users/mallory/value")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {"type", "title", "status", "detail"} <= set(r.json()) and r.json()["status"] == 404


def test_segments_list_and_detail(client):
    r = client.get("/v1/segments")
    assert r.status_code == 200 and r.json()["modularity"] == 0.42
    assert [s["segment_id"] for s in r.json()["segments"]] == ["C01", "unconnected"]
    one = client.get("/v1/segments/C01").json()
    assert one["top_influencers"][0]["user_id"] == "p_alice" and one["size"] == 1
    missing = client.get("/v1/segments/C99")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")


def test_no_loaded_result_is_a_503_problem():
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_pseudonymise] = lambda: (lambda raw: raw)
    r = TestClient(app).get("/v1/segments")
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")


def test_the_app_state_value_is_used_when_present():
    from types import SimpleNamespace

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.state.socialrec = SimpleNamespace(value=_result(), pseudonymise=lambda raw: "p_" + raw)
    assert TestClient(app).get("/v1/users/alice/value").json()["clv"] == 12.5
