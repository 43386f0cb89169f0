"""The recommendation service: a loaded model version answering in the API's JSON shapes.

The API layer only validates input and calls these methods; everything domain-specific
(pseudonymised lookup, strategy choice, filtering, reasons) lives here.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys.explain import reasons_for
from recsys.versions import ModelVersion


class ItemNotFoundError(KeyError):
    """The item id is not in the served catalogue."""


class RecommendationService:
    """Recommendations and similar items from one :class:`ModelVersion`.

    Args:
        version: the loaded model version.
        pseudonymise: raw shop user id -> pseudonym (the ETL's keyed HMAC), so the API finds the
            user the ETL stored.
    """

    def __init__(self, version: ModelVersion, pseudonymise: Callable[[str], str]):
        self.version = version
        self.pseudonymise = pseudonymise
        self.snapshot = version.snapshot
        self.model = version.models[version.serving_model]
        self.popular = version.models.get("popular")
        # business filters / live events (see `recommend`): per-user top candidates precomputed by
        # `warm`, and the items users interacted with since the snapshot (pseudonym -> columns)
        self._candidates: tuple[np.ndarray, np.ndarray] | None = None
        self._popular_candidates: tuple[np.ndarray, np.ndarray] | None = None
        self._recent: dict[str, np.ndarray] = {}
        self._recent_lock = threading.Lock()
        self._popularity = np.diff(self.snapshot.interactions.tocsc().indptr)
        self._popularity_cut = float(np.quantile(self._popularity, 0.99)) if self._popularity.size else 0.0

    @property
    def model_version(self) -> str:
        """``<version>/<serving model>``, e.g. ``20261130T071502Z-3f9a/als``."""
        return f"{self.version.version}/{self.model.name}"

    def recommend(
        self,
        raw_user_id: str,
        k: int = 10,
        exclude_items: list[str] | None = None,
        *,
        exclude_purchased: bool = True,
        categories: list[str] | None = None,
        exclude_categories: list[str] | None = None,
        max_per_category: int | None = None,
    ) -> dict:
        """Top-k items for a shop user, with the storefront's business filters.

        Args:
            raw_user_id: the shop's own user id (pseudonymised here).
            k: 1..n_items.
            exclude_items: item ids never to return.
            exclude_purchased: drop every item the user already interacted with (bought, rated,
                played), both in the served snapshot and in live events received since
                (:meth:`note_interactions`); False lets repeat purchases through.
            categories: only items in these categories (unknown names match nothing).
            exclude_categories: never items in these categories.
            max_per_category: diversity, at most this many items per category (items without a
                category are not capped); None = no cap.
        Returns:
            ``{"user_id", "model_version", "strategy", "items": [{"item_id", "score", "reasons"}]}``;
            ``strategy`` is ``personalized`` for known users with history, ``popular_fallback``
            otherwise (cold-start strategies are added by the cold-start module). Fewer than k
            items when the filters leave fewer.
        """
        snap = self.snapshot
        pseudo = self.pseudonymise(raw_user_id)
        u = snap.user_index(pseudo)
        has_history = u is not None and snap.interactions[u].nnz > 0
        if has_history:
            model, strategy = self.model, "personalized"
        else:
            model, strategy = (self.popular or self.model), "popular_fallback"
        blocked = self._blocked(pseudo, exclude_items, exclude_purchased, categories, exclude_categories)
        idx, scores = self._rank(model, u, k, exclude_purchased, blocked, max_per_category, pseudo)
        reasons = reasons_for(snap, model, u, idx, popularity=self._popularity, popularity_cut=self._popularity_cut)
        if strategy == "popular_fallback":
            reasons = [[f"popular: among the most interacted-with items"] + r[:1] for r in reasons]
        return {
            "user_id": raw_user_id,
            "model_version": f"{self.version.version}/{model.name}",
            "strategy": strategy,
            "items": [
                {"item_id": str(snap.item_ids[j]), "score": float(s), "reasons": r}
                for j, s, r in zip(idx, scores, reasons)
            ],
        }

    # ------------------------------------------------------------------ business filters
    def warm(self, candidates: int = 200) -> "RecommendationService":
        """Precompute every user's top ``candidates`` items (seen filtered) with the serving model.

        Requests then filter this list instead of scoring the whole catalogue; a request whose
        filters leave fewer than k candidates, or a user with live events, is scored in full, so
        answers are identical with and without the cache. Call before the service serves
        (:class:`api.app.AppState` does, off the request path).

        Args:
            candidates: list length per user; 0 = no cache.
        Returns:
            self.
        """
        if candidates <= 0:
            return self
        snap = self.snapshot
        c = min(int(candidates), snap.n_items)
        idx, scores = self.model.recommend(np.arange(snap.n_users), k=c, exclude_seen=True)
        self._candidates = (idx, scores)
        if self.popular is not None and snap.n_users:
            pidx, pscores = self.popular.recommend(np.array([0]), k=c, exclude_seen=False)
            self._popular_candidates = (pidx[0], pscores[0])
        return self

    def note_interactions(self, raw_user_id: str, item_ids: list[str]) -> None:
        """Record items a user interacted with since the snapshot (live events): they count as
        seen for ``exclude_purchased`` and the user is scored in full from now on."""
        cols = [c for c in (self.snapshot.item_index(i) for i in item_ids) if c is not None]
        if not cols:
            return
        pseudo = self.pseudonymise(raw_user_id)
        with self._recent_lock:
            old = self._recent.get(pseudo)
            merged = np.union1d(old, cols) if old is not None else np.unique(np.asarray(cols, np.int64))
            self._recent[pseudo] = merged

    def _blocked(self, pseudo, exclude_items, exclude_purchased, categories, exclude_categories) -> np.ndarray | None:
        """(n_items,) bool of items the filters drop (besides the snapshot's seen items), or None."""
        snap = self.snapshot
        recent = self._recent.get(pseudo) if exclude_purchased else None
        if not (exclude_items or categories is not None or exclude_categories or recent is not None):
            return None
        blocked = np.zeros(snap.n_items, dtype=bool)
        if exclude_items:
            cols = [c for c in (snap.item_index(i) for i in exclude_items) if c is not None]
            blocked[cols] = True
        if recent is not None:
            blocked[recent] = True
        cat_index = {str(c): i for i, c in enumerate(snap.categories)}
        if categories is not None:
            allowed = [cat_index[c] for c in categories if c in cat_index]
            blocked |= ~np.isin(snap.item_category, allowed)
        if exclude_categories:
            banned = [cat_index[c] for c in exclude_categories if c in cat_index]
            if banned:
                blocked |= np.isin(snap.item_category, banned)
        return blocked

    def _diversify(self, idx: np.ndarray, scores: np.ndarray, k: int, max_per_category: int | None):
        """Greedy top-down pick keeping at most ``max_per_category`` items per category."""
        if not max_per_category:
            return idx[:k], scores[:k]
        cats = self.snapshot.item_category[idx] if self.snapshot.item_category.size else np.full(idx.size, -1)
        counts: dict[int, int] = {}
        keep = []
        for pos, c in enumerate(cats.tolist()):
            if c >= 0:
                if counts.get(c, 0) >= max_per_category:
                    continue
                counts[c] = counts.get(c, 0) + 1
            keep.append(pos)
            if len(keep) == k:
                break
        return idx[keep], scores[keep]

    def _rank(self, model, u, k, exclude_seen, blocked, max_per_category, pseudo) -> tuple[np.ndarray, np.ndarray]:
        """Ranked ``(items, scores)`` (at most k) after filters: cached candidates when they
        suffice, else the model over the whole catalogue, fetching more while diversity drops items."""
        snap = self.snapshot
        n_items = snap.n_items
        cached = None
        if model is self.model and u is not None and exclude_seen and self._candidates is not None and pseudo not in self._recent:
            cached = (self._candidates[0][u], self._candidates[1][u])
        elif model is self.popular and u is None and self._popular_candidates is not None:
            cached = self._popular_candidates
        if cached is not None:
            idx, scores = cached
            valid = idx >= 0
            exhausted = not valid.all()  # the list already holds every candidate there is
            idx, scores = idx[valid], scores[valid]
            if blocked is not None:
                keep = ~blocked[idx]
                idx, scores = idx[keep], scores[keep]
            out = self._diversify(idx, scores, k, max_per_category)
            if out[0].size >= k or exhausted:
                return out
        exclude = None
        if blocked is not None and blocked.any():
            cols = np.flatnonzero(blocked)
            exclude = sp.csr_matrix((np.ones(cols.size, np.float32), (np.zeros(cols.size, np.int64), cols)), shape=(1, n_items))
        row = np.array([u if u is not None else 0])
        # an unknown user: popularity over a stand-in row (user 0's scores are user-independent
        # for `popular`), with nothing "seen" to filter
        seen = exclude_seen and u is not None
        fetch = k if not max_per_category else min(n_items, 4 * k)
        while True:
            idx, scores = model.recommend(row, k=fetch, exclude_seen=seen, exclude=exclude)
            idx, scores = idx[0], scores[0]
            valid = idx >= 0
            idx, scores = idx[valid], scores[valid]
            out = self._diversify(idx, scores, k, max_per_category)
            if out[0].size >= k or fetch >= n_items or not valid.all():
                return out
            fetch = min(n_items, fetch * 4)

    def similar(self, item_id: str, k: int = 10) -> dict:
        """Items similar to ``item_id``.

        Returns:
            ``{"item_id", "model_version", "items": [{"item_id", "score", "reasons"}]}``.
        Raises:
            ItemNotFoundError: unknown item.
        """
        snap = self.snapshot
        j = snap.item_index(item_id)
        if j is None:
            raise ItemNotFoundError(item_id)
        try:
            idx, scores = self.model.similar_items(np.array([j]), k=k)
            model = self.model
        except NotImplementedError:
            idx, scores = self.popular.similar_items(np.array([j]), k=k)
            model = self.popular
        idx, scores = idx[0], scores[0]
        keep = idx >= 0
        cat = int(snap.item_category[j]) if snap.item_category.size else -1
        items = []
        for i, s in zip(idx[keep], scores[keep]):
            reasons = [f"similar by the {model.name} model"]
            if cat >= 0 and snap.item_category[i] == cat:
                reasons.append(f"same category: {snap.categories[cat]}")
            items.append({"item_id": str(snap.item_ids[i]), "score": float(s), "reasons": reasons})
        return {"item_id": item_id, "model_version": f"{self.version.version}/{model.name}", "items": items}
