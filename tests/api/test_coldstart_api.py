"""POST /v1/users and POST /v1/items: new users and items served at once from their graph neighbours.

Two apps: lastfm (categories = tags) from an in-memory ALS version, with the router mounted by
``api.app.create_app`` exactly as in production; and the shared filmtrust version on disk, for
auth roles and 409 on a known user.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import AppState, create_app
from api.settings import Settings
from tests.api.conftest import auth

LASTFM_KEY = b"test-key"  # the key tests/conftest.py's lastfm_snapshot was pseudonymised with


@pytest.fixture(scope="module")
def lastfm_app(lastfm_snapshot, shared_data_dir, tmp_path_factory):
    from etl.pseudonymise import Pseudonymiser
    from recsys.models.als import AlternatingLeastSquaresModel
    from recsys.models.popular import PopularModel
    from recsys.serving import RecommendationService
    from recsys.versions import ModelVersion

    snap = lastfm_snapshot
    models = {"als": AlternatingLeastSquaresModel(factors=32, iterations=10, weighting="binary", seed=0).fit(snap),
              "popular": PopularModel().fit(snap)}
    pseudo = Pseudonymiser(LASTFM_KEY).user
    service = RecommendationService(ModelVersion("test-v1", snap.dataset, {"serving_model": "als"}, snap, models), pseudo)
    home = tmp_path_factory.mktemp("coldstart-home")
    settings = Settings(home=home, data_dir=shared_data_dir, neo4j_uri=None, mode="test", dataset=snap.dataset, reload_poll_seconds=0)
    app = create_app(settings, state=AppState(service=service, pseudonymise=pseudo, dataset=snap.dataset))
    with TestClient(app) as client:
        yield client, service


@pytest.fixture(scope="module")
def lastfm_raw(shared_data_dir):
    """Raw lastfm user ids: plays and friendships."""
    folder = shared_data_dir / "lastfm-hetrec2011"
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t")
    return plays


def _raw_of(snapshot, plays):
    from etl.pseudonymise import Pseudonymiser

    pseudo = Pseudonymiser(LASTFM_KEY).user
    return {pseudo(str(u)): str(u) for u in plays["userID"].unique()}


def test_new_user_with_followees_gets_social_recommendations_and_unknown_followees_reported(lastfm_app, lastfm_raw):
    client, _ = lastfm_app
    followees = [str(u) for u in lastfm_raw["userID"].unique()[:4]]
    r = client.post("/v1/users", json={"user_id": "shop-new-1", "follows": followees + ["nobody-77"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["known_followees"] == 4 and body["unknown_followees"] == ["nobody-77"]
    assert body["strategy"] == "cold_start_social" and body["created"] is True
    rec = client.get("/v1/users/shop-new-1/recommendations", params={"k": 10}).json()
    assert set(rec) == {"user_id", "model_version", "strategy", "items"}
    assert rec["strategy"] == "cold_start_social" and len(rec["items"]) == 10
    # what the followees played dominates the list
    followed = set(lastfm_raw.loc[lastfm_raw["userID"].astype(str).isin(followees), "artistID"].astype(str))
    assert sum(it["item_id"] in followed for it in rec["items"]) >= 5
    assert any("you follow" in reason for it in rec["items"] for reason in it["reasons"])
    again = client.post("/v1/users", json={"user_id": "shop-new-1", "follows": followees})
    assert again.status_code == 200 and again.json()["created"] is False


def test_fold_in_changes_the_next_recommendations(lastfm_app, lastfm_raw):
    client, service = lastfm_app
    followees = [str(u) for u in lastfm_raw["userID"].unique()[10:13]]
    client.post("/v1/users", json={"user_id": "shop-new-2", "follows": followees})
    before = [it["item_id"] for it in client.get("/v1/users/shop-new-2/recommendations", params={"k": 10}).json()["items"]]
    # the events route calls this for every interaction event
    metal = lastfm_raw.groupby("artistID")["userID"].count().sort_values().index[-200:-190].astype(str).tolist()
    out = service.fold_in("shop-new-2", metal + ["no-such-artist"], [50.0] * len(metal) + [1.0])
    assert out == {"user_id": "shop-new-2", "folded_in": len(metal), "unknown_items": ["no-such-artist"]}
    rec = client.get("/v1/users/shop-new-2/recommendations", params={"k": 10}).json()
    after = [it["item_id"] for it in rec["items"]]
    assert after != before and not set(after) & set(metal), "folded-in items count as seen"
    assert rec["strategy"] == "cold_start_social"  # few interactions: still blended with the followees


def test_new_user_with_nothing_gets_popularity_or_chosen_categories(lastfm_app, lastfm_snapshot):
    client, _ = lastfm_app
    r = client.post("/v1/users", json={"user_id": "loner-1", "follows": ["ghost-a", "ghost-b"]})
    assert r.status_code == 201 and r.json()["strategy"] == "popular_fallback"
    assert r.json()["unknown_followees"] == ["ghost-a", "ghost-b"]
    assert client.get("/v1/users/loner-1/recommendations").json()["strategy"] == "popular_fallback"
    r = client.post("/v1/users", json={"user_id": "loner-2", "attributes": {"categories": ["jazz"]}})
    assert r.json()["strategy"] == "cold_start_content"
    rec = client.get("/v1/users/loner-2/recommendations", params={"k": 5}).json()
    jazz = int(np.searchsorted(lastfm_snapshot.categories.astype(str), "jazz"))
    cats = [lastfm_snapshot.item_category[lastfm_snapshot.item_index(it["item_id"])] for it in rec["items"]]
    assert rec["strategy"] == "cold_start_content" and all(c == jazz for c in cats)


def test_new_item_with_a_category_reaches_users_who_love_it(lastfm_app, lastfm_raw, lastfm_snapshot):
    client, _ = lastfm_app
    snap = lastfm_snapshot
    r = client.post("/v1/items", json={"item_id": "new-artist-hh", "category": "hip-hop"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["strategy"] == "cold_start_content" and body["category_known"] and body["category_items"] > 100
    titled = client.post("/v1/items", json={"item_id": "new-artist-mc", "category": "hip-hop", "title": "MC Newcomer"}).json()
    assert titled["text_neighbours"] > 0, "title tokens pick nearest items within the category"
    cat = int(np.searchsorted(snap.categories.astype(str), "hip-hop"))
    played = snap.interactions.copy()
    played.data[:] = 1
    share = np.asarray(played[:, snap.item_category == cat].sum(axis=1)).ravel() / np.maximum(np.diff(played.indptr), 1)
    raw = _raw_of(snap, lastfm_raw)
    lovers = np.argsort(-share)[:20]
    others = np.random.default_rng(0).choice(np.flatnonzero(share == 0), 20, replace=False)

    def reached(users):
        return sum(any(it["item_id"] == "new-artist-hh" for it in
                       client.get(f"/v1/users/{raw[snap.user_ids[u]]}/recommendations", params={"k": 20}).json()["items"])
                   for u in users)

    hits_lovers, hits_others = reached(lovers), reached(others)
    assert hits_lovers >= 8 and hits_others == 0, (hits_lovers, hits_others)  # measured 18 of 20 vs 0
    sim = client.get("/v1/items/new-artist-hh/similar", params={"k": 5}).json()
    assert sim["strategy"] == "cold_start_content" and len(sim["items"]) == 5
    assert client.post("/v1/items", json={"item_id": "new-artist-hh", "category": "hip-hop"}).status_code == 200
    known = str(snap.item_ids[0])
    dup = client.post("/v1/items", json={"item_id": known, "category": "rock"})
    assert dup.status_code == 409 and dup.headers["content-type"].startswith("application/problem+json")


def test_invalid_bodies_are_problem_json_422(lastfm_app):
    client, _ = lastfm_app
    for body in ({"follows": []}, {"user_id": "x" * 257}, {"user_id": "ok", "follows": ["bad\x01id"]},
                 {"user_id": "ok", "unexpected": 1}):
        r = client.post("/v1/users", json=body)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
    r = client.post("/v1/items", json={"item_id": "x1", "category": "a\x00b"})
    assert r.status_code == 422


def test_filmtrust_roles_and_known_user_conflict(api_settings, shared_data_dir):
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    with TestClient(create_app(api_settings)) as client:
        body = {"user_id": "ft-new-1", "follows": [str(ratings["u"].iloc[0])]}
        assert client.post("/v1/users", json=body, headers=auth("storefront")).status_code == 403
        r = client.post("/v1/users", json=body, headers=auth("events"))
        assert r.status_code == 201 and r.json()["known_followees"] == 1
        rec = client.get("/v1/users/ft-new-1/recommendations", headers=auth("storefront")).json()
        assert rec["strategy"] == "cold_start_social"
        known = client.post("/v1/users", json={"user_id": str(ratings["u"].iloc[0]), "follows": []}, headers=auth("events"))
        assert known.status_code == 409


def test_known_user_fold_in_and_new_items_in_personalised_lists(lastfm_app, lastfm_raw):
    client, service = lastfm_app
    raw = str(lastfm_raw["userID"].iloc[0])
    before = client.get(f"/v1/users/{raw}/recommendations", params={"k": 10}).json()
    assert before["strategy"] == "personalized"
    first = before["items"][0]["item_id"]
    service.fold_in(raw, [first], [100.0])
    after = client.get(f"/v1/users/{raw}/recommendations", params={"k": 10}).json()
    assert after["strategy"] == "personalized" and first not in [it["item_id"] for it in after["items"]]
    assert [it["item_id"] for it in after["items"]] != [it["item_id"] for it in before["items"]]


def test_ids_with_a_slash_and_either_unicode_form_are_one_servable_item(lastfm_app, lastfm_snapshot):
    """Issue 14 item 7: path-typed routes take ``sku/123`` (sent as ``sku%2F123``), and NFC/NFD
    spellings of one id are one item (the ETL's rule, etl.validate.canonical_id)."""
    client, service = lastfm_app
    cat = str(lastfm_snapshot.categories[0])
    assert client.post("/v1/items", json={"item_id": "sku/123", "category": cat}).status_code == 201
    r = client.get("/v1/items/sku%2F123/similar", params={"k": 3})
    assert r.status_code == 200 and r.json()["item_id"] == "sku/123" and r.json()["items"]
    assert client.post("/v1/items", json={"item_id": "cafe\u0301-1", "category": cat}).status_code == 201
    again = client.post("/v1/items", json={"item_id": "caf\u00e9-1", "category": cat})
    assert again.status_code == 200 and again.json()["created"] is False
    assert client.get("/v1/items/caf%C3%A9-1/similar").status_code == 200
    assert client.get("/v1/items/cafe%CC%81-1/similar").status_code == 200


def test_include_item_adds_display_fields(lastfm_app, lastfm_raw, lastfm_snapshot):
    """Issue 14 item 19: ?include=item gives each recommended item its category and display text."""
    client, _ = lastfm_app
    raw = str(lastfm_raw["userID"].iloc[3])
    plain = client.get(f"/v1/users/{raw}/recommendations", params={"k": 5}).json()
    rich = client.get(f"/v1/users/{raw}/recommendations", params={"k": 5, "include": "item"}).json()
    assert [i["item_id"] for i in rich["items"]] == [i["item_id"] for i in plain["items"]]
    assert all("item" not in i for i in plain["items"])
    for it in rich["items"]:
        j = lastfm_snapshot.item_index(it["item_id"])
        c = int(lastfm_snapshot.item_category[j])
        assert it["item"]["category"] == (str(lastfm_snapshot.categories[c]) if c >= 0 else None)
        assert "text" in it["item"]
    assert client.get(f"/v1/users/{raw}/recommendations", params={"include": "price"}).status_code == 422
