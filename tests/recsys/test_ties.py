"""Honest ties: metrics are expectations over tie orders; serving breaks ties by a documented rule."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from graph.snapshot import build_snapshot
from recsys.evaluation import _rank_metrics
from recsys.metrics import MetricAccumulator, all_metrics
from recsys.protocol import Recommender, top_k


class ConstantModel(Recommender):
    """Scores every item 0 (no information at all)."""

    name = "constant"

    def _fit(self, snapshot, validation):
        pass

    def score(self, user_idx):
        return np.zeros((np.atleast_1d(user_idx).size, self._check_fitted().n_items), np.float32)


def _snapshot(item_names):
    """4 users x 6 items; user 0 saw item 0, user 1 saw items 0 and 1."""
    inter = pd.DataFrame(
        [("u0", item_names[0]), ("u1", item_names[0]), ("u1", item_names[1]), ("u2", item_names[2]), ("u3", item_names[3])],
        columns=["user_id", "item_id"],
    ).assign(kind="rating", value=1.0, ts=np.nan)
    users = pd.DataFrame({"user_id": ["u0", "u1", "u2", "u3"]})
    items = pd.DataFrame({"item_id": list(item_names)})
    return build_snapshot("ties", users, items, inter, pd.DataFrame(columns=["follower_id", "followee_id"]))


def _test_matrix(snap, pairs):
    r = [snap.user_index(u) for u, _ in pairs]
    c = [snap.item_index(i) for _, i in pairs]
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=snap.interactions.shape)


PAIRS = [("u0", "b"), ("u0", "f"), ("u1", "e"), ("u2", "a")]


def test_constant_scorer_gets_the_expected_random_order_metrics():
    snap = _snapshot("abcdef")
    model = ConstantModel().fit(snap)
    m = _rank_metrics(model, snap, None, _test_matrix(snap, PAIRS), None, (1, 3), snap.n_items)
    # user u0: 5 candidates, 2 relevant; u1: 4 candidates, 1 relevant; u2: 5 candidates, 1 relevant
    n_cand = np.array([5, 4, 5])
    n_rel = np.array([2, 1, 1])
    for k in (1, 3):
        assert m[f"recall@{k}"] == pytest.approx(np.mean(k / n_cand))
        assert m[f"precision@{k}"] == pytest.approx(np.mean(n_rel / n_cand))
    assert m["n_users"] == 3


def test_renaming_items_changes_no_metric():
    base = _snapshot("abcdef")
    renamed_names = "zyxwvu"  # reverses the alphabetical (= index) order
    ren = _snapshot(renamed_names)
    to_new = dict(zip("abcdef", renamed_names))
    for model_cls in (ConstantModel,):
        a = _rank_metrics(model_cls().fit(base), base, None, _test_matrix(base, PAIRS), None, (1, 2, 5), base.n_items)
        b = _rank_metrics(model_cls().fit(ren), ren, None, _test_matrix(ren, [(u, to_new[i]) for u, i in PAIRS]), None,
                          (1, 2, 5), ren.n_items)
        for key in a:
            assert a[key] == pytest.approx(b[key]), key


def test_expected_metrics_equal_the_mean_over_every_tie_order():
    # one user, 6 candidate items, scores with two tie groups straddling the cut-offs
    scores = np.array([[3.0, 2.0, 2.0, 2.0, 1.0, 1.0]], np.float32)
    rel = sp.csr_matrix(np.array([[0, 1, 1, 0, 1, 0]], np.float32))
    acc = MetricAccumulator((1, 2, 3, 5), n_items=0)
    acc.add(scores, rel)
    got = acc.result()
    # brute force: every order of the tied items, scored with the fixed-list metrics
    sums, n = {}, 0
    for g1 in itertools.permutations([1, 2, 3]):
        for g2 in itertools.permutations([4, 5]):
            ranked = np.array([[0, *g1, *g2]], np.int32)
            for key, v in all_metrics(ranked, rel, (1, 2, 3, 5), 6).items():
                sums[key] = sums.get(key, 0.0) + v
            n += 1
    for key in ("precision", "recall", "ndcg", "hr", "map"):
        for k in (1, 2, 3, 5):
            assert got[f"{key}@{k}"] == pytest.approx(sums[f"{key}@{k}"] / n), f"{key}@{k}"


def test_without_ties_the_expected_metrics_are_the_fixed_list_metrics():
    rng = np.random.default_rng(0)
    scores = rng.random((20, 30)).astype(np.float32)
    rel = sp.csr_matrix((rng.random((20, 30)) < 0.2).astype(np.float32))
    acc = MetricAccumulator((5, 10), n_items=30)
    ranked, _ = top_k(scores, 10)
    acc.add(scores, rel, ranked)
    fixed = all_metrics(ranked, rel, (5, 10), 30)
    for key, v in acc.result().items():
        assert v == pytest.approx(fixed[key]), key


def test_serving_breaks_ties_by_popularity_then_a_seeded_hash_not_by_id():
    names = [f"i{j:03d}" for j in range(60)]
    rows = [("u0", "i059"), ("u1", "i059"), ("u2", "i030")]  # i059 most popular, then i030
    inter = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(kind="rating", value=1.0, ts=np.nan)
    snap = build_snapshot("ties", pd.DataFrame({"user_id": ["u0", "u1", "u2", "u3"]}), pd.DataFrame({"item_id": names}),
                          inter, pd.DataFrame(columns=["follower_id", "followee_id"]))
    model = ConstantModel().fit(snap)
    items, _ = model.recommend(np.array([3]), k=60)
    got = [str(snap.item_ids[j]) for j in items[0]]
    assert got[:2] == ["i059", "i030"]
    assert got[2:] != sorted(got[2:]) and got[2:] != sorted(got[2:], reverse=True)
    # stable: the top-k is a prefix of the top-(k+1), and the same on every call
    for k in (1, 5, 17):
        assert list(model.recommend(np.array([3]), k=k)[0][0]) == list(items[0][:k])
