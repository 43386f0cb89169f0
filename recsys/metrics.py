"""Top-K ranking metrics over a whole user population.

Every function takes the ranked lists of all evaluated users at once and returns per-user values;
the harness averages over users that have at least one held-out positive.
Definitions follow the full-ranking protocol of MHCN/SEPT (Yu et al., WWW 2021 / KDD 2021):
relevance is binary, Recall@K = hits / |relevant|, NDCG@K uses the ideal DCG over
min(|relevant|, K) items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _check(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if ranked.ndim != 2 or ranked.shape[0] != relevant.shape[0]:
        raise ValueError(f"ranked {ranked.shape} and relevant {relevant.shape} disagree")


def hits_matrix(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Binary hit indicator of each ranked position.

    Args:
        ranked: (n_users, m) int32 item indices, best first; -1 = padding (never a hit). Lists
            shorter than k (a catalogue of fewer than k items) are padded: k is clamped, never an error.
        relevant: (n_users, n_items) CSR, non-zero = held-out positive.
        k: cut-off, k >= 1.
    Returns:
        (n_users, k) bool, True where the item at that rank is relevant.
    Raises:
        ValueError: if k < 1 or the shapes disagree.
    """
    _check(ranked, relevant, k)
    top = ranked[:, :k].astype(np.int64)
    if top.shape[1] < k:  # a catalogue smaller than k: the missing ranks are padding, never hits
        top = np.hstack([top, np.full((top.shape[0], k - top.shape[1]), -1, np.int64)])
    rel = relevant.tocsr()
    rel.sort_indices()
    out = np.zeros(top.shape, dtype=bool)
    for u in range(top.shape[0]):
        cols = rel.indices[rel.indptr[u] : rel.indptr[u + 1]]
        if cols.size:
            out[u] = np.isin(top[u], cols)
    return out


def precision_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Precision@K per user: hits in the top K / K. Returns (n_users,) float64 in [0, 1].

    Raises: ValueError for k < 1 or disagreeing shapes. Source: Yu et al. (WWW 2021).
    """
    return hits_matrix(ranked, relevant, k).sum(axis=1) / float(k)


def recall_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Recall@K per user: hits in the top K / |relevant|.

    Args:
        ranked: (n_users, >=k) int32 item indices, best first.
        relevant: (n_users, n_items) CSR, non-zero = held-out positive.
        k: cut-off, k >= 1.
    Returns:
        (n_users,) float64 in [0, 1]; 0 for users without positives (the caller excludes them).
    Raises:
        ValueError: if k < 1 or the shapes disagree.
    Source: the MHCN/SEPT definition, hits / |relevant| (Yu et al., WWW 2021).
    """
    n_rel = np.diff(relevant.tocsr().indptr)
    hits = hits_matrix(ranked, relevant, k).sum(axis=1)
    return np.divide(hits, n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)


def hit_rate_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """HR@K per user: 1 if any relevant item is in the top K else 0. Returns (n_users,) float64."""
    return hits_matrix(ranked, relevant, k).any(axis=1).astype(np.float64)


def ndcg_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """NDCG@K per user with binary relevance and log2 discounts.

    DCG = sum_{i<k} hit_i / log2(i + 2); IDCG = the same for min(|relevant|, k) hits at the top.
    Returns (n_users,) float64 in [0, 1]. Source: Järvelin & Kekäläinen, TOIS 2002; MHCN/SEPT code.
    """
    hits = hits_matrix(ranked, relevant, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ disc
    n_rel = np.minimum(np.diff(relevant.tocsr().indptr), k)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[n_rel]
    return np.divide(dcg, idcg, out=np.zeros(len(n_rel)), where=idcg > 0)


def map_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """MAP@K per user: mean of precision@i at each hit position i <= k, over min(|relevant|, k).

    Returns (n_users,) float64 in [0, 1]. Source: the usual IR definition (e.g. implicit.evaluation).
    """
    hits = hits_matrix(ranked, relevant, k).astype(np.float64)
    prec = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_rel = np.minimum(np.diff(relevant.tocsr().indptr), k)
    return np.divide((prec * hits).sum(axis=1), n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)


def item_coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Catalogue coverage: share of the n_items that appear in anyone's top K. Float in [0, 1]."""
    top = ranked[:, :k]
    return float(np.unique(top[top >= 0]).size) / float(max(n_items, 1))


METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hr": hit_rate_at_k,
    "map": map_at_k,
}


def all_metrics(ranked: np.ndarray, relevant: sp.csr_matrix, ks: tuple[int, ...], n_items: int) -> dict[str, float]:
    """Every metric at every cut-off, averaged over users with at least one relevant item.

    Args:
        ranked: (n_users, >=max(ks)) int32 ranked item indices.
        relevant: (n_users, n_items) CSR held-out positives (same row order).
        ks: cut-offs.
        n_items: catalogue size for coverage.
    Returns:
        ``{"precision@10": ..., "recall@10": ..., "ndcg@10", "hr@10", "map@10", "coverage@10", ...}``
        plus ``"n_users"`` (users evaluated).
    """
    has = np.diff(relevant.tocsr().indptr) > 0
    ranked, relevant = ranked[has], relevant.tocsr()[has]
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in METRICS.items():
            out[f"{name}@{k}"] = float(fn(ranked, relevant, k).mean()) if has.any() else 0.0
        out[f"coverage@{k}"] = item_coverage(ranked, n_items, k)
    out["n_users"] = int(has.sum())
    return out
