"""Business filters of RecommendationService on a small real-shaped snapshot with categories."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.registry import build_model
from recsys.serving import RecommendationService
from recsys.versions import ModelVersion


def _identity(raw: str) -> str:
    return raw


@pytest.fixture(scope="module")
def service(tiny_snapshot) -> RecommendationService:
    models = {
        "popular": build_model("popular").fit(tiny_snapshot),
        "als": build_model("als", factors=8, iterations=5, seed=0, num_threads=1).fit(tiny_snapshot),
    }
    version = ModelVersion("v-test", tiny_snapshot.dataset, {"serving_model": "als"}, tiny_snapshot, models)
    return RecommendationService(version, _identity)


def _items(out: dict) -> list[str]:
    return [it["item_id"] for it in out["items"]]


def _cat(snap, item_id: str) -> str:
    return str(snap.categories[snap.item_category[snap.item_index(item_id)]])


def test_exclude_items_and_seen_are_never_returned(service):
    snap = service.snapshot
    first = _items(service.recommend("u03", k=5))
    out = _items(service.recommend("u03", k=5, exclude_items=first[:2] + ["no-such-item"]))
    assert not set(first[:2]) & set(out) and len(out) == 5
    seen = {str(snap.item_ids[j]) for j in snap.interactions[snap.user_index("u03")].indices}
    assert not seen & set(out)


def test_exclude_purchased_false_lets_history_through(service):
    snap = service.snapshot
    seen = {str(snap.item_ids[j]) for j in snap.interactions[snap.user_index("u03")].indices}
    out = _items(service.recommend("u03", k=snap.n_items, exclude_purchased=False))
    assert seen <= set(out)


def test_category_restriction_and_exclusion(service):
    snap = service.snapshot
    only = _items(service.recommend("u05", k=5, categories=["cat1"]))
    assert only and {_cat(snap, i) for i in only} == {"cat1"}
    without = _items(service.recommend("u05", k=10, exclude_categories=["cat1", "cat2"]))
    assert without and not {"cat1", "cat2"} & {_cat(snap, i) for i in without}
    assert service.recommend("u05", k=5, categories=["no-such-category"])["items"] == []


def test_diversity_caps_items_per_category(service):
    snap = service.snapshot
    out = _items(service.recommend("u07", k=8, max_per_category=2))
    cats = [_cat(snap, i) for i in out]
    assert len(out) == 8 and max(cats.count(c) for c in set(cats)) <= 2
    # the cap keeps the model's order among what it keeps
    free = _items(service.recommend("u07", k=snap.n_items))
    assert out == [i for i in free if i in set(out)]


def _scores(out: dict) -> list[float]:
    return [round(it["score"], 4) for it in out["items"]]


def test_candidate_cache_gives_identical_answers(tiny_snapshot, service):
    cold = RecommendationService(service.version, _identity)
    warm = RecommendationService(service.version, _identity).warm(10)
    for user in ("u01", "u10", "u20", "u29", "unknown-user"):
        for kwargs in ({}, {"max_per_category": 1}, {"exclude_categories": ["cat0"]}, {"categories": ["cat3"]}):
            a, b = cold.recommend(user, k=6, **kwargs), warm.recommend(user, k=6, **kwargs)
            # same scores in the same order (equal-score ties, e.g. popularity counts, may swap ids)
            assert _scores(a) == _scores(b), (user, kwargs)
            if a["strategy"] == "personalized":
                assert _items(a) == _items(b), (user, kwargs)


def test_live_interactions_are_excluded_next_time(service):
    svc = RecommendationService(service.version, _identity).warm(10)
    top = _items(svc.recommend("u02", k=3))
    svc.note_interactions("u02", top[:2])
    after = _items(svc.recommend("u02", k=3))
    assert not set(top[:2]) & set(after) and len(after) == 3
    assert top[0] in _items(svc.recommend("u02", k=svc.snapshot.n_items, exclude_purchased=False))
