"""The one model protocol every recommender implements (after scikit-learn and ``implicit``).

A model is fitted on a :class:`graph.snapshot.Snapshot` and answers with item *indices* and
scores. Seen-item filtering and top-K selection live here, in :meth:`Recommender.recommend`, so
every model filters already-seen items identically: models only implement :meth:`score`.

This module is small on purpose: ``gnn/`` depends on it and on ``graph/`` only.
"""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot

SCORE_BATCH = 512  # users scored per dense block: 512 x 105k items x 4 B ~ 215 MB on ciao


class NotFittedError(RuntimeError):
    """The model was used before :meth:`Recommender.fit`."""


#: similar-items support rule (see :meth:`Recommender.similar_items`)
SIMILAR_MIN_SUPPORT = 2
SIMILAR_SHRINKAGE = 10.0


def stable_top_k(scores: np.ndarray, k: int, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-k with a documented tie rule: score (rounded to 6 decimals) descending, then
    ``support`` descending, then item index ascending.

    Args:
        scores: (n, n_items) float; ``-inf`` excluded. k: >= 1 (clipped). support: (n_items,).
    Returns:
        ``(indices (n, k) int32, values (n, k) float32)`` padded with -1 / ``-inf``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, m = scores.shape
    k_eff = min(k, m)
    out_i = np.full((n, k), -1, np.int32)
    out_s = np.full((n, k), -np.inf, np.float32)
    rounded = np.round(scores, 6)
    for r in range(n):
        row = rounded[r]
        if k_eff < m:  # every item tied with the k-th best is a candidate
            kth = np.partition(-row, k_eff - 1)[k_eff - 1]
            cand = np.flatnonzero(-row <= kth)
        else:
            cand = np.arange(m)
        order = cand[np.lexsort((cand, -support[cand], -row[cand]))][:k_eff]
        order = order[np.isfinite(row[order])]
        out_i[r, : order.size] = order
        out_s[r, : order.size] = scores[r, order]
    return out_i, out_s


TIE_SEED = 0  # seed of the item-id hash that breaks ties (the documented serving rule)


def hash_rank(item_ids: np.ndarray, seed: int = TIE_SEED) -> np.ndarray:
    """(n,) int64 order of items by a seeded 64-bit hash of their ids (0 = first).

    Stable across snapshots (it depends on the id, not on its index) and unrelated to the id's
    alphabetical order. Uses ``pandas.util.hash_array`` (SipHash) keyed by ``seed``.
    """
    import pandas as pd

    ids = np.asarray(item_ids).astype(str).astype(object)
    h = pd.util.hash_array(ids, hash_key=f"socialrec{seed:07d}"[:16], categorize=False)
    rank = np.empty(ids.size, np.int64)
    rank[np.argsort(h, kind="stable")] = np.arange(ids.size)
    return rank


def tie_break_rank(popularity: np.ndarray, item_ids: np.ndarray, seed: int = TIE_SEED) -> np.ndarray:
    """The serving tie rule as a rank per item: more popular first, then the seeded id hash.

    Args:
        popularity: (n_items,) distinct users per item in the training snapshot.
        item_ids: (n_items,) item ids (hashed by :func:`hash_rank`).
        seed: hash seed.
    Returns:
        (n_items,) int64, 0 = wins every tie; a permutation of ``range(n_items)``.
    """
    order = np.lexsort((hash_rank(item_ids, seed), -np.asarray(popularity, np.float64)))
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank


_DEFAULT_TIE_RANKS: dict[int, np.ndarray] = {}


def _default_tie_rank(m: int) -> np.ndarray:
    if m not in _DEFAULT_TIE_RANKS:
        _DEFAULT_TIE_RANKS.clear()
        _DEFAULT_TIE_RANKS[m] = hash_rank(np.arange(m))
    return _DEFAULT_TIE_RANKS[m]


def top_k(scores: np.ndarray, k: int, tie_rank: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row, best first; ties broken by ``tie_rank`` (never by column order).

    Args:
        scores: (n, n_items) float32; ``-inf`` marks excluded items.
        k: cut-off, k >= 1; clipped to n_items.
        tie_rank: (n_items,) int rank per column, lower wins a tie (models pass
            :func:`tie_break_rank`: popularity, then a seeded hash of the item id). None = a
            seeded hash of the column index.
    Returns:
        ``(indices (n, k) int32, values (n, k) float32)``; rows with fewer than k finite scores are
        padded with index -1 and score ``-inf``. The order is a total order on (score, tie_rank),
        so the top-k is always a prefix of the top-(k+1).
    Raises:
        ValueError: if k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, m = scores.shape
    k_eff = min(k, m)
    tr = _default_tie_rank(m) if tie_rank is None else np.asarray(tie_rank)
    if k_eff < m:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.tile(np.arange(m), (n, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    if k_eff < m and n:
        kth = vals.min(axis=1)
        # rows where items tied with the k-th value straddle the cut: pick among them by the rule
        ambiguous = np.flatnonzero(np.isfinite(kth) & ((scores >= kth[:, None]).sum(axis=1) > k_eff))
        # vectorised in chunks: key -1 = above the k-th value (always kept), the tie rank for
        # items equal to it, m + 1 = below (never); the k smallest keys are the rule's top k
        tr32 = tr.astype(np.int32)
        for c in range(0, ambiguous.size, 64):
            rows = ambiguous[c : c + 64]
            sub = scores[rows]
            kk = kth[rows][:, None]
            key = np.where(sub > kk, np.int32(-1), np.where(sub == kk, tr32[None, :], np.int32(m + 1)))
            sel = np.argpartition(key, k_eff - 1, axis=1)[:, :k_eff]
            part[rows] = sel
            vals[rows] = np.take_along_axis(sub, sel, axis=1)
    order = np.lexsort((tr[part], -vals), axis=-1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    idx[~np.isfinite(vals)] = -1
    if k_eff < k:
        idx = np.pad(idx, ((0, 0), (0, k - k_eff)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return idx, vals


def blend_prior(raw: np.ndarray, prior_z: np.ndarray, weight: float, no_history: np.ndarray | None = None) -> np.ndarray:
    """Back a model's scores off to a prior: ``z_u(raw) + weight * prior_z``.

    ``z_u`` standardises each user's row over all items (mean 0, sd 1; a constant row -> 0, so a
    user the model knows nothing about is ranked by the prior alone). ``weight`` 0 returns
    ``raw`` unchanged.

    Args:
        raw: (n, n_items) finite model scores.
        prior_z: (n_items,) standardised prior (e.g. log popularity).
        weight: blend weight >= 0, chosen on validation data.
        no_history: (n,) bool, users without training interactions (ranked by the prior only).
    Returns:
        (n, n_items) float32.
    """
    if weight <= 0:
        return raw
    raw = np.asarray(raw, np.float32)
    mu = raw.mean(axis=1, keepdims=True)
    sd = raw.std(axis=1, keepdims=True)
    z = np.where(sd > 1e-12, (raw - mu) / np.maximum(sd, 1e-12), 0.0).astype(np.float32)
    if no_history is not None and no_history.any():
        z[no_history] = 0.0
    z += np.float32(weight) * prior_z[None, :]
    return z


class Recommender(ABC):
    """Base class of every socialrec model.

    Subclasses set ``name``, take hyper-parameters as explicit keyword arguments with defaults
    (stored by ``get_params``), and implement :meth:`_fit` and :meth:`score`. Everything else —
    seen-item filtering, top-K, save/load — is shared so that all models behave identically.

    Attributes:
        name: the model name of ``INTERFACES.md`` (``popular``, ``als``, ...).
        snapshot_: the snapshot seen by :meth:`fit` (its interactions are the "seen" items).
    """

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        self.snapshot_: Snapshot | None = None

    # ------------------------------------------------------------------ hyper-parameters
    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as passed to ``__init__`` (scikit-learn convention)."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> "Recommender":
        """Set hyper-parameters. Raises ValueError for a name ``__init__`` does not take."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no hyper-parameter {key!r}")
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ fitting
    # Candidate hyper-parameter settings the evaluation harness tries on VALIDATION data only
    # (never on a test fold); the first entry is the default. Empty = nothing to tune.
    param_grid: ClassVar[list[dict[str, Any]]] = []

    def fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None = None) -> "Recommender":
        """Fit on a snapshot; its interactions become the seen items.

        Args:
            snapshot: training snapshot (a fold's train interactions for evaluation).
            validation: optional (n_users, n_items) CSR of held-out validation positives, for
                models that early-stop (never the test fold).
        Returns:
            self.
        """
        self.snapshot_ = snapshot
        self._fit(snapshot, validation)
        return self

    @abstractmethod
    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        """Model-specific training."""

    @abstractmethod
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Relevance scores of every item for some users (higher is better).

        Args:
            user_idx: (n,) int user indices of the fitted snapshot.
        Returns:
            (n, n_items) float32 scores, finite.
        """

    # ------------------------------------------------------------------ recommending
    def _check_fitted(self) -> Snapshot:
        if self.snapshot_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return self.snapshot_

    def seen(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """(n, n_items) CSR of the training interactions of these users (the items filtered out)."""
        return self._check_fitted().interactions[np.asarray(user_idx)]

    def recommend(
        self,
        user_idx: np.ndarray | int,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
        batch_size: int = SCORE_BATCH,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-K recommendations, already-seen items filtered the same way for every model.

        Args:
            user_idx: int or (n,) int user indices.
            k: number of items, k >= 1 (clipped to the catalogue; padded with -1 beyond it).
            exclude_seen: drop the user's training interactions.
            exclude: optional (n, n_items) CSR of further items to drop (non-zero = drop).
            batch_size: users scored per dense block.
        Returns:
            ``(items (n, k) int32, scores (n, k) float32)``, best first; -1 / ``-inf`` pad.
        Raises:
            NotFittedError: before fit. ValueError: k < 1 or an index out of range.
        """
        snap = self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= snap.n_users):
            raise ValueError(f"user index out of range [0, {snap.n_users})")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out_i = np.empty((users.size, k), dtype=np.int32)
        out_s = np.empty((users.size, k), dtype=np.float32)
        tie = self.tie_rank()
        for start in range(0, users.size, batch_size):
            block = users[start : start + batch_size]
            extra = exclude[start : start + batch_size] if exclude is not None else None
            scores = self.ranking_scores(block, exclude_seen=exclude_seen, exclude=extra)
            idx, val = top_k(scores, k, tie)
            out_i[start : start + len(block)] = idx
            out_s[start : start + len(block)] = val
        return out_i, out_s

    # ------------------------------------------------------------------ back-off and ties
    # Weight of the popularity prior blended into the scores (chosen on validation data by
    # recsys.evaluation.tune; 0 = the model's own scores). Saved with the model.
    prior_weight_: float = 0.0

    def _rank_state(self) -> dict:
        snap = self._check_fitted()
        cache = self.__dict__.get("_rank_cache")
        if cache is None or cache.get("snapshot") is not snap:
            pop = np.diff(snap.interactions.tocsc().indptr).astype(np.float64)
            lp = np.log1p(pop)
            sd = lp.std()
            prior_z = ((lp - lp.mean()) / sd if sd > 0 else np.zeros_like(lp)).astype(np.float32)
            cache = {
                "snapshot": snap,
                "tie_rank": tie_break_rank(pop, snap.item_ids),
                "prior_z": prior_z,
                "no_history": np.diff(snap.interactions.indptr) == 0,
            }
            self.__dict__["_rank_cache"] = cache
        return cache

    def tie_rank(self) -> np.ndarray:
        """(n_items,) rank that breaks score ties when recommending (:func:`tie_break_rank`):
        the item with more distinct users in the fitted snapshot first, then a seeded hash of the
        item id. Never the item id order."""
        return self._rank_state()["tie_rank"]

    def raw_scores(self, users: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 copy of :meth:`score` (before back-off and masking)."""
        return np.array(self.score(users), dtype=np.float32, copy=True)

    def ranking_scores(
        self,
        users: np.ndarray,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
        prior_weight: float | None = None,
        raw: np.ndarray | None = None,
    ) -> np.ndarray:
        """The scores :meth:`recommend` ranks by: :meth:`score` backed off to the popularity prior
        (:func:`blend_prior` with ``prior_weight_``), seen / excluded items set to ``-inf``.

        Args:
            users: (n,) user indices.
            exclude_seen: mask the users' training interactions.
            exclude: (n, n_items) CSR of further items to mask.
            prior_weight: override of ``prior_weight_`` (validation tuning).
            raw: precomputed :meth:`raw_scores` of these users (not modified).
        Returns:
            (n, n_items) float32.
        """
        users = np.atleast_1d(np.asarray(users, np.int64))
        w = self.prior_weight_ if prior_weight is None else prior_weight
        scores = self.raw_scores(users) if raw is None else raw
        if w > 0:
            st = self._rank_state()
            scores = blend_prior(scores, st["prior_z"], w, st["no_history"][users])
        elif raw is not None:
            scores = scores.copy()
        if exclude_seen:
            _mask(scores, self._check_fitted().interactions[users])
        if exclude is not None:
            _mask(scores, exclude)
        return scores

    def similar_items(self, item_idx: np.ndarray | int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to each given item (the item itself excluded).

        The default uses cosine similarity of :meth:`item_embeddings`, with a support rule for
        sparse data: a neighbour's cosine is shrunk by ``n / (n + SIMILAR_SHRINKAGE)`` where ``n``
        is how many users interacted with it in the training snapshot (an item with one rater
        cannot outrank a well-supported one on a near-tie), and neighbours with fewer than
        ``SIMILAR_MIN_SUPPORT`` users are dropped while enough others exist. Ties (scores equal
        at 6 decimals) go to the better-supported item, then the lower item index: a stable,
        documented order. Models without embeddings override it.

        Args:
            item_idx: int or (n,) item indices.
            k: number of neighbours.
        Returns:
            ``(items (n, k) int32, scores (n, k) float32)``; scores are the shrunk cosines.
        Raises:
            NotImplementedError: the model has neither embeddings nor an override.
        Source: shrinkage of similarities by support, Koren (KDD 2008), Eq. 2 (lambda = 10 here).
        """
        emb = self.item_embeddings()
        if emb is None:
            raise NotImplementedError(f"{self.name} has no item similarity")
        items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        norm = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        scores = (norm[items] @ norm.T).astype(np.float64)
        snap = self.snapshot_
        support = (np.diff(snap.interactions.tocsc().indptr) if snap is not None
                   else np.full(emb.shape[0], SIMILAR_MIN_SUPPORT))
        scores *= support / (support + SIMILAR_SHRINKAGE)
        weak = support < SIMILAR_MIN_SUPPORT
        if (~weak).sum() > k:  # enough supported neighbours: the weak ones are never shown
            scores[:, weak] = -np.inf
        scores[np.arange(items.size), items] = -np.inf
        return stable_top_k(scores, k, support)

    def user_embeddings(self) -> np.ndarray | None:
        """(n_users, dim) float32 user vectors, or None for models without them."""
        return None

    def item_embeddings(self) -> np.ndarray | None:
        """(n_items, dim) float32 item vectors, or None for models without them."""
        return None

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save config and fitted state under directory ``path`` (``config.json`` + ``state.pkl``).

        The snapshot is not saved with the model; :meth:`load` takes it back as an argument.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"name": self.name, "params": self.get_params()}, default=str))
        state = {k: v for k, v in self.__dict__.items() if k not in ("snapshot_", "_rank_cache") and k not in self.get_params()}
        with open(path / "state.pkl", "wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: str | Path, snapshot: Snapshot) -> "Recommender":
        """Rebuild a model saved by :meth:`save`, bound to the snapshot it was fitted on.

        Raises:
            FileNotFoundError: missing files. ValueError: the config names another model.
        """
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if config["name"] != cls.name:
            raise ValueError(f"{path} holds model {config['name']!r}, not {cls.name!r}")
        model = cls(**config["params"])
        with open(path / "state.pkl", "rb") as fh:
            model.__dict__.update(pickle.load(fh))
        model.snapshot_ = snapshot
        return model


class FactorModel(Recommender):
    """A recommender whose scores are dot products of user and item factors.

    Subclasses set ``user_factors_`` (n_users, d) float32 and ``item_factors_`` (n_items, d)
    float32 in ``_fit``; scoring, the embeddings and scoring of arbitrary user vectors (fold-in,
    cold start) are shared here.
    """

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, n_items) float32: ``user_factors_[user_idx] @ item_factors_.T``."""
        self._check_fitted()
        return self.user_factors_[np.atleast_1d(user_idx)] @ self.item_factors_.T

    def user_embeddings(self) -> np.ndarray:
        """(n_users, d) float32 user factors."""
        return self.user_factors_

    def item_embeddings(self) -> np.ndarray:
        """(n_items, d) float32 item factors."""
        return self.item_factors_

    def score_embeddings(self, user_vectors: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 dot-product scores of arbitrary (n, d) user vectors (e.g. from
        fold-in or followee propagation)."""
        self._check_fitted()
        return (np.asarray(user_vectors, np.float32) @ self.item_factors_.T).astype(np.float32)


def _mask(scores: np.ndarray, rows: sp.csr_matrix) -> None:
    """Set ``scores[i, j] = -inf`` at the non-zeros of ``rows`` (n, n_items) CSR, in place."""
    rows = rows.tocsr()
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    scores[r, rows.indices] = -np.inf
