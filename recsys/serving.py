"""The recommendation service: a loaded model version answering in the API's JSON shapes.

The API layer only validates input and calls these methods; everything domain-specific
(pseudonymised lookup, strategy choice, filtering, reasons) lives here.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys import coldstart as cs
from recsys.explain import precompute_evidence, reasons_for, reasons_from_evidence
from recsys.versions import ModelVersion


class ItemNotFoundError(KeyError):
    """The item id is not in the served catalogue."""


def _evidence_key() -> str:
    """A digest of the code that computes the reasons' evidence (and its thresholds): cached
    evidence files carry it in their name, so files written by older code are never read."""
    import hashlib
    import inspect

    from recsys import explain

    parts = [inspect.getsource(f) for f in (explain.precompute_evidence, explain._evidence_rows, explain._best_similar,
                                             explain._item_similarity, explain._followee_counts,
                                             explain._favourite_categories)]
    parts.append(repr({k: v for k, v in vars(explain).items() if k.isupper()}))
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:10]


EVIDENCE_FORMAT = _evidence_key()


class RecommendationService:
    """Recommendations and similar items from one :class:`ModelVersion`.

    Items registered online (:meth:`register_item`) are placed at the category-mean direction
    with the norm of a ``NEW_ITEM_NORM_QUANTILE`` item of their category (see
    :func:`recsys.coldstart.item_embedding_from_content`): a deliberate exposure choice, since
    the plain mean almost never reaches a top-k. None = the plain mean.

    Args:
        version: the loaded model version.
        pseudonymise: raw shop user id -> pseudonym (the ETL's keyed HMAC), so the API finds the
            user the ETL stored.
    """

    NEW_ITEM_NORM_QUANTILE: float | None = 0.9
    WARM_BATCH = 32  # users scored per block by warm (peak memory of a hot swap)

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
        self._evidence: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see warm / recsys.explain
        self._recent: dict[str, np.ndarray] = {}
        self._recent_lock = threading.Lock()
        self._popularity = np.diff(self.snapshot.interactions.tocsc().indptr)
        self._popularity_cut = float(np.quantile(self._popularity, 0.99)) if self._popularity.size else 0.0
        # cold start (recsys.coldstart): users/items registered online and folded-in interactions,
        # kept until the next model version; the wrapper of the serving model is built on first use
        self.overlay = cs.ColdStartOverlay()
        self._cold: cs.ColdStartRecommender | None = None
        self._cold_lock = threading.Lock()
        self._content_index: cs.ContentIndex | None = None
        # a version with NaN/inf vectors (made before training refused them, or corrupted):
        # users whose scores cannot be trusted get popular_fallback, and /ready reports it
        self.unhealthy, self._untrusted_users = _nonfinite_users(self.model, self.snapshot.n_users)

    def knows_item(self, item_id: str) -> bool:
        """True when ``item_id`` is in the served catalogue or was registered online."""
        if self.snapshot.item_index(item_id) is not None:
            return True
        return self.overlay.get_item(item_id) is not None

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
            ``strategy`` is ``personalized`` for users with history (or folded-in interactions
            and no follows), ``cold_start_social`` for users without history whose followees
            have history (registered with :meth:`register_user` or in the snapshot),
            ``cold_start_content`` for such users with preferred categories but no usable
            followee, ``popular_fallback`` otherwise. Items registered with
            :meth:`register_item` are ranked by their content vectors beside the catalogue.
            Fewer than k items when the filters leave fewer.
        """
        snap = self.snapshot
        pseudo = self.pseudonymise(raw_user_id)
        u = snap.user_index(pseudo)
        has_history = u is not None and snap.interactions.indptr[u + 1] > snap.interactions.indptr[u]
        if has_history and self._untrusted_users is not None and self._untrusted_users[u]:
            has_history = False  # NaN scores: never an empty list, popularity instead
        if has_history:
            model, strategy = self.model, "personalized"
        else:
            model, strategy = (self.popular or self.model), "popular_fallback"
        blocked = self._blocked(pseudo, exclude_items, exclude_purchased, categories, exclude_categories)
        plan = self._cold_start_plan(pseudo, u, has_history)
        if plan is not None:  # no history but graph neighbours, folded-in interactions, or new items
            return self._recommend_cold_start(raw_user_id, plan, k, exclude_purchased, blocked, max_per_category,
                                              exclude_items, categories, exclude_categories)
        idx, scores = self._rank(model, u, k, exclude_purchased, blocked, max_per_category, pseudo)
        reasons = self._precomputed_reasons(model, u, idx) if has_history else None
        if reasons is None:
            reasons = reasons_for(snap, model, u, idx, popularity=self._popularity, popularity_cut=self._popularity_cut)
        if strategy == "popular_fallback":
            reasons = [[f"popular: among the most interacted-with items"] + r[:1] for r in reasons]
        items = [
            {"item_id": str(snap.item_ids[j]), "score": float(s), "reasons": r}
            for j, s, r in zip(idx, scores, reasons)
        ]
        if has_history and model is self.model:
            items = self._with_new_items(items, u, k, exclude_items, categories, exclude_categories, max_per_category)
        return {
            "user_id": raw_user_id,
            "model_version": f"{self.version.version}/{model.name}",
            "strategy": strategy,
            "items": items,
        }

    def _precomputed_reasons(self, model, u: int, idx: np.ndarray) -> list[list[str]] | None:
        """Reasons from the evidence precomputed by :meth:`warm` when every item is among the
        user's cached candidates (else None: :func:`reasons_for` computes them)."""
        if self._evidence is None or model is not self.model or self._candidates is None:
            return None
        row = np.asarray(self._candidates[0][u])
        order = np.argsort(row, kind="stable")
        ranked = row[order]
        at = np.minimum(np.searchsorted(ranked, idx), ranked.size - 1)
        if not (ranked[at] == idx).all():
            return None
        social, similar, favourite = self._evidence
        return reasons_from_evidence(self.snapshot, model, idx, order[at], social[u], similar[u], favourite[u],
                                     self._popularity, self._popularity_cut)

    def answers_from_cache(self, raw_user_id: str, *, exclude_purchased: bool = True,
                           categories: list[str] | None = None) -> bool:
        """True when :meth:`recommend` for this user will filter a precomputed candidate list
        (microseconds of NumPy) rather than score the catalogue: a user with history and no
        live events or cold-start state, or an unknown user (popularity), no category
        restriction, ``exclude_purchased`` on. A hint for where to run the call (the event loop
        or a thread); the answer is the same either way.
        """
        if self._candidates is None or categories is not None or not exclude_purchased:
            return False
        pseudo = self.pseudonymise(raw_user_id)
        if pseudo in self._recent or self.overlay.get_user(pseudo) is not None:
            return False
        u = self.snapshot.user_index(pseudo)
        if u is None:
            return self._popular_candidates is not None
        untrusted = getattr(self, "_untrusted_users", None)
        if untrusted is not None and untrusted[u]:
            return False  # non-finite scores: the fallback path
        indptr = self.snapshot.interactions.indptr
        return bool(indptr[u + 1] > indptr[u])

    # ------------------------------------------------------------------ business filters
    def warm(self, candidates: int = 200, cache_dir: str | os.PathLike | None = None) -> "RecommendationService":
        """Precompute every user's top ``candidates`` items (seen filtered) with the serving model.

        Requests then filter this list instead of scoring the whole catalogue; a request whose
        filters leave fewer than k candidates, or a user with live events, is scored in full, so
        answers are identical with and without the cache. Call before the service serves
        (:class:`api.app.AppState` does, off the request path).

        Args:
            candidates: list length per user; 0 = no cache.
            cache_dir: where to keep the lists as ``.npy`` files (the version's folder): the first
                process to warm a version computes and writes them (under a file lock), every
                other process — the other workers, a restart, a hot swap — memory-maps them, so
                N workers share one copy in the page cache and a swap does not score twice.
                None = compute in memory.
        Returns:
            self.
        """
        if candidates <= 0:
            return self
        snap = self.snapshot
        c = min(int(candidates), snap.n_items)
        # small scoring blocks: a hot swap warms while the old version serves, and a 512-user block
        # of ciao's 105k items (scores, their copy, top-k's index array) is ~0.9 GB; 32 users ~55 MB
        compute = lambda: self.model.recommend(np.arange(snap.n_users), k=c, exclude_seen=True, batch_size=self.WARM_BATCH)  # noqa: E731
        if cache_dir is not None:
            self._candidates = _shared_arrays(Path(cache_dir), f"candidates-{self.model.name}-{c}", compute)
        else:
            self._candidates = compute()
        # reasons' evidence for every cached candidate (followee counts, most similar history
        # item, favourite categories): requests then only look it up (recsys.explain)
        compute_evidence = lambda: precompute_evidence(snap, self.model, np.asarray(self._candidates[0]))  # noqa: E731
        if cache_dir is not None:
            self._evidence = _shared_arrays(Path(cache_dir), f"evidence-v{EVIDENCE_FORMAT}-{self.model.name}-{c}", compute_evidence)
        else:
            self._evidence = compute_evidence()
        if self.popular is not None and snap.n_users:
            pidx, pscores = self.popular.recommend(np.array([0]), k=c, exclude_seen=False)
            self._popular_candidates = (pidx[0], pscores[0])
        return self

    def note_interactions(self, raw_user_id: str, item_ids: list[str]) -> None:
        """Record items a user interacted with since the snapshot (live events): they count as
        seen for ``exclude_purchased`` and the user is scored in full from now on."""
        self.note_interactions_of(self.pseudonymise(raw_user_id), item_ids)

    def note_interactions_of(self, pseudo: str, item_ids: list[str]) -> None:
        """:meth:`note_interactions` for an already pseudonymised user id (journal rows)."""
        cols = [c for c in (self.snapshot.item_index(i) for i in item_ids) if c is not None]
        if not cols:
            return
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
            new = self.overlay.get_item(item_id)
            if new is not None and new.vector is not None:
                return self._similar_new_item(new, k)
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

    # ------------------------------------------------------------------ cold start (recsys.coldstart)
    @property
    def cold_start(self) -> cs.ColdStartRecommender:
        """The serving model wrapped for cold start (built once, on first use)."""
        if self._cold is None:
            with self._cold_lock:
                if self._cold is None:
                    m = self.model
                    self._cold = m if isinstance(m, cs.ColdStartRecommender) else cs.ColdStartRecommender.wrap(m)
        return self._cold

    def register_user(self, raw_user_id: str, follows: list[str], attributes: dict | None = None) -> dict:
        """Register a user who is new to the served model (``POST /v1/users``).

        Followees are pseudonymised like the user and looked up in the served snapshot (and among
        users registered earlier); the user's recommendations use them at once. Raw ids are never
        stored or logged.

        Args:
            raw_user_id: the shop's user id.
            follows: the shop's ids of the users they follow.
            attributes: optional context, e.g. ``{"categories": ["Books"]}`` (preferred categories
                drive ``cold_start_content`` while there is no social signal).
        Returns:
            ``{"user_id", "strategy", "known_followees", "unknown_followees", "created"}``;
            ``unknown_followees`` lists the raw ids found nowhere (reported, not fatal).
        Raises:
            UserExistsError: the user has training history in the served version (use events).
        """
        snap = self.snapshot
        pseudo = self.pseudonymise(raw_user_id)
        u = snap.user_index(pseudo)
        if u is not None and snap.interactions[u].nnz > 0:
            raise UserExistsError(raw_user_id)
        known, unknown = [], []
        for raw in dict.fromkeys(str(f) for f in follows):
            p = self.pseudonymise(raw)
            j = snap.user_index(p)
            if j is not None:
                known.append(j)
            elif self.overlay.get_user(p) is not None:
                known.append(-1)  # registered online: known, but nothing to propagate yet
            else:
                unknown.append(raw)
        existed = self.overlay.put_user(pseudo, np.array([j for j in known if j >= 0], np.int64), attributes)
        plan = self._cold_start_plan(pseudo, u, False)
        strategy = plan.strategy if plan is not None else cs.STRATEGY_POPULAR
        return {"user_id": raw_user_id, "strategy": strategy, "known_followees": len(known),
                "unknown_followees": unknown, "created": not existed}

    def register_item(self, item_id: str, category: str | None, title: str | None = None, text: str | None = None) -> dict:
        """Register an item that is new to the served catalogue (``POST /v1/items``).

        Its vector comes from its content neighbours (:func:`recsys.coldstart.item_embedding_from_content`):
        the items of its category, and those nearest by title/brand/description (``text``). From
        then on it can appear in recommendations and has similar items.

        Returns:
            ``{"item_id", "strategy", "category_known", "category_items", "text_neighbours", "created"}``;
            ``strategy`` is ``cold_start_content`` when a vector was found, else None (the item is
            kept, but nothing can rank it until it has interactions or the model is retrained).
        Raises:
            ItemExistsError: the item is already in the served catalogue.
        """
        snap = self.snapshot
        if snap.item_index(item_id) is not None:
            raise ItemExistsError(item_id)
        vector, info = None, {"category": None, "category_items": 0, "text_neighbours": 0}
        content = " ".join(t for t in (title, text) if t) or None
        cold = self.cold_start
        if cold.item_vectors_ is not None and cold.dot_:
            if content and self._content_index is None:
                with self._cold_lock:
                    if self._content_index is None:
                        warm = np.diff(snap.interactions.tocsc().indptr) > 0
                        self._content_index = cs.ContentIndex(snap.item_text, np.flatnonzero(warm))
            vec, info = cs.item_embedding_from_content(cold.item_vectors_, snap, category, content,
                                                       warm=self._popularity > 0,
                                                       index=self._content_index,
                                                       norm_quantile=self.NEW_ITEM_NORM_QUANTILE)
            vector = vec if np.abs(vec).sum() > 0 else None
        existed = self.overlay.put_item(cs.NewItem(item_id, category, title, vector, info))
        return {"item_id": item_id, "strategy": cs.STRATEGY_CONTENT if vector is not None else None,
                "category_known": info["category"] is not None, "category_items": info["category_items"],
                "text_neighbours": info["text_neighbours"], "created": not existed}

    def fold_in(self, raw_user_id: str, item_ids: list[str], values: list[float] | None = None) -> dict:
        """Fold a user's new interactions into their served vector, with no retrain.

        Called for every interaction event (``POST /v1/events``). The next recommendation for the
        user is computed from their training interactions plus these (``als``: ``implicit``'s
        ``recalculate_user``; GNNs: their inductive pass), blended with the followees' vector
        while the user has few interactions. Items unknown to the served catalogue are skipped.

        Args:
            raw_user_id: the shop's user id (pseudonymised here).
            item_ids: item ids interacted with.
            values: raw values (rating, quantity, play count), default 1 each.
        Returns:
            ``{"user_id", "folded_in", "unknown_items"}``.
        Raises:
            ValueError: values and item_ids differ in length.
        """
        out = self.fold_in_of(self.pseudonymise(raw_user_id), item_ids, values)
        return {"user_id": raw_user_id, **out}

    def fold_in_of(self, pseudo: str, item_ids: list[str], values: list[float] | None = None) -> dict:
        """:meth:`fold_in` for an already pseudonymised user id (journal rows): ``{"folded_in", "unknown_items"}``."""
        if values is not None and len(values) != len(item_ids):
            raise ValueError(f"{len(values)} values for {len(item_ids)} items")
        snap = self.snapshot
        vals = [1.0] * len(item_ids) if values is None else [float(v) for v in values]
        cols, vs, unknown = [], [], []
        for item, v in zip(item_ids, vals):
            j = snap.item_index(str(item))
            if j is None:
                unknown.append(str(item))
            else:
                cols.append(j)
                vs.append(v if np.isfinite(v) and v > 0 else 1.0)
        if cols:
            self.overlay.add_interactions(pseudo, cols, vs)
        return {"folded_in": len(cols), "unknown_items": unknown}

    def _cold_start_plan(self, pseudo: str, u: int | None, has_history: bool) -> "_ColdPlan | None":
        """What the cold-start path knows about a user, or None when the regular path answers."""
        snap = self.snapshot
        new = self.overlay.get_user(pseudo)
        if has_history and (new is None or not new.items):
            return None  # the regular path (registered new items are merged in by _with_new_items)
        followees = np.zeros(0, np.int64)
        if u is not None:
            followees = snap.follows[u].indices.astype(np.int64)
        if new is not None and new.followees.size:
            followees = np.union1d(followees, new.followees)
        items = np.asarray(new.items if new is not None else [], np.int64)
        values = np.asarray(new.values if new is not None else [], np.float32)
        attributes = new.attributes if new is not None else {}
        if not has_history and new is None and not followees.size:
            return None  # nothing known: the regular popular fallback
        cold = self.cold_start
        own = social = None
        if has_history:  # with folded-in interactions: refold training + new interactions
            row = snap.interactions[u]
            all_items = np.concatenate([row.indices, items]).astype(np.int64)
            all_values = np.concatenate([row.data.astype(np.float32), values])
            if callable(getattr(cold.base_, "fold_in", None)):
                own = np.asarray(cold.base_.fold_in(all_items, all_values), np.float32)
            elif callable(getattr(cold.base_, "embed_new_users", None)):
                own = np.asarray(cold.base_.embed_new_users([followees], [np.unique(all_items)]), np.float32)[0]
            else:
                return None  # a model that cannot fold in: the regular path (live items count as seen)
            strategy = cs.STRATEGY_PERSONALIZED
        else:
            own, social = cold.new_user_vector(followees, items, values)
            if social is not None:
                strategy = cs.STRATEGY_SOCIAL
            elif own is not None:
                strategy = cs.STRATEGY_PERSONALIZED
            elif followees.size and cold.usable_followees_[followees].any():
                strategy = cs.STRATEGY_SOCIAL  # a model without vectors: its followees' score rows
            elif attributes.get("categories") or attributes.get("category"):
                strategy = cs.STRATEGY_CONTENT
            else:
                strategy = cs.STRATEGY_POPULAR
        seen = np.union1d(snap.interactions[u].indices if u is not None else np.zeros(0, np.int64), items)
        return _ColdPlan(u, followees, items, seen.astype(np.int64), own, social, strategy, attributes, len(items) + (
            snap.interactions[u].nnz if u is not None else 0))

    def _with_new_items(self, items: list[dict], u: int, k: int, exclude_items, categories, exclude_categories,
                        max_per_category) -> list[dict]:
        """Merge items registered online into a personalised list, by the user's dot product
        with their content vectors (dot-product models only; others return ``items`` as is)."""
        new_items = self.overlay.items()
        if not new_items:
            return items
        cold = self.cold_start
        if cold.user_vectors_ is None or not cold.dot_:
            return items
        banned = set(exclude_items or [])
        snap = self.snapshot
        new_items = [it for it in new_items if it.item_id not in banned
                     and (categories is None or it.category in categories)
                     and not (exclude_categories and it.category in exclude_categories)]
        if not new_items:
            return items
        scores = np.vstack([it.vector for it in new_items]) @ cold.user_vectors_[u]
        per_cat: dict[str, int] = {}
        if max_per_category:
            for it in items:
                j = snap.item_index(it["item_id"])
                if j is not None and snap.item_category[j] >= 0:
                    name = str(snap.categories[snap.item_category[j]])
                    per_cat[name] = per_cat.get(name, 0) + 1
        merged = list(items)
        for it, s in sorted(zip(new_items, scores), key=lambda p: -p[1]):
            if len(merged) >= k and s <= merged[-1]["score"]:
                break
            if max_per_category and it.category is not None and per_cat.get(it.category, 0) >= max_per_category:
                continue
            why = ["new item: recommended from its content" + (f" (category {it.category})" if it.category else "")]
            merged.append({"item_id": it.item_id, "score": float(s), "reasons": why})
            merged.sort(key=lambda x: -x["score"])
            merged = merged[:k]
            if it.category is not None:
                per_cat[it.category] = per_cat.get(it.category, 0) + 1
        return merged

    def _recommend_cold_start(self, raw_user_id, plan: "_ColdPlan", k, exclude_purchased, blocked, max_per_category,
                              exclude_items, categories, exclude_categories) -> dict:
        snap = self.snapshot
        cold = self.cold_start
        new_items = self.overlay.items()
        new_vecs = np.vstack([it.vector for it in new_items]) if new_items else None
        new_scores = None
        model = self.model
        strategy = plan.strategy
        scores = None
        if plan.own is not None or plan.social is not None:
            scores, new_scores = cold.score_new_user(plan.own, plan.social, plan.n_interactions, new_vecs)
        fol = plan.followees[cold.usable_followees_[plan.followees]] if plan.followees.size else plan.followees
        if scores is None and plan.strategy == cs.STRATEGY_PERSONALIZED and plan.u is not None:
            scores = np.asarray(self.model.score(np.array([plan.u])), np.float32)[0]
        elif scores is None and plan.strategy == cs.STRATEGY_SOCIAL and fol.size:
            # a model that cannot score a vector (item-CF, hybrid): the mean of the followees' rows
            scores = np.asarray(self.model.score(fol[:200]), np.float32).mean(axis=0)
        elif scores is None:
            if strategy in (cs.STRATEGY_SOCIAL, cs.STRATEGY_PERSONALIZED):
                strategy = cs.STRATEGY_POPULAR  # vectors the model cannot score, nobody to borrow from
            base = self._popularity.astype(np.float32)
            if plan.followees.size:  # segment popularity: what the user's followees interacted with
                base = base * 1e-3 + np.asarray((snap.interactions[plan.followees] > 0).sum(axis=0), np.float32).ravel()
            cats = plan.attributes.get("categories") or ([plan.attributes["category"]] if plan.attributes.get("category") else [])
            scores = cs.context_popularity(snap, base, [str(c) for c in cats])
            model = self.popular or self.model
        scores = np.asarray(scores, np.float32).copy()
        if exclude_purchased and plan.seen.size:
            scores[plan.seen] = -np.inf
        if blocked is not None:
            scores[blocked] = -np.inf
        n = snap.n_items
        fetch = min(n, k if not max_per_category else 4 * k)
        idx, vals = cs.top_k(scores[None, :], fetch)
        idx, vals = idx[0], vals[0]
        keep = idx >= 0
        cand = [(float(s), int(j), None) for j, s in zip(idx[keep], vals[keep])]
        if new_scores is not None:
            banned = set(exclude_items or [])
            for it, s in zip(new_items, new_scores):
                if it.item_id in banned or (categories is not None and it.category not in categories):
                    continue
                if exclude_categories and it.category in exclude_categories:
                    continue
                cand.append((float(s), -1, it))
        cand.sort(key=lambda c: -c[0])
        picked, per_cat = [], {}
        for s, j, it in cand:
            cat = (str(snap.categories[snap.item_category[j]]) if j >= 0 and snap.item_category[j] >= 0 else
                   (it.category if it is not None else None))
            if max_per_category and cat is not None:
                if per_cat.get(cat, 0) >= max_per_category:
                    continue
                per_cat[cat] = per_cat.get(cat, 0) + 1
            picked.append((s, j, it))
            if len(picked) == k:
                break
        cat_idx = np.array([j for _, j, _ in picked if j >= 0], np.int64)
        reasons = reasons_for(snap, model, plan.u, cat_idx, followees=plan.followees, popularity=self._popularity,
                              popularity_cut=self._popularity_cut) if cat_idx.size else []
        out, r = [], iter(reasons)
        for s, j, it in picked:
            if it is not None:
                why = ["new item: recommended from its content" + (f" (category {it.category})" if it.category else "")]
                out.append({"item_id": it.item_id, "score": s, "reasons": why})
                continue
            why = next(r)
            if strategy == cs.STRATEGY_SOCIAL and not why:
                why = ["liked by people like the ones you follow"]
            elif strategy == cs.STRATEGY_POPULAR:
                why = ["popular: among the most interacted-with items"] + why[:1]
            elif strategy == cs.STRATEGY_CONTENT:
                why = ["popular in the categories you chose"] + why[:1]
            out.append({"item_id": str(snap.item_ids[j]), "score": s, "reasons": why})
        return {"user_id": raw_user_id, "model_version": f"{self.version.version}/{model.name}",
                "strategy": strategy, "items": out}

    def _similar_new_item(self, item: "cs.NewItem", k: int) -> dict:
        """Similar items of an item registered online: cosine of its content vector."""
        snap = self.snapshot
        vecs = self.cold_start.item_vectors_
        norm = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        q = item.vector / max(float(np.linalg.norm(item.vector)), 1e-12)
        sims = (norm @ q).astype(np.float32)
        sims[self._popularity == 0] = -np.inf  # items without interactions have no learned vector
        idx, vals = cs.top_k(sims[None, :], k)
        items = []
        for j, s in zip(idx[0], vals[0]):
            if j < 0:
                continue
            reasons = [f"similar by content to a new item, via the {self.model.name} model"]
            if item.category is not None and snap.item_category[j] >= 0 and str(snap.categories[snap.item_category[j]]) == item.category:
                reasons.append(f"same category: {item.category}")
            items.append({"item_id": str(snap.item_ids[j]), "score": float(s), "reasons": reasons})
        return {"item_id": item.item_id, "model_version": f"{self.version.version}/{self.model.name}",
                "strategy": cs.STRATEGY_CONTENT, "items": items}


def _shared_arrays(folder: Path, name: str, compute: Callable[[], tuple[np.ndarray, ...]],
                   mmap_mode: str = "r") -> tuple[np.ndarray, ...]:
    """Arrays computed once per folder and memory-mapped read-only by every process.

    ``folder/<name>-<i>.npy`` are written by the first caller (temp file + rename, under an
    ``fcntl`` lock on ``folder/.<name>.lock`` so concurrent workers compute once); later callers
    map them. A folder that cannot be written (read-only models) falls back to ``compute()``.

    Returns:
        The arrays, as ``np.memmap`` views (read-only for ``mmap_mode="r"``, copy-on-write for
        ``"c"``), or in memory on the fallback.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".{name}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = folder / f"{name}.done"
            if not done.exists():
                arrays = compute()
                for i, a in enumerate(arrays):
                    tmp = folder / f".{name}-{i}.npy.tmp"
                    with open(tmp, "wb") as fh:
                        np.save(fh, np.ascontiguousarray(a))
                    os.replace(tmp, folder / f"{name}-{i}.npy")
                    del a
                del arrays
                done.write_text("")
            n = len(list(folder.glob(f"{name}-*.npy")))
            # plain ndarray views of the maps (np.memmap's Python-level __getitem__ costs ~10 µs
            # per index on the request path); the view keeps the mapping alive
            return tuple(np.asarray(np.load(folder / f"{name}-{i}.npy", mmap_mode=mmap_mode)) for i in range(n))
    except OSError:
        return tuple(compute())


def map_model_arrays(models: dict, folder: str | os.PathLike, min_bytes: int = 1 << 20) -> int:
    """Replace the models' large NumPy arrays by copy-on-write memory maps of files in ``folder``.

    Every array attribute of at least ``min_bytes`` (factor tables, item-item matrices' dense
    parts), on a model or one level down (e.g. ``implicit``'s own model object), is written once
    per folder (:func:`_shared_arrays`) and mapped with ``mmap_mode="c"``: every worker and every
    later load of the version share one copy in the page cache, and a write (none is expected)
    stays private to the process instead of failing. Arrays shared by several attributes stay
    shared (mapped once).

    Args:
        models: name -> fitted model, as in :class:`recsys.versions.ModelVersion`.
        folder: the version's serving cache folder.
        min_bytes: smaller arrays are left in memory.
    Returns:
        Number of arrays mapped.
    """
    folder = Path(folder)
    mapped: dict[int, np.ndarray] = {}
    count = 0

    def swap_in(owner, path: str) -> None:
        nonlocal count
        for attr, value in list(vars(owner).items()):
            if not (isinstance(value, np.ndarray) and value.dtype != object and value.nbytes >= min_bytes):
                continue
            if id(value) not in mapped:
                (arr,) = _shared_arrays(folder, f"array-{path}.{attr}", lambda v=value: (v,), mmap_mode="c")
                mapped[id(value)] = arr
                count += 1
            setattr(owner, attr, mapped[id(value)])

    for name, model in models.items():
        swap_in(model, name)
        for attr, value in list(vars(model).items()):
            if hasattr(value, "__dict__") and not isinstance(value, (np.ndarray, sp.spmatrix)) and attr != "snapshot_":
                swap_in(value, f"{name}.{attr}")
    return count


def _nonfinite_users(model, n_users: int) -> tuple[dict, np.ndarray | None]:
    """``(report, untrusted)``: what :func:`recsys.versions.nonfinite_report` says of the serving
    model, and a (n_users,) bool mask of users whose scores hold NaN (all users when an item
    vector does); ``(dict(), None)`` for a healthy model."""
    from recsys.versions import nonfinite_report

    report = nonfinite_report({model.name: model})
    if not report:
        return {}, None
    mask = np.zeros(n_users, bool)
    users = model.user_embeddings()
    if report[model.name].get("items"):
        mask[:] = True
    elif users is not None:
        mask[: len(users)] = ~np.isfinite(np.asarray(users)).all(axis=1)
    import logging

    logging.getLogger(__name__).warning("serving model %s holds non-finite vectors (%s); %d users get popular_fallback",
                model.name, report[model.name], int(mask.sum()))
    return report, mask


class UserExistsError(ValueError):
    """The user already has training history in the served model version (register via events)."""


class ItemExistsError(ValueError):
    """The item is already in the served catalogue."""


@dataclass
class _ColdPlan:
    """What :meth:`RecommendationService._recommend_cold_start` ranks with."""

    u: int | None
    followees: np.ndarray
    items: np.ndarray
    seen: np.ndarray
    own: np.ndarray | None
    social: np.ndarray | None
    strategy: str
    attributes: dict
    n_interactions: int
