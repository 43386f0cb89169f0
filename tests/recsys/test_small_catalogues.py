"""Tiny catalogues: k clamped everywhere, ALS factors capped (issue 14 items 9, 13)."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from tests.conftest import synthetic_snapshot


def test_recall_ranks_k_larger_than_the_catalogue_in_both_callers():
    from gnn.training import recall_at_k as gnn_recall
    from recsys.metrics import precision_at_k, recall_at_k

    rel = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0]], dtype=np.float32))
    ranked = np.array([[0, 1, 2, 3], [2, 3, -1, -1]], np.int32)
    assert recall_at_k(ranked, rel, 10).tolist() == [1.0, 0.0]
    assert precision_at_k(ranked, rel, 10).tolist() == [0.2, 0.0]
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 3)), rng.normal(size=(4, 3))
    seen = sp.csr_matrix((2, 4))
    assert 0.0 <= gnn_recall(u, v, seen, rel, k=10) <= 1.0
    assert gnn_recall(u, v, seen, rel, k=10) == 1.0  # 4 items, k=10: every positive is ranked


def test_evaluate_a_gnn_on_a_four_item_catalogue_does_not_crash():
    from recsys.evaluation import evaluate

    snap = synthetic_snapshot(n_users=12, n_items=4, density=0.5)
    out = evaluate(snap, "random-80-10-10", ["lightgcn"], ks=(10,), seed=0, tune_params=False,
                   params={"lightgcn": {"epochs": 2}})
    assert 0.0 <= out["models"]["lightgcn"]["recall@10"] <= 1.0


def test_als_factors_are_capped_at_the_data(caplog):
    from recsys.models.als import AlternatingLeastSquaresModel

    snap = synthetic_snapshot(n_users=10, n_items=10, density=0.3)
    with caplog.at_level(logging.INFO, logger="recsys.models.als"):
        model = AlternatingLeastSquaresModel(factors=64, iterations=2).fit(snap)
    assert model.user_factors_.shape[1] == model.factors_used_ == 10 and model.get_params()["factors"] == 64
    assert "capped at 10" in caplog.text


def test_evaluate_reports_cold_test_users_and_items():
    """Issue 14 item 17: the test set's cold users/items are in the evaluate JSON."""
    from recsys.evaluation import evaluate

    snap = synthetic_snapshot(n_users=20, n_items=30, density=0.2)
    out = evaluate(snap, "cold-items", ["popular"], ks=(10,), seed=0, tune_params=False)
    t = out["test_set"]
    assert t["n_cold_test_items"] > 0 and t["n_cold_test_items"] <= t["n_test_items"]
    assert 0.0 < t["cold_item_test_share"] <= 1.0
    assert set(t) == {"n_test_users", "n_cold_test_users", "n_test_items", "n_cold_test_items", "cold_item_test_share"}
