"""The recommendation service: a loaded model version answering in the API's JSON shapes.

The API layer only validates input and calls these methods; everything domain-specific
(pseudonymised lookup, strategy choice, filtering, reasons) lives here.
"""

from __future__ import annotations

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

    @property
    def model_version(self) -> str:
        """``<version>/<serving model>``, e.g. ``20261130T071502Z-3f9a/als``."""
        return f"{self.version.version}/{self.model.name}"

    def recommend(self, raw_user_id: str, k: int = 10, exclude_items: list[str] | None = None) -> dict:
        """Top-k items for a shop user.

        Args:
            raw_user_id: the shop's own user id (pseudonymised here).
            k: 1..n_items.
            exclude_items: item ids never to return.
        Returns:
            ``{"user_id", "model_version", "strategy", "items": [{"item_id", "score", "reasons"}]}``;
            ``strategy`` is ``personalized`` for known users with history, ``popular_fallback``
            otherwise (cold-start strategies are added by the cold-start module).
        """
        snap = self.snapshot
        pseudo = self.pseudonymise(raw_user_id)
        u = snap.user_index(pseudo)
        extra = None
        if exclude_items:
            cols = [c for c in (snap.item_index(i) for i in exclude_items) if c is not None]
            if cols:
                extra = sp.csr_matrix((np.ones(len(cols)), (np.zeros(len(cols), int), cols)), shape=(1, snap.n_items))
        has_history = u is not None and snap.interactions[u].nnz > 0
        if has_history:
            model, strategy = self.model, "personalized"
        else:
            model, strategy = (self.popular or self.model), "popular_fallback"
        if u is not None:
            idx, scores = model.recommend(np.array([u]), k=k, exclude_seen=True, exclude=extra)
        else:
            # An unknown user: popularity over a stand-in row (user 0's scores are user-independent
            # for `popular`), with nothing "seen" to filter.
            idx, scores = model.recommend(np.array([0]), k=k, exclude_seen=False, exclude=extra)
        idx, scores = idx[0], scores[0]
        keep = idx >= 0
        idx, scores = idx[keep], scores[keep]
        reasons = reasons_for(snap, model, u, idx)
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
