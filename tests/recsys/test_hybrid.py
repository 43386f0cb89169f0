"""The hybrid re-ranker passes the contract, uses its social features, and never reads test data."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.hybrid import EaseScorer, HybridModel
from tests.recsys.recommender_contract import RecommenderContract


def _small_hybrid(**kw):
    return HybridModel(generators=("ease", "userknn", "als", "social"), candidates=15, n_estimators=30, min_child_samples=5, seed=2, **kw)


class TestHybrid(RecommenderContract):
    def make_model(self):
        return _small_hybrid()

    def test_feature_names_include_social_signals(self, fitted):
        names = set(fitted.feature_importance())
        assert {"followees_interacted", "followers_interacted", "social_cos", "user_category_share"} <= names

    def test_candidates_outrank_everything_else(self, fitted, snap):
        scores = fitted.score(np.arange(3))
        assert np.isfinite(scores).all()
        assert (scores >= 1).any(axis=1).all() and (scores < 0).any(axis=1).all()


class TestEase(RecommenderContract):
    def make_model(self):
        return EaseScorer(lam=5.0, min_count=1)


def test_disjoint_validation_is_used_without_refit(tiny_snapshot):
    inter = tiny_snapshot.interactions.tocoo()
    held = np.zeros(inter.nnz, bool)
    held[::7] = True
    train = sp.csr_matrix((inter.data[~held], (inter.row[~held], inter.col[~held])), shape=inter.shape)
    valid = sp.csr_matrix((inter.data[held], (inter.row[held], inter.col[held])), shape=inter.shape)
    model = _small_hybrid().fit(tiny_snapshot.with_interactions(train), validation=valid)
    assert all(k.startswith("fit_") and v >= 0 for k, v in model.timings_.items() if k.startswith("fit_"))
    # one fit per generator: the harness's validation set trained the ranker, no refit was needed
    assert model._ctx.seen.nnz == train.nnz
