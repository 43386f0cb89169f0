"""LightGCN passes the recommender contract; social edges and fold-in behave."""

from __future__ import annotations

import numpy as np

from gnn.lightgcn import LightGCNModel
from tests.recsys.recommender_contract import RecommenderContract


class TestLightGCN(RecommenderContract):
    def make_model(self):
        return LightGCNModel(embedding_dim=16, epochs=20, eval_every=5, seed=3)

    def test_embeddings_have_the_configured_shape(self, fitted, snap):
        assert fitted.user_embeddings().shape == (snap.n_users, 16)
        assert fitted.item_embeddings().shape == (snap.n_items, 16)

    def test_fold_in_of_a_known_user_points_the_same_way(self, fitted, snap):
        u = 3
        vec = fitted.embed_new_users([np.zeros(0, int)], [snap.interactions[u].indices])[0]
        ref = fitted.user_factors_[u]
        cos = vec @ ref / (np.linalg.norm(vec) * np.linalg.norm(ref))
        assert cos > 0.5
        assert fitted.score_embeddings(vec[None]).shape == (1, snap.n_items)


class TestSocialLightGCN(RecommenderContract):
    def make_model(self):
        return LightGCNModel(embedding_dim=16, epochs=10, eval_every=5, social_weight=0.5, refit=True, seed=1)

    def test_user_with_only_follows_gets_a_vector(self, fitted, snap):
        vec = fitted.embed_new_users([np.array([0, 1, 2])], [np.zeros(0, int)])
        assert np.abs(vec).sum() > 0
