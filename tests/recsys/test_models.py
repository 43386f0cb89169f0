"""popular, als and itemcf pass the shared recommender contract, plus model-specific behaviour."""

from __future__ import annotations

import numpy as np

from recsys.models.als import AlternatingLeastSquaresModel
from recsys.models.itemcf import ItemCFModel
from recsys.models.popular import PopularModel
from tests.recsys.recommender_contract import RecommenderContract


class TestPopular(RecommenderContract):
    def make_model(self):
        return PopularModel()

    def test_ranks_by_distinct_users(self, fitted, snap):
        counts = np.diff(snap.interactions.tocsc().indptr)
        items, _ = fitted.recommend(np.array([snap.n_users - 1]), k=3)
        assert list(counts[items[0]]) == sorted(counts, reverse=True)[:3]


class TestALS(RecommenderContract):
    def make_model(self):
        return AlternatingLeastSquaresModel(factors=8, iterations=5, seed=3)

    def test_fold_in_matches_training_user(self, fitted, snap):
        u = 4
        vec = fitted.fold_in(snap.interactions[u].indices, snap.interactions[u].data)
        cos = vec @ fitted.user_factors_[u] / (np.linalg.norm(vec) * np.linalg.norm(fitted.user_factors_[u]))
        assert cos > 0.9


class TestItemCFCosine(RecommenderContract):
    def make_model(self):
        return ItemCFModel(similarity="cosine", neighbours=20)

    def test_similar_items_excludes_itself(self, fitted):
        items, scores = fitted.similar_items(np.array([3]), k=5)
        assert 3 not in items[0]


class TestItemCFBM25(RecommenderContract):
    def make_model(self):
        return ItemCFModel(similarity="bm25", neighbours=20)
