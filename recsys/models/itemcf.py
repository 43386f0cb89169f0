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

    Attributes:
        similarity_: (n_items, n_items) float32 CSR item-item similarity (top-K per row).
    """

    name = "itemcf"
    param_grid = [
        {"similarity": "cosine", "neighbours": 300, "weighting": "binary"},
        {"similarity": "cosine", "neighbours": 1000, "weighting": "log"},
        {"similarity": "bm25", "neighbours": 100, "weighting": "log"},
        {"similarity": "bm25", "neighbours": 300, "weighting": "log"},
    ]

    def __init__(
        self,
        similarity: str = "cosine",
        neighbours: int = 100,
        weighting: str = "auto",
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
    ):
        super().__init__()
        self.similarity = similarity
        self.neighbours = neighbours
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b

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
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)

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
