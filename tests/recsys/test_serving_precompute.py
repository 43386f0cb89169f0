"""The serving fast path answers exactly like the slow one: cached candidates with precomputed
reasons' evidence, memory-mapped from a serving cache, versus scoring and explaining per request."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.explain import reasons_for
from recsys.registry import build_model
from recsys.serving import RecommendationService, map_model_arrays
from recsys.versions import ModelVersion


def _version(snapshot) -> ModelVersion:
    models = {
        "popular": build_model("popular").fit(snapshot),
        "als": build_model("als", factors=8, iterations=5, seed=0, num_threads=1).fit(snapshot),
    }
    return ModelVersion("v-test", snapshot.dataset, {"serving_model": "als"}, snapshot, models)


@pytest.fixture(scope="module")
def services(tiny_snapshot, tmp_path_factory):
    cache = tmp_path_factory.mktemp("serving-cache")
    slow = RecommendationService(_version(tiny_snapshot), lambda raw: raw)
    fast_version = _version(tiny_snapshot)
    assert map_model_arrays(fast_version.models, cache, min_bytes=1) >= 2  # both factor tables mapped
    fast = RecommendationService(fast_version, lambda raw: raw).warm(candidates=8, cache_dir=cache)
    again = RecommendationService(_version(tiny_snapshot), lambda raw: raw).warm(candidates=8, cache_dir=cache)
    return slow, fast, again


def test_cached_answers_and_reasons_equal_full_scoring(services):
    slow, fast, again = services
    users = [str(u) for u in slow.snapshot.user_ids]
    assert any(fast.answers_from_cache(u) for u in users)
    def same(a: dict, b: dict) -> bool:
        # scores of a batched product differ from a single user's in the last float32 bits
        return ([(i["item_id"], i["reasons"]) for i in a["items"]] == [(i["item_id"], i["reasons"]) for i in b["items"]]
                and np.allclose([i["score"] for i in a["items"]], [i["score"] for i in b["items"]], rtol=1e-4, atol=1e-5)
                and {k: v for k, v in a.items() if k != "items"} == {k: v for k, v in b.items() if k != "items"})

    for user in users:
        for k in (1, 3, 5):
            expected = slow.recommend(user, k=k)
            assert same(fast.recommend(user, k=k), expected)
            assert same(again.recommend(user, k=k), expected)  # the second process maps what the first wrote


def test_precomputed_evidence_matches_reasons_for_on_every_candidate(services):
    _, fast, _ = services
    snap = fast.snapshot
    for u in range(snap.n_users):
        row = np.asarray(fast._candidates[0][u])
        row = row[row >= 0]
        if not row.size or snap.interactions.indptr[u + 1] == snap.interactions.indptr[u]:
            continue
        assert fast._precomputed_reasons(fast.model, u, row) == reasons_for(
            snap, fast.model, u, row, popularity=fast._popularity, popularity_cut=fast._popularity_cut)


def test_a_user_with_live_events_leaves_the_cache(services):
    _, fast, _ = services
    user = next(str(u) for u in fast.snapshot.user_ids if fast.answers_from_cache(str(u)))
    top = fast.recommend(user, k=1)["items"][0]["item_id"]
    fast.note_interactions(user, [top])
    assert not fast.answers_from_cache(user)
    assert top not in [it["item_id"] for it in fast.recommend(user, k=5)["items"]]
