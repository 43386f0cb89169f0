"""``popular``: the most-interacted items, the same list for everyone (seen items filtered)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.protocol import Recommender


class PopularModel(Recommender):
    """Most popular items by number of distinct users who interacted with them.

    Args:
        recency_half_life_days: if > 0 and the snapshot has timestamps, each interaction counts
            ``0.5 ** (age_days / half_life)`` relative to the newest one (time-decayed
            popularity); 0 = plain counts. Units: days.

    Attributes:
        item_scores_: (n_items,) float32 popularity after ``fit``.
    """

    name = "popular"
    param_grid = [{"recency_half_life_days": 0.0}]

    def __init__(self, recency_half_life_days: float = 0.0):
        super().__init__()
        self.recency_half_life_days = recency_half_life_days

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        inter = snapshot.interactions
        if self.recency_half_life_days > 0 and snapshot.has_timestamps:
            ts = snapshot.timestamps.tocsr()
            t = np.nan_to_num(ts.data, nan=np.nanmax(ts.data))
            age_days = (t.max() - t) / 86400.0
            w = np.power(0.5, age_days / self.recency_half_life_days)
            m = sp.csr_matrix((w, ts.indices, ts.indptr), shape=ts.shape)
            pop = np.asarray(m.sum(axis=0)).ravel()
        else:
            pop = np.diff(inter.tocsc().indptr).astype(np.float64)
        self.item_scores_ = pop.astype(np.float32)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(user_idx)
        return np.broadcast_to(self.item_scores_, (users.size, self.item_scores_.size))

    def similar_items(self, item_idx, k: int = 10):
        """Popular items stand in for neighbours: the k most popular others."""
        from recsys.protocol import top_k

        items = np.atleast_1d(np.asarray(item_idx))
        scores = np.tile(self.item_scores_, (items.size, 1))
        scores[np.arange(items.size), items] = -np.inf
        return top_k(scores, k)
