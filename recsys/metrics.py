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


# --------------------------------------------------------------------------- honest ties
# The functions above score one fixed ranked list. Models tie (a constant scorer, ALS scores of
# ~0 on sparse data, popularity counts), and a fixed tie order flatters or punishes a model
# depending only on how items are named. The harness therefore scores the EXPECTED value of each
# metric over a uniformly random order of tied items, computed exactly from the scores:
# a position p of the top K that falls in a tie group of t items (all with one score), r of them
# relevant, holds a relevant item with probability r / t; positions in different groups are
# independent and two positions in one group are both relevant with probability
# r (r - 1) / (t (t - 1)). Precision, recall and NDCG are linear in those probabilities; HR and
# MAP use the joint ones (exact, not sampled). Without ties every value equals the fixed-list one.


def tie_groups(scores: np.ndarray, relevant: sp.csr_matrix, k: int, ranked: np.ndarray | None = None):
    """Tie structure of the top-k positions of each row.

    Args:
        scores: (n, m) float32 ranking scores, ``-inf`` = excluded (never relevant, never ranked).
        relevant: (n, m) CSR, non-zero = relevant.
        k: cut-off (clipped to m).
        ranked: (n, >=k) top-k column indices of ``scores`` in any tie order (computed if None).
    Returns:
        ``(q, gid, t, r, ranked)``: per position (n, k) the probability the position holds a
        relevant item, its tie-group id (per row, increasing), the group's size over the WHOLE row
        and its number of relevant items; ranked (n, k) int (-1 = padding).
    """
    from recsys.protocol import top_k

    n, m = scores.shape
    k = min(k, m)
    if ranked is None:
        ranked, vals = top_k(scores, k)
    else:
        ranked = ranked[:, :k]
        vals = np.take_along_axis(scores, np.maximum(ranked, 0), axis=1).astype(np.float32)
        vals[ranked < 0] = -np.inf
    rel = relevant.tocsr()
    ok = ranked >= 0
    hit = np.zeros(ranked.shape, bool)
    for u in range(n):
        cols = rel.indices[rel.indptr[u] : rel.indptr[u + 1]]
        if cols.size:
            hit[u] = np.isin(ranked[u], cols) & ok[u]
    new = np.ones(ranked.shape, bool)
    new[:, 1:] = vals[:, 1:] != vals[:, :-1]
    gid = np.cumsum(new, axis=1) - 1
    # within the top k: group sizes and hits
    t = np.zeros(ranked.shape, np.float64)
    r = np.zeros(ranked.shape, np.float64)
    for u in range(n):
        g = gid[u]
        cnt = np.bincount(g, minlength=g[-1] + 1)
        hs = np.bincount(g, weights=hit[u], minlength=g[-1] + 1)
        t[u], r[u] = cnt[g], hs[g]
    # the last group may continue past position k: count it over the whole row
    last = vals[:, -1]
    fin = np.isfinite(last)
    if fin.any():
        rows = np.flatnonzero(fin)
        eq = scores[rows] == last[rows, None]
        t_last = eq.sum(axis=1).astype(np.float64)
        r_last = np.zeros(rows.size)
        for j, u in enumerate(rows):
            cols = rel.indices[rel.indptr[u] : rel.indptr[u + 1]]
            if cols.size:
                r_last[j] = eq[j, cols].sum()
        in_last = gid[rows] == gid[rows, -1][:, None]
        t[rows] = np.where(in_last, t_last[:, None], t[rows])
        r[rows] = np.where(in_last, r_last[:, None], r[rows])
    q = np.where(ok & (t > 0), r / np.maximum(t, 1), 0.0)
    return q, gid, t, r, ranked


def expected_metrics(q: np.ndarray, gid: np.ndarray, t: np.ndarray, r: np.ndarray, n_rel: np.ndarray, k: int,
                     hr_denominator: str = "any") -> dict[str, np.ndarray]:
    """Expected precision/recall/NDCG/HR/MAP@k per row over random orders of tied items.

    Args:
        q, gid, t, r: from :func:`tie_groups` (n, >=k).
        n_rel: (n,) relevant items per row (> 0 for rows the caller averages).
        k: cut-off.
        hr_denominator: ``any`` — HR@k = P(at least one relevant item in the top k) (full
            ranking); ``min`` — HR@k = E[hits] / min(|relevant|, k) (the sampled-candidates
            definition of the social-GNN papers).
    Returns:
        ``{"precision", "recall", "ndcg", "hr", "map"}`` -> (n,) float64.
    Source: the tie-group expectation is exact (linearity of expectation; hypergeometric
        probabilities within a group); metric definitions as in the functions above.
    """
    k = min(k, q.shape[1])
    q, gid, t, r = q[:, :k], gid[:, :k], t[:, :k], r[:, :k]
    n_rel = np.asarray(n_rel, np.float64)
    ehits = q.sum(axis=1)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    nk = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[nk]
    out = {
        "precision": ehits / k,
        "recall": np.divide(ehits, n_rel, out=np.zeros_like(ehits), where=n_rel > 0),
        "ndcg": np.divide(q @ disc, idcg, out=np.zeros_like(ehits), where=idcg > 0),
    }
    if hr_denominator == "min":
        out["hr"] = np.divide(ehits, np.minimum(n_rel, k), out=np.zeros_like(ehits), where=n_rel > 0)
    else:
        # P(no hit) = product over positions of P(position j of its group is not relevant | the
        # earlier ones of that group were not) = (t - r - j) / (t - j)
        first = np.ones(gid.shape, bool)
        first[:, 1:] = gid[:, 1:] != gid[:, :-1]
        start = np.maximum.accumulate(np.where(first, np.arange(k)[None, :], 0), axis=1)
        j = np.arange(k)[None, :] - start
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(t - j > 0, np.clip((t - r - j) / np.maximum(t - j, 1e-12), 0.0, 1.0), 1.0)
        f = np.where(q > 0, f, 1.0)
        out["hr"] = 1.0 - np.prod(f, axis=1)
    # MAP: E[sum_i hit_i * (sum_{j<=i} hit_j) / i] / min(|rel|, k)
    same = gid[:, :, None] == gid[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_same = np.where(t > 1, r * (r - 1) / np.maximum(t * (t - 1), 1e-12), 0.0)
    joint = np.where(same, pair_same[:, :, None], q[:, :, None] * q[:, None, :])
    lower = np.tril(np.ones((k, k), bool), -1)
    e_prec_hit = q + (joint * lower[None]).sum(axis=2)
    ap = (e_prec_hit / np.arange(1, k + 1)).sum(axis=1)
    out["map"] = np.divide(ap, nk, out=np.zeros_like(ap), where=nk > 0)
    return out


class MetricAccumulator:
    """Collects expected (tie-aware) metrics block by block; :meth:`result` averages them.

    Args:
        ks: cut-offs. n_items: catalogue size for coverage (0 = no coverage).
        hr_denominator: see :func:`expected_metrics`.
    """

    def __init__(self, ks: tuple[int, ...], n_items: int = 0, hr_denominator: str = "any"):
        self.ks = tuple(ks)
        self.n_items = n_items
        self.hr_denominator = hr_denominator
        self.sums: dict[str, float] = {}
        self.n = 0
        self.covered = {k: set() for k in self.ks}

    def add(self, scores: np.ndarray, relevant: sp.csr_matrix, ranked: np.ndarray | None = None) -> None:
        """Add a block: (n, m) ranking scores and (n, m) CSR relevant items; rows without a
        relevant item are skipped. ``ranked`` (n, >=max(ks)) is the served top list (coverage)."""
        rel = relevant.tocsr()
        n_rel = np.diff(rel.indptr)
        has = n_rel > 0
        if not has.any():
            return
        scores, rel, n_rel = scores[has], rel[has], n_rel[has]
        ranked = ranked[has] if ranked is not None else None
        kmax = max(self.ks)
        q, gid, t, r, top = tie_groups(scores, rel, kmax, ranked)
        for k in self.ks:
            for name, v in expected_metrics(q, gid, t, r, n_rel, k, self.hr_denominator).items():
                self.sums[f"{name}@{k}"] = self.sums.get(f"{name}@{k}", 0.0) + float(v.sum())
            if self.n_items:
                tk = top[:, :k]
                self.covered[k].update(np.unique(tk[tk >= 0]).tolist())
        self.n += int(has.sum())

    def result(self) -> dict[str, float]:
        """``{"precision@k", "recall@k", "ndcg@k", "hr@k", "map@k", ["coverage@k"], "n_users"}``."""
        out = {}
        for k in self.ks:
            for name in ("precision", "recall", "ndcg", "hr", "map"):
                key = f"{name}@{k}"
                out[key] = self.sums.get(key, 0.0) / self.n if self.n else 0.0
            if self.n_items:
                out[f"coverage@{k}"] = len(self.covered[k]) / float(max(self.n_items, 1))
        out["n_users"] = self.n
        return out
