"""Registrations (POST /v1/users, POST /v1/items) are journalled, stored once, and survive swaps
and restarts (issue 14 item 1)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import build_service, create_app
from tests.api.conftest import auth


@pytest.fixture
def own_home(api_settings, tmp_path):
    """A private copy of the filmtrust home (models + embedded store), so journal and store are ours."""
    home = tmp_path / "home"
    shutil.copytree(api_settings.home, home, ignore=shutil.ignore_patterns("queue", "retrain"))
    return api_settings.model_copy(update={"home": home, "queue_dir": None})


def _followee(shared_data_dir) -> str:
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    return str(ratings["u"].iloc[0])


def test_registrations_reach_the_store_once_and_survive_a_hot_swap_and_a_restart(own_home, shared_data_dir):
    from graph.store import open_store

    followee = _followee(shared_data_dir)
    user = {"user_id": "reg-new-1", "follows": [followee, "nobody-at-all"], "attributes": {"categories": ["x"]}}
    item = {"item_id": "reg-item/1", "category": "Drama", "title": "A new film"}
    with TestClient(create_app(own_home)) as client:
        state = client.app.state.socialrec
        assert client.post("/v1/users", json=user, headers=auth("events")).status_code == 201
        assert client.post("/v1/items", json=item, headers=auth("events")).status_code == 201
        # a retry is a duplicate batch: one registration in the journal, not two
        assert client.post("/v1/users", json=user, headers=auth("events")).status_code == 200
        regs = state.events.queue.registrations()
        assert sorted(t for _, _, t, _ in regs) == ["follows", "items", "users"]  # the unknown followee is not stored
        assert state.events.replayer.drain(30)

        # hot swap to a freshly loaded service of the same version: the registrations are re-applied
        fresh = build_service(own_home, "filmtrust", state.pseudonymise)
        assert fresh.overlay.get_user(state.pseudonymise("reg-new-1")) is None
        state.swap(fresh)
        rec = client.get("/v1/users/reg-new-1/recommendations", headers=auth("storefront")).json()
        assert rec["strategy"] == "cold_start_social"
        assert client.app.state.socialrec.service.knows_item("reg-item/1")  # filmtrust has no categories: no vector

    # a restart: a new app on the same home
    with TestClient(create_app(own_home)) as client:
        rec = client.get("/v1/users/reg-new-1/recommendations", headers=auth("storefront")).json()
        assert rec["strategy"] == "cold_start_social"
        assert client.app.state.socialrec.service.knows_item("reg-item/1")
        assert client.app.state.socialrec.events.replayer.drain(30)
        assert client.app.state.socialrec.events.queue.stats()["pending"] == 0

    store = open_store("filmtrust", **own_home.store_kwargs())
    pseudo = client.app.state.socialrec.pseudonymise
    users = store.read_table("users")
    follows = store.read_table("follows")
    items = store.read_table("items")
    assert (users["user_id"] == pseudo("reg-new-1")).sum() == 1
    mine = follows[follows["follower_id"] == pseudo("reg-new-1")]
    assert mine["followee_id"].tolist() == [pseudo(followee)]
    assert items.loc[items["item_id"] == "reg-item/1", "title"].tolist() == ["A new film"]
    snap = store.snapshot()  # what the next retrain trains on
    assert snap.user_index(pseudo("reg-new-1")) is not None and snap.item_index("reg-item/1") is not None


def test_a_self_follow_is_its_own_422(own_home):
    with TestClient(create_app(own_home)) as client:
        r = client.post("/v1/users", json={"user_id": "me-1", "follows": ["me-1"]}, headers=auth("events"))
        assert r.status_code == 422 and "themselves" in r.text
