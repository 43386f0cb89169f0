"""``itemcf``: item-based collaborative filtering (``implicit`` item-item nearest neighbours)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.models.weighting import confidence, default_weighting
from recsys.protocol import Recommender, top_k


class ItemCFModel(Recommender):
    """Item-item CF: score(u, j) = sum_{i in I(u)} w_ui * sim(i, j) over the K nearest neighbours.

    Similarity from ``implicit.nearest_neighbours``: ``cosine`` (CosineRecommender) or ``bm25``
    (BM25Recommender, Robertson's Okapi weighting of the user-item matrix before the dot product).
    Source: Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001.

    Args:
        similarity: ``cosine`` or ``bm25``.
        neighbours: K, neighbours kept per item.
        weighting: input weighting (``auto``/``binary``/``log``).
        bm25_k1, bm25_b: BM25 parameters.
        shrinkage: lambda of the significance weighting sim * n_ij / (n_ij + lambda), n_ij = users
            who interacted with both items (Koren, "Factor in the neighbors", TKDD 2010, eq. 5);
            0 = none.
        min_support: drop similarities built on fewer than this many common users (1 = keep all).

    Attributes:
        similarity_: (n_items, n_items) float32 CSR item-item similarity (top-K per row).
    """

    name = "itemcf"
    param_grid = [
        {"similarity": "cosine", "neighbours": 300, "weighting": "binary"},
        {"similarity": "cosine", "neighbours": 1000, "weighting": "log"},
        {"similarity": "bm25", "neighbours": 100, "weighting": "log"},
        {"similarity": "bm25", "neighbours": 300, "weighting": "log"},
        # sparse data: shrink similarities built on few co-occurrences, drop single ones
        {"similarity": "cosine", "neighbours": 300, "weighting": "binary", "shrinkage": 10.0},
        {"similarity": "cosine", "neighbours": 300, "weighting": "binary", "shrinkage": 10.0, "min_support": 2},
    ]

    def __init__(
        self,
        similarity: str = "cosine",
        neighbours: int = 100,
        weighting: str = "auto",
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        shrinkage: float = 0.0,
        min_support: int = 1,
    ):
        super().__init__()
        self.similarity = similarity
        self.neighbours = neighbours
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.shrinkage = shrinkage
        self.min_support = min_support

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        if self.similarity == "cosine":
            model = CosineRecommender(K=self.neighbours, num_threads=0)
        elif self.similarity == "bm25":
            model = BM25Recommender(K=self.neighbours, K1=self.bm25_k1, B=self.bm25_b, num_threads=0)
        else:
            raise ValueError(f"unknown similarity {self.similarity!r}; expected 'cosine' or 'bm25'")
        scheme = default_weighting(snapshot.kinds) if self.weighting == "auto" else self.weighting
        self.user_items_ = confidence(snapshot.interactions, scheme)
        model.fit(self.user_items_, show_progress=False)
        sim = sp.csr_matrix(model.similarity, dtype=np.float32)
        if self.shrinkage > 0 or self.min_support > 1:
            sim = self._support_weighted(sim, (sp.csr_matrix(snapshot.interactions) != 0).astype(np.float32))
        self.similarity_ = sim

    def _support_weighted(self, sim: sp.csr_matrix, binary: sp.csr_matrix, block: int = 2048) -> sp.csr_matrix:
        """Shrink / drop similarity entries by their co-occurrence count (blocks of item rows)."""
        sim = sim.tocsr()
        sim.sort_indices()
        items_users = binary.T.tocsr()
        out = sim.copy()
        for start in range(0, sim.shape[0], block):
            stop = min(start + block, sim.shape[0])
            co = (items_users[start:stop] @ binary).tocsr()  # (block, n_items) co-occurrence counts
            part = sim[start:stop]
            rows = np.repeat(np.arange(stop - start), np.diff(part.indptr))
            n_ij = np.asarray(co[rows, part.indices]).ravel()
            w = np.ones_like(n_ij, dtype=np.float32)
            if self.shrinkage > 0:
                w = (n_ij / (n_ij + self.shrinkage)).astype(np.float32)
            if self.min_support > 1:
                w[n_ij < self.min_support] = 0.0
            out.data[out.indptr[start] : out.indptr[stop]] *= w
        out.eliminate_zeros()
        return out

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = self.user_items_[np.atleast_1d(user_idx)]
        return np.asarray((rows @ self.similarity_).todense(), dtype=np.float32)

    def similar_items(self, item_idx, k: int = 10):
        """Nearest items by the learned item-item similarity (the item itself excluded)."""
        items = np.atleast_1d(np.asarray(item_idx))
        scores = np.asarray(self.similarity_[items].todense(), dtype=np.float32)
        scores[scores == 0] = -np.inf
        scores[np.arange(items.size), items] = -np.inf
        return top_k(scores, k)

    def explain(self, user_idx: int, item_idx: int, n: int = 2) -> list[int]:
        """Items the user interacted with that contribute most to ``item_idx``'s score (indices)."""
        row = self.user_items_[user_idx]
        contrib = np.asarray(row.multiply(self.similarity_[:, item_idx].T).todense()).ravel()
        best = np.argsort(-contrib)[:n]
        return [int(i) for i in best if contrib[i] > 0]
