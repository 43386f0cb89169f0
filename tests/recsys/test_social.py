"""The gensim social-embedding model passes the contract; its walks follow the graph."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.social import SocialEmbeddingModel, random_walks, walk_graph
from tests.conftest import synthetic_snapshot
from tests.recsys.recommender_contract import RecommenderContract


class TestSocial(RecommenderContract):
    def make_model(self):
        return SocialEmbeddingModel(dim=16, walks_per_node=4, walk_length=10, epochs=2, neighbors=10, seed=5)

    def test_vectors_cover_users_and_items(self, fitted, snap):
        assert fitted.user_embeddings().shape == (snap.n_users, 16)
        assert fitted.item_embeddings().shape == (snap.n_items, 16)

    def test_new_user_vector_is_the_mean_of_followees(self, fitted):
        vec = fitted.embed_new_users([np.array([1, 2])], [np.zeros(0, int)])[0]
        np.testing.assert_allclose(vec, fitted.user_vectors_[[1, 2]].mean(0), rtol=1e-5)
        assert fitted.score_embeddings(vec[None]).shape == (1, fitted.item_vectors_.shape[0])


class TestSocialOnlyFollowGraph(RecommenderContract):
    def make_model(self):
        return SocialEmbeddingModel(dim=8, walks_per_node=3, walk_length=8, epochs=1, item_edges=False, p=0.5, q=2.0, seed=1)

    def test_items_have_no_vectors(self, fitted):
        assert fitted.item_embeddings() is None


def test_walks_only_step_along_edges():
    snap = synthetic_snapshot()
    adj = walk_graph(snap, None, item_edges=True)
    for p, q in ((1.0, 1.0), (0.25, 4.0)):
        walks = random_walks(adj, np.arange(snap.n_users), 3, 12, p, q, np.random.default_rng(0))
        assert walks.shape == (3 * snap.n_users, 12)
        a, b = walks[:, :-1].ravel(), walks[:, 1:].ravel()
        moved = a != b
        assert np.all(np.asarray(adj[a[moved], b[moved]]).ravel() > 0)


def test_low_return_parameter_makes_walks_backtrack_more():
    rng = np.random.default_rng(0)
    ring = sp.diags([np.ones(49), np.ones(49)], [1, -1], shape=(50, 50)).tocsr()
    ring = ring + sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 49, 0, 25], [25, 0, 49, 0])), shape=(50, 50))
    ring = ((ring + ring.T) > 0).astype(np.float32).tocsr()
    ring.sort_indices()

    def backtracks(p):
        w = random_walks(ring, np.arange(50), 4, 20, p, 1.0, rng)
        return np.mean(w[:, 2:] == w[:, :-2])

    assert backtracks(0.1) > backtracks(10.0) + 0.2
