"""The HTTP API on a real trained model: shapes of INTERFACES.md, fallbacks and problem+json errors."""

from __future__ import annotations

import pandas as pd
from pydantic import SecretStr


def _raw_user_with_history(shared_data_dir) -> str:
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    return str(ratings["u"].value_counts().index[0])


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["dataset"] == "filmtrust"


def test_known_user_gets_personalized_unseen_items(client, shared_data_dir):
    raw = _raw_user_with_history(shared_data_dir)
    r = client.get(f"/v1/users/{raw}/recommendations", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"user_id", "model_version", "strategy", "items"}
    assert body["user_id"] == raw and body["strategy"] == "personalized"
    assert len(body["items"]) == 7
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    seen = set(ratings.loc[ratings["u"].astype(str) == raw, "i"].astype(str))
    got = [it["item_id"] for it in body["items"]]
    assert not seen & set(got), "already-seen items must be filtered"
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(it["reasons"] and all(isinstance(x, str) for x in it["reasons"]) for it in body["items"])


def test_unknown_user_gets_popular_fallback_not_500(client):
    r = client.get("/v1/users/no-such-user-42/recommendations", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["strategy"] == "popular_fallback" and len(body["items"]) == 5


def test_invalid_k_is_a_problem_json_422(client):
    for k in (0, 101, "ten"):
        r = client.get("/v1/users/1/recommendations", params={"k": k})
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["status"] == 422 and "k" in body["detail"]


def test_similar_items_and_unknown_item_404(client, shared_data_dir):
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    item = str(ratings["i"].value_counts().index[0])
    r = client.get(f"/v1/items/{item}/similar", params={"k": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == item and len(body["items"]) == 4 and item not in [x["item_id"] for x in body["items"]]
    r = client.get("/v1/items/nope-123/similar")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_ids_follow_the_etl_rule(client):
    """Any id the ETL loads (<= 256 chars, no control character) is accepted; others are 422."""
    assert client.get("/v1/users/" + "x" * 257 + "/recommendations").status_code == 422
    assert client.get("/v1/users/bad%01id/recommendations").status_code == 422
    r = client.get("/v1/users/Anna Müller+tag@shop.com/recommendations", params={"k": 3})
    assert r.status_code == 200 and r.json()["user_id"] == "Anna Müller+tag@shop.com"


def test_openapi_docs_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/users/{user_id}/recommendations" in paths and "/v1/items/{item_id}/similar" in paths


def test_train_wrote_embeddings_and_scores_back_to_the_store(api_settings):
    from graph.store import open_store
    from recsys.versions import current_version, load_version

    store = open_store("filmtrust", home=api_settings.home)
    ids, vectors, version = store.read_vectors("Item", "als_embedding")
    # compare with the snapshot the version was trained on: other tests add users to the live store
    snap = load_version(api_settings.home, "filmtrust").snapshot
    assert len(ids) == snap.n_items and vectors.shape[0] == snap.n_items and vectors.shape[1] > 0
    assert version == current_version(api_settings.home, "filmtrust")
    scores = store.read_scores("User")
    assert "top_items" in scores.columns
    assert set(snap.user_ids) <= set(scores.loc[scores["top_items"].notna(), "id"])


def test_a_version_built_with_another_pseudonym_key_is_refused(api_settings):
    import pytest

    from api.app import build_service
    from api.settings import ConfigError

    other = api_settings.model_copy(update={"pseudonym_key": SecretStr("another-key-entirely")})
    with pytest.raises(ConfigError, match="another SOCIALREC_PSEUDONYM_KEY"):
        build_service(other, "filmtrust", lambda raw: raw)
    assert build_service(api_settings, "filmtrust", lambda raw: raw).version.manifest["pseudonym_key_id"]
