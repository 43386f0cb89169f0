"""Human-readable reasons for a recommended item.

Reasons are computed from the graph, not invented: the user's followees who interacted with the
item (social proof), the item in the user's history most similar to it (the model's own item
similarity or embeddings), and the user's favourite categories. Reasons never contain user ids.
"""

from __future__ import annotations

import numpy as np

from graph.snapshot import Snapshot
from recsys.protocol import Recommender


def item_label(snapshot: Snapshot, item_idx: int, max_len: int = 40) -> str:
    """Display label of an item: its id plus a short title when the data has one."""
    item_id = str(snapshot.item_ids[item_idx])
    text = str(snapshot.item_text[item_idx]).strip() if snapshot.item_text.size else ""
    if text:
        text = text if len(text) <= max_len else text[: max_len - 1] + "…"
        return f"{item_id} ({text})"
    return item_id


def _item_similarity(model: Recommender, history: np.ndarray, item_idx: int) -> np.ndarray | None:
    """Similarity of ``item_idx`` to each item of ``history`` (m,), or None if the model has none."""
    sim = getattr(model, "similarity_", None)
    if sim is not None:
        return np.asarray(sim[history][:, item_idx].todense()).ravel()
    emb = model.item_embeddings()
    if emb is None:
        return None
    target = emb[item_idx]
    hist = emb[history]
    denom = np.linalg.norm(hist, axis=1) * max(np.linalg.norm(target), 1e-12)
    return (hist @ target) / np.maximum(denom, 1e-12)


def reasons_for(
    snapshot: Snapshot,
    model: Recommender,
    user_idx: int | None,
    item_idx: np.ndarray,
    followees: np.ndarray | None = None,
    max_reasons: int = 2,
    popularity: np.ndarray | None = None,
    popularity_cut: float | None = None,
) -> list[list[str]]:
    """Reasons for each recommended item.

    Args:
        snapshot: the served snapshot.
        model: the model that ranked the items.
        user_idx: the user's row, or None for a user unknown to the snapshot.
        item_idx: (k,) int item indices (-1 entries get no reasons).
        followees: (f,) user indices the user follows (default: from ``snapshot.follows``).
        max_reasons: at most this many reasons per item.
        popularity, popularity_cut: (n_items,) interactions per item and its 99th percentile,
            precomputed once per snapshot by callers on the request path (default: computed
            here, a few ms on a 100k-item catalogue).
    Returns:
        k lists of strings, e.g. ``["2 people you follow interacted with this",
        "similar to 123 (Radiohead), which you interacted with"]``.
    """
    inter = snapshot.interactions
    if followees is None:
        followees = snapshot.follows[user_idx].indices if user_idx is not None else np.array([], dtype=np.int64)
    history = inter[user_idx].indices if user_idx is not None else np.array([], dtype=np.int64)
    fav_cats: set[int] = set()
    if history.size:
        cats = snapshot.item_category[history]
        cats = cats[cats >= 0]
        if cats.size:
            values, counts = np.unique(cats, return_counts=True)
            fav_cats = set(values[np.argsort(-counts)[:2]].tolist())
    social = None
    if followees.size:
        social = np.asarray((inter[followees] > 0).sum(axis=0)).ravel()
    if popularity is None:
        popularity = np.diff(inter.tocsc().indptr)
    if popularity_cut is None:
        popularity_cut = float(np.quantile(popularity, 0.99)) if popularity.size else 0.0
    pop_rank_cut = popularity_cut

    out: list[list[str]] = []
    for j in np.asarray(item_idx).ravel():
        j = int(j)
        if j < 0:
            out.append([])
            continue
        reasons: list[str] = []
        if social is not None and social[j] > 0:
            n = int(social[j])
            reasons.append(f"{n} {'person' if n == 1 else 'people'} you follow interacted with this")
        if history.size:
            sims = _item_similarity(model, history, j)
            if sims is not None and sims.size and np.nanmax(sims) > 0:
                best = int(history[int(np.nanargmax(sims))])
                reasons.append(f"similar to {item_label(snapshot, best)}, which you interacted with")
        cat = int(snapshot.item_category[j]) if snapshot.item_category.size else -1
        if cat >= 0 and cat in fav_cats:
            reasons.append(f"in {snapshot.categories[cat]}, one of your most frequent categories")
        if popularity[j] >= pop_rank_cut and popularity[j] > 0:
            reasons.append(f"popular: {int(popularity[j])} users interacted with it")
        if not reasons:
            reasons.append(f"recommended by the {model.name} model from your interaction history")
        out.append(reasons[:max_reasons])
    return out
