"""Cold start: recommendations for users and items without training history, from graph neighbours.

Three signals, strongest first:

* **Social** (a user without history who follows people): the user's vector is the tie-weighted
  mean of their followees' vectors in the serving embedding model (``als``, ``lightgcn``,
  ``graphsage``, ``social``, ``hybrid`` — any model with ``user_embeddings()``); a model with an
  inductive pass (``embed_new_users(follows, interactions)``) is asked first. Models without
  embeddings (``itemcf``) score a new user with the tie-weighted mean of their followees' score
  rows. As first interactions arrive they are folded in (``als``: ``implicit``'s
  ``recalculate_user``; GNNs: ``embed_new_users``) and blended with the social vector, with no
  retrain.
* **Content** (a new item with a category, and a title/brand/text where the data has one): the
  item's vector is the mean of the vectors of the warm items of its category, or of its nearest
  items by TF-IDF text similarity, so it can be ranked before anyone interacts with it.
* **Segment popularity** (a user with nothing, or as a baseline): :class:`SegmentPopularModel` —
  popularity among the user's followees and their follow-graph community, then global popularity;
  :func:`context_popularity` re-weights it by categories a caller supplies (``attributes``).

:class:`ColdStartRecommender` (registry name ``coldstart``) wraps a fitted embedding model in the
one :class:`~recsys.protocol.Recommender` protocol, so the evaluation harness ranks and filters
it exactly like every other model; :meth:`ColdStartRecommender.wrap` does the same for a model
that is already fitted (the cold evaluation protocols and the serving layer use that).
:class:`ColdStartOverlay` is the serving side: users/items registered online, kept in memory
(bounded, thread-safe) until the next model version.

Tie strength (:func:`followee_weights`): ``(1 + reciprocity) * (1 + log1p(common neighbours))``
— mutual follows and embedded ties (Granovetter's strong ties; Marsden & Campbell 2012 measure tie
strength by reciprocity and shared contacts) count more; optionally times ``1 + cosine overlap``
of the two users' items once the user has some, or the followee's measured influence.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.protocol import Recommender, top_k

log = logging.getLogger(__name__)

STRATEGY_PERSONALIZED = "personalized"
STRATEGY_SOCIAL = "cold_start_social"
STRATEGY_CONTENT = "cold_start_content"
STRATEGY_POPULAR = "popular_fallback"

TIE_SCHEMES = ("uniform", "tie", "influence")
DIRECTIONS = ("out", "both")
_TOKEN = re.compile(r"[\w']+", re.UNICODE)
_USER_BLOCK = 256  # rows of followee scores held at once by the score-mean fallback


# ---------------------------------------------------------------------------------------------
# tie strength and propagation
# ---------------------------------------------------------------------------------------------
def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float64, copy=True)
    out.data[:] = 1.0
    out.eliminate_zeros()
    return out


def followee_weights(
    follows: sp.csr_matrix,
    users: np.ndarray,
    usable: np.ndarray | None = None,
    scheme: str = "tie",
    direction: str = "out",
    interactions: sp.csr_matrix | None = None,
    influence: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Row-normalised tie weights from some users to the users they follow.

    Args:
        follows: (n_users, n_users) CSR, [u, v] != 0 when u follows v.
        users: (m,) int user indices (the followers).
        usable: (n_users,) bool; followees where False (e.g. without a vector) get weight 0.
        scheme: ``uniform`` (1 per followee), ``tie`` (``(1 + reciprocity) * (1 + log1p(common
            neighbours))``, times ``1 + cosine item overlap`` when ``interactions`` is given) or
            ``influence`` (the followee's ``influence`` score, floored at 1 % of its mean).
        direction: ``out`` = people the user follows; ``both`` = followees and followers (the
            evaluation protocols keep both directions of a cold user's edges).
        interactions: (n_users, n_items) CSR; enables the overlap factor of ``tie``.
        influence: (n_users,) non-negative scores for ``influence`` (e.g. ``recsys.value``'s
            influence or PageRank).
    Returns:
        (m, n_users) float64 CSR; each row sums to 1, or is empty when the user has no usable
        followee.
    Raises:
        ValueError: unknown scheme/direction, or ``influence`` missing for that scheme.
    """
    if scheme not in TIE_SCHEMES:
        raise ValueError(f"unknown tie scheme {scheme!r}; expected one of {TIE_SCHEMES}")
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    users = np.asarray(users, dtype=np.int64)
    f = _binary(follows)
    adj = f if direction == "out" else _binary(f + f.T)
    rows = adj[users].tocsr()
    if usable is not None:
        rows = rows.multiply(np.asarray(usable, dtype=np.float64)[None, :]).tocsr()
        rows.eliminate_zeros()
    if scheme == "tie" and rows.nnz:
        sym = _binary(f + f.T)
        recip = f.multiply(f.T).tocsr()[users]
        common = (sym[users] @ sym).multiply(rows).tocsr()
        common.data = np.log1p(common.data)
        w = (rows + rows.multiply(recip)).multiply(rows + common).tocsr()  # (1 + r) * (1 + log1p(c))
        if interactions is not None:
            b = _binary(interactions)
            n = np.asarray(b.sum(axis=1)).ravel()
            overlap = (b[users] @ b.T).multiply(rows).tocoo()
            if overlap.nnz:
                overlap.data = overlap.data / np.sqrt(np.maximum(n[users[overlap.row]] * n[overlap.col], 1.0))
                w = w.multiply(rows + overlap.tocsr()).tocsr()  # * (1 + cosine overlap)
        rows = w
    elif scheme == "influence":
        if influence is None:
            raise ValueError("scheme 'influence' needs influence scores")
        infl = np.asarray(influence, dtype=np.float64)
        infl = np.maximum(infl, 0.01 * max(float(infl.mean()), 1e-12))
        rows = rows.multiply(infl[None, :]).tocsr()
    rows.eliminate_zeros()
    sums = np.asarray(rows.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(inv) @ rows)


def propagate_user_embedding(
    model: Recommender | np.ndarray,
    follows_idx: Sequence[int] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Vector of a new user from the vectors of the users they follow (weighted mean).

    Args:
        model: a fitted model with ``user_embeddings()``, or a (n_users, dim) array.
        follows_idx: (f,) int user indices the new user follows.
        weights: (f,) non-negative tie strengths (default 1 each); followees whose vector is all
            zeros (no training history) are skipped.
    Returns:
        (dim,) float32; zeros when no followee has a vector.
    Raises:
        ValueError: the model has no user embeddings, or weights and followees disagree in length.
    """
    vectors = model if isinstance(model, np.ndarray) else model.user_embeddings()
    if vectors is None:
        raise ValueError(f"{getattr(model, 'name', model)!r} has no user embeddings")
    idx = np.asarray(follows_idx, dtype=np.int64).ravel()
    w = np.ones(idx.size) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.size != idx.size:
        raise ValueError(f"{w.size} weights for {idx.size} followees")
    if idx.size == 0:
        return np.zeros(vectors.shape[1], np.float32)
    vecs = vectors[idx].astype(np.float64)
    w = w * (np.abs(vecs).sum(axis=1) > 0)
    if w.sum() <= 0:
        return np.zeros(vectors.shape[1], np.float32)
    return (w @ vecs / w.sum()).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# content neighbours of new items
# ---------------------------------------------------------------------------------------------
def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(str(text).lower()) if len(t) > 1]


class ContentIndex:
    """TF-IDF index of item text (title/brand/text) restricted to some items, for nearest neighbours.

    Args:
        texts: (n_items,) object array of strings (``Snapshot.item_text``).
        items: (m,) item indices to index (e.g. the warm ones).
    """

    def __init__(self, texts: np.ndarray, items: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.items = np.asarray(items, dtype=np.int64)
        docs = [str(texts[i]) for i in self.items]
        self.empty = not any(d.strip() for d in docs)
        if self.empty:
            self.vectorizer, self.matrix = None, None
            return
        self.vectorizer = TfidfVectorizer(tokenizer=_tokens, lowercase=False, token_pattern=None, min_df=1)
        self.matrix = self.vectorizer.fit_transform(docs).tocsr()

    def nearest(self, text: str, k: int = 20, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indexed items most similar to ``text``.

        Args:
            text: free text.
            k: at most this many neighbours.
            among: optional (n_items,) bool mask of allowed items.
        Returns:
            ``(items (<=k,) int64, cosine similarities (<=k,) float64 > 0)``, best first.
        """
        if self.empty or not str(text).strip():
            return np.zeros(0, np.int64), np.zeros(0)
        q = self.vectorizer.transform([str(text)])
        if q.nnz == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        sims = np.asarray((self.matrix @ q.T).todense()).ravel()
        if among is not None:
            sims = np.where(np.asarray(among)[self.items], sims, 0.0)
        hit = np.flatnonzero(sims > 0)
        if hit.size == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        order = hit[np.argsort(-sims[hit], kind="stable")[:k]]
        return self.items[order], sims[order]


def _category_index(snapshot: Snapshot, category: str | int | None) -> int:
    """Index of a category given by name or index; -1 when None/unknown."""
    if category is None:
        return -1
    if isinstance(category, (int, np.integer)):
        return int(category) if 0 <= int(category) < snapshot.categories.shape[0] else -1
    pos = np.searchsorted(snapshot.categories.astype(str), str(category))
    if pos < snapshot.categories.shape[0] and str(snapshot.categories[pos]) == str(category):
        return int(pos)
    return -1


def item_embedding_from_content(
    model: Recommender | np.ndarray,
    snapshot: Snapshot,
    category: str | int | None,
    text: str | None = None,
    k: int = 20,
    warm: np.ndarray | None = None,
    index: ContentIndex | None = None,
    norm_quantile: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Vector of a new item from its content neighbours.

    With a known category: the mean vector of the category's warm items, or — when ``text`` is
    given and matches some of them — the similarity-weighted mean of its ``k`` nearest by TF-IDF
    text within the category, averaged with the category mean. Without a known category: the
    text neighbours among all warm items.

    Args:
        model: a fitted model with ``item_embeddings()``, or a (n_items, dim) array.
        snapshot: the snapshot the model was fitted on.
        category: category name or index (None / unknown = no category).
        text: title/brand/description of the new item.
        k: text neighbours used.
        warm: (n_items,) bool mask of items with a usable vector (default: items with training
            interactions).
        index: a prebuilt :class:`ContentIndex` over the warm items (built here when needed).
        norm_quantile: None keeps the mean (its dot product with a user is the expected score of
            a random neighbour — averaging many directions shrinks it, so the item rarely
            surfaces); q in (0, 1] rescales it to the q-quantile norm of the neighbours' vectors,
            i.e. places the new item like a q-quantile item of its category (an exposure knob).
    Returns:
        ``(vector (dim,) float32, info)``; info = ``{"category": name|None, "category_items": n,
        "text_neighbours": n}``; the vector is all zeros when there is no content neighbour.
    Raises:
        ValueError: the model has no item embeddings.
    """
    vectors = model if isinstance(model, np.ndarray) else model.item_embeddings()
    if vectors is None:
        raise ValueError(f"{getattr(model, 'name', model)!r} has no item embeddings")
    if warm is None:
        warm = np.diff(snapshot.interactions.tocsc().indptr) > 0
    warm = np.asarray(warm, bool)
    cat = _category_index(snapshot, category)
    in_cat = warm & (snapshot.item_category == cat) if cat >= 0 else np.zeros_like(warm)
    info = {"category": str(snapshot.categories[cat]) if cat >= 0 else None, "category_items": int(in_cat.sum()),
            "text_neighbours": 0}
    parts = []
    if in_cat.any():
        parts.append(vectors[in_cat].astype(np.float64).mean(axis=0))
    if text and str(text).strip():
        if index is None:
            index = ContentIndex(snapshot.item_text, np.flatnonzero(warm))
        nn, sims = index.nearest(text, k=k, among=in_cat if in_cat.any() else warm)
        if nn.size:
            info["text_neighbours"] = int(nn.size)
            parts.append(sims @ vectors[nn].astype(np.float64) / sims.sum())
    if not parts:
        return np.zeros(vectors.shape[1], np.float32), info
    vec = np.mean(parts, axis=0)
    if norm_quantile is not None:
        ref = in_cat if in_cat.any() else warm
        vec = _rescale(vec, float(np.quantile(np.linalg.norm(vectors[ref], axis=1), norm_quantile)))
    return vec.astype(np.float32), info


def _rescale(vec: np.ndarray, norm: float) -> np.ndarray:
    length = float(np.linalg.norm(vec))
    return vec * (norm / length) if length > 0 else vec


def content_item_vectors(
    item_vectors: np.ndarray,
    snapshot: Snapshot,
    items: np.ndarray,
    warm: np.ndarray,
    norm_quantile: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Category-mean vectors of many cold items at once (the evaluation path).

    Args:
        item_vectors: (n_items, dim) float32.
        snapshot: the snapshot (categories).
        items: (m,) cold item indices.
        warm: (n_items,) bool, items whose vectors are trusted.
        norm_quantile: as in :func:`item_embedding_from_content`.
    Returns:
        ``(vectors (m, dim) float32, has (m,) bool)``; ``has`` is False where the item has no
        category with warm items (its vector is zeros).
    """
    items = np.asarray(items, dtype=np.int64)
    n_cat = int(snapshot.categories.shape[0])
    out = np.zeros((items.size, item_vectors.shape[1]), np.float32)
    if n_cat == 0 or items.size == 0:
        return out, np.zeros(items.size, bool)
    cats = snapshot.item_category
    sel = warm & (cats >= 0)
    onehot = sp.csr_matrix((np.ones(sel.sum()), (cats[sel], np.flatnonzero(sel))), shape=(n_cat, snapshot.n_items))
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    means = np.asarray(onehot @ item_vectors.astype(np.float64)) / np.maximum(counts, 1.0)[:, None]
    c = cats[items]
    has = (c >= 0) & (counts[np.maximum(c, 0)] > 0)
    if norm_quantile is not None:
        norms = np.linalg.norm(item_vectors, axis=1)
        for cat in np.unique(c[has]):
            ref = float(np.quantile(norms[sel & (cats == cat)], norm_quantile))
            means[cat] = _rescale(means[cat], ref)
    out[has] = means[c[has]].astype(np.float32)
    return out, has


def context_popularity(snapshot: Snapshot, popularity: np.ndarray, categories: Sequence[str] | None) -> np.ndarray:
    """Popularity re-weighted towards some categories (the context a new user supplied).

    Args:
        snapshot: the snapshot (item categories).
        popularity: (n_items,) non-negative scores.
        categories: category names the user is interested in (unknown names are ignored).
    Returns:
        (n_items,) float32: items of those categories first (by popularity), then the rest.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    top = max(float(pop.max()), 1.0) if pop.size else 1.0
    idx = [c for c in (_category_index(snapshot, name) for name in (categories or [])) if c >= 0]
    if not idx:
        return pop.astype(np.float32)
    boost = np.isin(snapshot.item_category, idx)
    return (pop + boost * (top + 1.0)).astype(np.float32)


def _zscore(x: np.ndarray) -> np.ndarray:
    """Per-row standardisation (rows with zero spread become zeros)."""
    x = np.asarray(x, dtype=np.float32)
    mu = x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return (x - mu) / np.maximum(sd, 1e-9)


# ---------------------------------------------------------------------------------------------
# segment popularity
# ---------------------------------------------------------------------------------------------
class SegmentPopularModel(Recommender):
    """Popularity within the user's social segment, then globally (registry name ``segment_popular``).

    ``score(u) = followee_weight * P_followees(u) + community_weight * P_community(u) + 1e-3 * P``
    where ``P_followees`` is the share of the user's (tie-weighted) followees who interacted with
    each item, ``P_community`` the share of the members of the user's Leiden community of the
    follow graph (``recsys.value.segments.follow_communities``; users attached by co-activity)
    who did, and ``P`` the global share (distinct users). A user without follows or community gets
    plain global popularity — never an error.

    Args:
        followee_weight: weight of the followees' popularity.
        community_weight: weight of the community's popularity (0 skips community detection).
        direction: ``out`` or ``both`` edges as followees (see :func:`followee_weights`).
        min_community: communities smaller than this are dissolved (their members attached).
        seed: Leiden seed.
    """

    name = "segment_popular"
    param_grid = [{"followee_weight": 1.0, "community_weight": 0.5}]

    def __init__(
        self,
        followee_weight: float = 1.0,
        community_weight: float = 0.5,
        direction: str = "both",
        min_community: int = 20,
        seed: int = 0,
    ):
        super().__init__()
        self.followee_weight = followee_weight
        self.community_weight = community_weight
        self.direction = direction
        self.min_community = min_community
        self.seed = seed

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        b = _binary(snapshot.interactions)
        n_u = snapshot.n_users
        self.item_scores_ = (np.asarray(b.sum(axis=0)).ravel() / max(n_u, 1)).astype(np.float32)
        self.community_ = np.full(n_u, -1, dtype=np.int64)
        self.community_items_ = sp.csr_matrix((0, snapshot.n_items), dtype=np.float32)
        if self.community_weight > 0 and snapshot.follows.nnz:
            from recsys.value.segments import follow_communities

            comm = follow_communities(snapshot, min_size=self.min_community, seed=self.seed, n_starts=1)
            labels = comm.segment_id
            names = np.unique(labels[labels != "unconnected"])
            lookup = {name: i for i, name in enumerate(names)}
            self.community_ = np.array([lookup.get(x, -1) for x in labels], dtype=np.int64)
            member = self.community_ >= 0
            onehot = sp.csr_matrix(
                (np.ones(member.sum()), (self.community_[member], np.flatnonzero(member))), shape=(len(names), n_u)
            )
            size = np.maximum(np.asarray(onehot.sum(axis=1)).ravel(), 1.0)
            self.community_items_ = sp.csr_matrix(sp.diags(1.0 / size) @ (onehot @ b), dtype=np.float32)
        self.has_history_ = np.diff(snapshot.interactions.indptr) > 0

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        snap = self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        out = np.tile(1e-3 * self.item_scores_, (users.size, 1))
        if self.followee_weight > 0:
            w = followee_weights(snap.follows, users, self.has_history_, "tie", self.direction)
            if w.nnz:
                out += self.followee_weight * np.asarray((w @ _binary(snap.interactions)).todense(), np.float32)
        if self.community_weight > 0 and self.community_items_.shape[0]:
            c = self.community_[users]
            rows = np.flatnonzero(c >= 0)
            if rows.size:
                out[rows] += self.community_weight * self.community_items_[c[rows]].toarray()
        none = out.max(axis=1) <= 1e-3 * self.item_scores_.max() + 1e-12
        out[none] = self.item_scores_  # nobody to learn from: global popularity
        return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the wrapper
# ---------------------------------------------------------------------------------------------
def _has_embeddings(model: Recommender) -> bool:
    try:
        return model.user_embeddings() is not None and model.item_embeddings() is not None
    except Exception:  # noqa: BLE001 - a model may raise before fit or for lack of them
        return False


class ColdStartRecommender(Recommender):
    """A fitted model plus cold start for users and items without training history.

    * A user with no training interactions but followees with history: the tie-weighted mean of
      the followees' vectors (the base model's ``embed_new_users`` first, when it has one and it
      returns a non-zero vector); models without embeddings: the weighted mean of the followees'
      score rows.
    * A user with some history: ``z(own scores) + w_u * z(social scores)``, where the social
      scores come from the followees' mean vector and ``w_u = social_weight * shrinkage /
      (shrinkage + n_u)`` (n_u = training interactions; ``shrinkage = 0`` means a constant
      ``social_weight``). ``social_weight = 0`` leaves such users exactly to the base model.
    * A user with neither: :class:`SegmentPopularModel`-style global popularity.
    * An item with no training interactions but a category: the category's mean item vector
      (:func:`content_item_vectors`, optionally rescaled by ``content_norm``), for base models
      that score by dot product. (In the random-split protocols an item without training
      interactions is one whose interactions were all held out, so ``content_norm`` should stay
      None there.)

    Args:
        base: registry name of the embedding model to wrap (``als``, ``lightgcn``, ...).
        base_params: its hyper-parameters (default: the first entry of its ``param_grid``); names
            the base does not take are ignored (``param_grid`` sizes ALS).
        social_weight: weight of the social scores for users with history (see above).
        shrinkage: history size at which that weight halves; 0 = constant.
        tie: tie-strength scheme of :func:`followee_weights`.
        direction: ``out`` or ``both`` follow edges.
        content: give cold items content vectors.
        content_norm: None = the category's mean vector (expected score); q in (0, 1] = that
            direction at the q-quantile norm of the category's items (see
            :func:`item_embedding_from_content`; an exposure knob for new items).
        seed: passed to the base model when it takes one.

    Attributes:
        base_: the fitted base model. user_vectors_/item_vectors_: effective vectors (cold rows
        filled in) or None. cold_users_: (n_users,) bool. strategy_: (n_users,) object array of
        the strategy per user.
    """

    name = "coldstart"
    param_grid = [
        {"social_weight": 0.2, "shrinkage": 0.0},
        {"social_weight": 0.2, "shrinkage": 0.0,
         "base_params": {"factors": 128, "regularization": 0.05, "alpha": 10.0, "weighting": "binary"}},
        {"social_weight": 0.0, "shrinkage": 0.0},
        {"social_weight": 0.5, "shrinkage": 10.0},
    ]

    def __init__(
        self,
        base: str = "als",
        base_params: dict | None = None,
        social_weight: float = 0.2,
        shrinkage: float = 0.0,
        tie: str = "tie",
        direction: str = "both",
        content: bool = True,
        content_norm: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.base = base
        self.base_params = base_params
        self.social_weight = social_weight
        self.shrinkage = shrinkage
        self.tie = tie
        self.direction = direction
        self.content = content
        self.content_norm = content_norm
        self.seed = seed

    # ------------------------------------------------------------------ construction
    @classmethod
    def wrap(cls, model: Recommender, **params: Any) -> "ColdStartRecommender":
        """Wrap an already fitted model (no refit).

        Args:
            model: a fitted :class:`Recommender`.
            params: this class's hyper-parameters (``social_weight`` defaults to 0 here, so only
                users/items without history change).
        Returns:
            The wrapper, fitted on ``model.snapshot_``.
        Raises:
            NotFittedError: the model is not fitted.
        """
        snap = model._check_fitted()
        params.setdefault("social_weight", 0.0)
        out = cls(base=model.name, **params)
        out.base_ = model
        out.snapshot_ = snap
        out._prepare(snap)
        return out

    def _base_model(self) -> Recommender:
        import inspect

        from recsys.registry import build_model, model_class

        klass = model_class(self.base)
        params = dict(self.base_params) if self.base_params is not None else dict(klass.param_grid[0] if klass.param_grid else {})
        accepted = inspect.signature(klass.__init__).parameters
        dropped = sorted(set(params) - set(accepted))
        if dropped:  # e.g. the ALS-sized entry of param_grid while wrapping another model
            log.info("coldstart: %s takes no %s; ignored", self.base, ", ".join(dropped))
            params = {k: v for k, v in params.items() if k in accepted}
        if "seed" in accepted:
            params.setdefault("seed", self.seed)
        return build_model(self.base, **params)

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        self.base_ = self._base_model().fit(snapshot, validation=validation)
        self._prepare(snapshot)

    def _prepare(self, snapshot: Snapshot) -> None:
        base = self.base_
        inter = snapshot.interactions.tocsr()
        self.history_ = np.diff(inter.indptr).astype(np.int64)
        warm_users = self.history_ > 0
        warm_items = np.diff(inter.tocsc().indptr) > 0
        self.popularity_ = np.diff(_binary(inter).tocsc().indptr).astype(np.float32)
        self.embeddings_ = _has_embeddings(base)
        self.dot_ = False
        self.user_vectors_ = self.item_vectors_ = None
        if self.embeddings_:
            u = np.asarray(base.user_embeddings(), dtype=np.float32)
            v = np.asarray(base.item_embeddings(), dtype=np.float32)
            self.dot_ = self._scores_are_dot_products(u, v, warm_users)
            usable = warm_users & (np.abs(u).sum(axis=1) > 0)
        else:
            u = v = None
            usable = warm_users
        self.usable_followees_ = usable
        # social weights of every user (followees with a vector/history)
        self.social_ = followee_weights(snapshot.follows, np.arange(snapshot.n_users), usable, self.tie, self.direction)
        has_social = np.diff(self.social_.indptr) > 0
        self.cold_users_ = ~warm_users
        strategy = np.full(snapshot.n_users, STRATEGY_PERSONALIZED, dtype=object)
        strategy[self.cold_users_ & has_social] = STRATEGY_SOCIAL
        strategy[self.cold_users_ & ~has_social] = STRATEGY_POPULAR
        self.strategy_ = strategy
        if u is not None:
            u_eff = u.copy()
            u_eff[self.cold_users_] = 0.0
            cold = np.flatnonzero(self.cold_users_ & has_social)
            if cold.size:
                u_eff[cold] = self._new_user_vectors(cold, u)
            self.user_vectors_ = u_eff
            self.social_vectors_ = np.asarray(self.social_ @ u.astype(np.float64), dtype=np.float32)
            v_eff = v.copy()
            self.cold_items_ = np.zeros(snapshot.n_items, bool)
            if self.content and self.dot_:
                cold_items = np.flatnonzero(~warm_items)
                vecs, has = content_item_vectors(v, snapshot, cold_items, warm_items, self.content_norm)
                v_eff[cold_items[has]] = vecs[has]
                self.cold_items_[cold_items[has]] = True
            self.item_vectors_ = v_eff
        else:
            self.social_vectors_ = None
            self.cold_items_ = np.zeros(snapshot.n_items, bool)

    def _scores_are_dot_products(self, u: np.ndarray, v: np.ndarray, warm: np.ndarray) -> bool:
        """True when the base model's scores are ``user_vec @ item_vec`` (checked on 3 users)."""
        probe = np.flatnonzero(warm)[:3]
        if probe.size == 0 or u.shape[0] != self.base_.snapshot_.n_users:
            return False
        try:
            got = np.asarray(self.base_.score(probe), dtype=np.float64)
        except Exception:  # noqa: BLE001
            return False
        want = u[probe].astype(np.float64) @ v.T.astype(np.float64)
        return bool(np.allclose(got, want, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(want).max()))))

    def _new_user_vectors(self, users: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Vectors of users without history: the base's inductive pass, else the followees' mean."""
        out = np.asarray(self.social_[users] @ u.astype(np.float64), dtype=np.float32)
        embed = getattr(self.base_, "embed_new_users", None)
        if callable(embed):
            fol = self.base_.snapshot_.follows.tocsr()
            try:
                ind = np.asarray(embed([fol[x].indices for x in users], [np.zeros(0, np.int64)] * len(users)), np.float32)
            except Exception as exc:  # noqa: BLE001 - work in progress in gnn/; fall back
                log.warning("%s.embed_new_users failed (%s); using followee propagation", self.base, exc)
                ind = None
            if ind is not None and ind.shape == out.shape:
                ok = np.abs(ind).sum(axis=1) > 0
                out[ok] = ind[ok]
        return out

    # ------------------------------------------------------------------ scoring
    def _social_row_weights(self, users: np.ndarray) -> np.ndarray:
        n = self.history_[users].astype(np.float64)
        w = np.full(users.size, float(self.social_weight))
        if self.shrinkage > 0:
            w = w * self.shrinkage / (self.shrinkage + n)
        w[n == 0] = 0.0
        w[np.diff(self.social_[users].indptr) == 0] = 0.0
        return w

    def _score_mean_of_followees(self, users: np.ndarray) -> np.ndarray:
        """(n, n_items) tie-weighted mean of the followees' base score rows (non-embedding bases)."""
        out = np.zeros((users.size, self.snapshot_.n_items), np.float32)
        w = self.social_[users].tocsr()
        for r in range(users.size):
            cols = w.indices[w.indptr[r] : w.indptr[r + 1]]
            vals = w.data[w.indptr[r] : w.indptr[r + 1]]
            for start in range(0, cols.size, _USER_BLOCK):
                block = cols[start : start + _USER_BLOCK]
                out[r] += (vals[start : start + _USER_BLOCK, None] * np.asarray(self.base_.score(block), np.float32)).sum(axis=0)
        return out

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        if self.user_vectors_ is not None and self.dot_:
            scores = self.user_vectors_[users] @ self.item_vectors_.T
        else:
            scores = np.asarray(self.base_.score(users), dtype=np.float32).copy()
            cold = np.flatnonzero(self.strategy_[users] == STRATEGY_SOCIAL)
            if cold.size:
                if self.user_vectors_ is not None and callable(getattr(self.base_, "score_embeddings", None)):
                    scores[cold] = self.base_.score_embeddings(self.user_vectors_[users[cold]])
                else:
                    scores[cold] = self._score_mean_of_followees(users[cold])
        scores = np.asarray(scores, dtype=np.float32)
        w = self._social_row_weights(users) if self.social_weight > 0 else np.zeros(users.size)
        blend = np.flatnonzero(w > 0)
        if blend.size:
            if self.social_vectors_ is not None and self.dot_:
                soc = self.social_vectors_[users[blend]] @ self.item_vectors_.T
            else:
                soc = self._score_mean_of_followees(users[blend])
            scores[blend] = _zscore(scores[blend]) + w[blend, None].astype(np.float32) * _zscore(soc)
        nothing = np.flatnonzero(self.strategy_[users] == STRATEGY_POPULAR)
        if nothing.size:
            scores[nothing] = self.popularity_
        return scores

    def user_embeddings(self) -> np.ndarray | None:
        return self.user_vectors_

    def item_embeddings(self) -> np.ndarray | None:
        return self.item_vectors_

    def similar_items(self, item_idx: np.ndarray | int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        if self.item_vectors_ is not None:
            return super().similar_items(item_idx, k)
        return self.base_.similar_items(item_idx, k)

    # ------------------------------------------------------------------ online (serving)
    def new_user_vector(
        self,
        followees: np.ndarray,
        items: np.ndarray | None = None,
        values: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Vectors of a user unknown to the model: (folded-in own vector, social vector).

        Args:
            followees: (f,) user indices they follow (known to the snapshot).
            items: (m,) item indices of their first interactions (folded in, no retrain).
            values: (m,) raw interaction values (default 1).
            weights: (f,) tie strengths (default 1).
        Returns:
            ``(own, social)``, each (dim,) float32 or None when unavailable (no embeddings, no
            interactions / no usable followee).
        """
        followees = np.asarray(followees, dtype=np.int64)
        items = np.zeros(0, np.int64) if items is None else np.asarray(items, dtype=np.int64)
        if self.user_vectors_ is None:
            return None, None
        base_u = np.asarray(self.base_.user_embeddings(), np.float32)
        social = None
        usable = followees[self.usable_followees_[followees]] if followees.size else followees
        if usable.size:
            w = None if weights is None else np.asarray(weights, np.float64)[self.usable_followees_[followees]]
            social = propagate_user_embedding(base_u, usable, w)
            if not np.abs(social).sum():
                social = None
        own = None
        if items.size:
            if callable(getattr(self.base_, "fold_in", None)):
                own = np.asarray(self.base_.fold_in(items, values), np.float32)
            elif callable(getattr(self.base_, "embed_new_users", None)):
                own = np.asarray(self.base_.embed_new_users([followees], [items]), np.float32)[0]
            else:  # a plain fold-in: the mean of the items' vectors
                own = self.item_vectors_[items].mean(axis=0).astype(np.float32)
            if not np.abs(own).sum():
                own = None
        elif social is None and followees.size and callable(getattr(self.base_, "embed_new_users", None)):
            vec = np.asarray(self.base_.embed_new_users([followees], [items]), np.float32)[0]
            social = vec if np.abs(vec).sum() else None
        return own, social

    def score_new_user(
        self,
        own: np.ndarray | None,
        social: np.ndarray | None,
        n_interactions: int,
        extra_items: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Scores of the catalogue (and of extra item vectors) for a new user's vectors.

        Own and social scores are blended like :meth:`score` blends them for users with history,
        with at least half weight on the social side while the user has under ``5`` interactions
        (a new user's first plays say little).

        Args:
            own, social: from :meth:`new_user_vector`.
            n_interactions: interactions folded in so far.
            extra_items: (e, dim) vectors of items outside the catalogue (new items), or None.
        Returns:
            ``(catalogue scores (n_items,), extra scores (e,))`` float32; extra scores are None
            for models that do not score by dot product (they are scored with their own
            ``score_embeddings``); ``(None, None)`` when neither vector exists or the model
            cannot score a vector (then rank with the followees' score rows).
        """
        vecs = [v for v in (own, social) if v is not None]
        if not vecs:
            return None, None
        w = max(float(self.social_weight), 5.0 / (5.0 + max(n_interactions, 0)))
        if not self.dot_:
            # a model that does not score by dot product: its own scorer of arbitrary vectors
            score_embeddings = getattr(self.base_, "score_embeddings", None)
            if not callable(score_embeddings):
                return None, None
            rows = np.asarray(score_embeddings(np.vstack(vecs).astype(np.float32)), np.float32)
            s = rows[0] if len(vecs) == 1 else _zscore(rows[:1])[0] + w * _zscore(rows[1:])[0]
            return s.astype(np.float32), None
        items = self.item_vectors_
        if extra_items is not None and len(extra_items):
            items = np.vstack([items, np.asarray(extra_items, np.float32)])
        if own is not None and social is not None:
            s = _zscore((own @ items.T)[None, :])[0] + w * _zscore((social @ items.T)[None, :])[0]
        else:
            s = vecs[0] @ items.T
        n = self.item_vectors_.shape[0]
        return s[:n].astype(np.float32), s[n:].astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """``config.json`` (this wrapper's params) and ``base/`` (the wrapped model's own save)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"name": self.name, "params": self.get_params()}, default=str))
        self.base_.save(path / "base")

    @classmethod
    def load(cls, path: str | Path, snapshot: Snapshot) -> "ColdStartRecommender":
        """Rebuild from :meth:`save`: load the base model and recompute the cold-start state."""
        from recsys.registry import model_class

        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if config["name"] != cls.name:
            raise ValueError(f"{path} holds model {config['name']!r}, not {cls.name!r}")
        model = cls(**config["params"])
        model.base_ = model_class(model.base).load(path / "base", snapshot)
        model.snapshot_ = snapshot
        model._prepare(snapshot)
        return model


def wrap_for_cold_start(model: Recommender, **params: Any) -> Recommender:
    """The model with cold start for users/items without training history (evaluation protocols).

    ``popular``-like models (no embeddings, the same row for everyone) and models that already
    are a :class:`ColdStartRecommender` or :class:`SegmentPopularModel` are returned unchanged.
    """
    if isinstance(model, (ColdStartRecommender, SegmentPopularModel)) or model.name == "popular":
        return model
    return ColdStartRecommender.wrap(model, **params)


# ---------------------------------------------------------------------------------------------
# online overlay (serving)
# ---------------------------------------------------------------------------------------------
@dataclass
class NewUser:
    """A user registered online. ``followees``: snapshot user indices; ``items``/``values``: folded-in."""

    followees: np.ndarray
    attributes: dict = field(default_factory=dict)
    items: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class NewItem:
    """An item registered online, with its content vector (None when the model has no embeddings)."""

    item_id: str
    category: str | None
    title: str | None
    vector: np.ndarray | None
    info: dict = field(default_factory=dict)


class ColdStartOverlay:
    """In-memory users and items registered since the served model version was trained.

    Thread-safe (one lock) and bounded: beyond ``max_users`` / ``max_items`` the least recently
    registered/used entry is dropped. It lives on the service, so it is discarded with it when a
    new model version is promoted (by then the ETL has the users, follows and items).

    Keys are pseudonymised user ids; raw ids never enter it.
    """

    def __init__(self, max_users: int = 100_000, max_items: int = 100_000, max_items_per_user: int = 500):
        self.max_users = max_users
        self.max_items = max_items
        self.max_items_per_user = max_items_per_user
        self._users: OrderedDict[str, NewUser] = OrderedDict()
        self._items: OrderedDict[str, NewItem] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users) + len(self._items)

    def put_user(self, pseudo_id: str, followees: np.ndarray, attributes: dict | None = None) -> bool:
        """Register (or re-register) a user; returns True when the user was already there.

        A re-registration replaces follows and attributes and keeps folded-in interactions.
        """
        with self._lock:
            old = self._users.pop(pseudo_id, None)
            user = NewUser(np.unique(np.asarray(followees, dtype=np.int64)), dict(attributes or {}))
            if old is not None:
                user.items, user.values = old.items, old.values
            self._users[pseudo_id] = user
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
            return old is not None

    def get_user(self, pseudo_id: str) -> NewUser | None:
        """A copy-safe view of a registered user (None when absent)."""
        with self._lock:
            user = self._users.get(pseudo_id)
            if user is None:
                return None
            self._users.move_to_end(pseudo_id)
            return NewUser(user.followees.copy(), dict(user.attributes), list(user.items), list(user.values))

    def add_interactions(self, pseudo_id: str, items: Sequence[int], values: Sequence[float]) -> NewUser:
        """Fold interactions into a user (registering them without follows if needed).

        Repeated items keep the latest value; at most ``max_items_per_user`` are kept (latest).
        """
        with self._lock:
            user = self._users.pop(pseudo_id, None) or NewUser(np.zeros(0, np.int64))
            merged = dict(zip(user.items, user.values))
            for i, v in zip(items, values):
                merged.pop(int(i), None)
                merged[int(i)] = float(v)
            pairs = list(merged.items())[-self.max_items_per_user :]
            user.items, user.values = [p[0] for p in pairs], [p[1] for p in pairs]
            self._users[pseudo_id] = user
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
            return NewUser(user.followees.copy(), dict(user.attributes), list(user.items), list(user.values))

    def put_item(self, item: NewItem) -> bool:
        """Register (or replace) a new item; returns True when it was already there."""
        with self._lock:
            existed = self._items.pop(item.item_id, None) is not None
            self._items[item.item_id] = item
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return existed

    def get_item(self, item_id: str) -> NewItem | None:
        with self._lock:
            return self._items.get(item_id)

    def items(self) -> list[NewItem]:
        """Every registered item with a vector, oldest first."""
        with self._lock:
            return [it for it in self._items.values() if it.vector is not None]
