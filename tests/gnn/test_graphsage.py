"""GraphSAGE passes the recommender contract and embeds users unseen in training."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.graphsage import GraphSAGEModel
from tests.recsys.recommender_contract import RecommenderContract


class TestGraphSAGE(RecommenderContract):
    def make_model(self):
        return GraphSAGEModel(embedding_dim=16, num_neighbors=(5, 3), batch_size=64, epochs=3, seed=3)

    def test_new_users_are_embedded_from_neighbours(self, fitted, snap):
        vecs = fitted.embed_new_users(
            [np.array([0, 1]), np.zeros(0, int), np.array([2])],
            [snap.interactions[0].indices, snap.interactions[5].indices, np.zeros(0, int)],
        )
        assert vecs.shape == (3, 16) and np.isfinite(vecs).all()
        scores = fitted.score_embeddings(vecs)
        assert scores.shape == (3, snap.n_items)
        # different neighbourhoods give different vectors
        assert not np.allclose(vecs[0], vecs[1])

    def test_new_user_with_a_trained_users_history_ranks_like_it(self, fitted, snap):
        u = 7
        vec = fitted.embed_new_users([snap.follows[u].indices], [snap.interactions[u].indices])[0]
        ref = fitted.user_factors_[u]
        assert vec @ ref / (np.linalg.norm(vec) * np.linalg.norm(ref)) > 0.5

    def test_mismatched_lists_raise(self, fitted):
        with pytest.raises(ValueError):
            fitted.embed_new_users([np.array([0])], [])

    def test_early_stopping_history_is_recorded(self, fitted):
        assert 1 <= fitted.best_epoch_ <= 3 and len(fitted.history_) >= 1


class TestGraphSAGEWithoutSocialEdges(RecommenderContract):
    def make_model(self):
        return GraphSAGEModel(embedding_dim=8, num_layers=1, use_follows=False, use_categories=False, batch_size=64, epochs=2, seed=0)
