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


def _item_similarity(model: Recommender, history: np.ndarray, item_idx) -> np.ndarray | None:
    """Similarity of each item of ``item_idx`` to each item of ``history``, or None if the model has none.

    Args:
        model: the ranking model (``similarity_`` (n_items, n_items) sparse, or item embeddings).
        history: (m,) int item indices the user interacted with.
        item_idx: int or (k,) int item indices.
    Returns:
        (m, k) float array — cosine of the item embeddings, or the model's own similarity
        (for an int ``item_idx``: (m,)). One matrix product per request, not one per item.
    """
    items = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
    sim = getattr(model, "similarity_", None)
    if sim is not None:
        out = np.asarray(sim[history][:, items].todense(), dtype=np.float64)
    else:
        emb = model.item_embeddings()
        if emb is None:
            return None
        hist, target = emb[history], emb[items]
        denom = np.linalg.norm(hist, axis=1)[:, None] * np.maximum(np.linalg.norm(target, axis=1), 1e-12)[None, :]
        out = (hist @ target.T) / np.maximum(denom, 1e-12)
    return out[:, 0] if np.ndim(item_idx) == 0 else out


def _followee_counts(interactions, followees: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(k,) int: how many of ``followees`` interacted (value > 0) with each of ``items``.

    Gathers only the followees' CSR rows (O(their interactions)), instead of a dense
    (n_items,) column sum per request.
    """
    indptr = interactions.indptr
    followees = np.asarray(followees, dtype=np.int64)
    starts, lens = indptr[followees], indptr[followees + 1] - indptr[followees]
    total = int(lens.sum())
    if total == 0:
        return np.zeros(len(items), dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
    cols = interactions.indices[offsets][interactions.data[offsets] > 0]
    cols.sort()
    items = np.asarray(items, dtype=cols.dtype)
    return np.searchsorted(cols, items, "right") - np.searchsorted(cols, items, "left")


def _row(m, i: int) -> np.ndarray:
    """Column indices of row ``i`` of a CSR matrix (a view; no sparse slicing)."""
    return m.indices[m.indptr[i]: m.indptr[i + 1]]


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
        followees = _row(snapshot.follows, user_idx) if user_idx is not None else np.array([], dtype=np.int64)
    history = _row(inter, user_idx) if user_idx is not None else np.array([], dtype=np.int64)
    item_idx = np.asarray(item_idx).ravel()
    valid = item_idx[item_idx >= 0]
    fav_cats: set[int] = set()
    if history.size:
        cats = snapshot.item_category[history]
        cats = cats[cats >= 0]
        if cats.size:
            values, counts = np.unique(cats, return_counts=True)
            fav_cats = set(values[np.argsort(-counts)[:2]].tolist())
    social = {}
    if followees.size and valid.size:
        social = dict(zip(valid.tolist(), _followee_counts(inter, followees, valid).tolist()))
    best_similar = {}
    if history.size and valid.size:
        sims = _item_similarity(model, history, valid)
        if sims is not None and sims.size:
            sims = np.where(np.isnan(sims), -np.inf, sims)
            pos, top = np.argmax(sims, axis=0), np.max(sims, axis=0)
            best_similar = {j: int(history[p]) for j, p, t in zip(valid.tolist(), pos.tolist(), top.tolist()) if t > 0}
    if popularity is None:
        popularity = np.diff(inter.tocsc().indptr)
    if popularity_cut is None:
        popularity_cut = float(np.quantile(popularity, 0.99)) if popularity.size else 0.0
    pop_rank_cut = popularity_cut

    out: list[list[str]] = []
    for j in item_idx.tolist():
        if j < 0:
            out.append([])
            continue
        reasons: list[str] = []
        if social.get(j, 0) > 0:
            n = int(social[j])
            reasons.append(f"{n} {'person' if n == 1 else 'people'} you follow interacted with this")
        if j in best_similar:
            reasons.append(f"similar to {item_label(snapshot, best_similar[j])}, which you interacted with")
        cat = int(snapshot.item_category[j]) if snapshot.item_category.size else -1
        if cat >= 0 and cat in fav_cats:
            reasons.append(f"in {snapshot.categories[cat]}, one of your most frequent categories")
        if popularity[j] >= pop_rank_cut and popularity[j] > 0:
            reasons.append(f"popular: {int(popularity[j])} users interacted with it")
        if not reasons:
            reasons.append(f"recommended by the {model.name} model from your interaction history")
        out.append(reasons[:max_reasons])
    return out
