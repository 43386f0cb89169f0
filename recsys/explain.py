"""Human-readable reasons for a recommended item.

Reasons are computed from the graph, not invented: the user's followees who interacted with the
item (social proof), the item in the user's history most similar to it (the model's own item
similarity or embeddings; only at similarity >= ``REASON_MIN_SIMILARITY``, 0.2), and the user's
favourite categories. Reasons never contain user ids.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

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
        # float64: the product of a few rows is cheap, and its value no longer depends on the
        # shape of the product (see _best_similar's tie rule)
        hist, target = np.asarray(emb[history], np.float64), np.asarray(emb[items], np.float64)
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
    social = {}
    if followees.size and valid.size:
        social = dict(zip(valid.tolist(), _followee_counts(inter, followees, valid).tolist()))
    if popularity is None:
        popularity = np.diff(inter.tocsc().indptr)
    if popularity_cut is None:
        popularity_cut = float(np.quantile(popularity, 0.99)) if popularity.size else 0.0
    return compose_reasons(snapshot, model, item_idx, social, _best_similar(model, history, valid),
                           _favourite_categories(snapshot, history), popularity, popularity_cut, max_reasons)


def _favourite_categories(snapshot: Snapshot, history: np.ndarray) -> set[int]:
    """The user's (at most) two most frequent category indices among ``history`` items."""
    if not history.size:
        return set()
    cats = snapshot.item_category[history]
    cats = cats[cats >= 0]
    if not cats.size:
        return set()
    values, counts = np.unique(cats, return_counts=True)
    return set(values[np.argsort(-counts)[:2]].tolist())


#: Evidence a "similar to X, which you interacted with" reason needs: the model's similarity of
#: the two items (cosine of item embeddings, or an item-CF model's own cosine similarity) at
#: least this. Below it (e.g. 1e-7 between items that never co-occur) no such reason is shown.
REASON_MIN_SIMILARITY = 0.2


def _best_similar(model: Recommender, history: np.ndarray, items: np.ndarray) -> dict[int, int]:
    """item -> the history item most similar to it, for items whose best similarity is at least
    :data:`REASON_MIN_SIMILARITY`.

    Ties: similarities are compared at 6 decimals (items with identical vectors would otherwise
    be ordered by the last bit of a matrix product, which depends on its shape), and the first
    history item (lowest item index) wins — so the per-request and the precomputed
    (:func:`precompute_evidence`) answers agree.
    """
    if not (history.size and items.size):
        return {}
    sims = _item_similarity(model, history, items)
    if sims is None or not sims.size:
        return {}
    sims = np.round(np.where(np.isnan(sims), -np.inf, sims), 6)
    pos, top = np.argmax(sims, axis=0), np.max(sims, axis=0)
    return {j: int(history[p]) for j, p, t in zip(items.tolist(), pos.tolist(), top.tolist()) if t >= REASON_MIN_SIMILARITY}


def compose_reasons(snapshot: Snapshot, model: Recommender, item_idx: np.ndarray, social: dict[int, int],
                    best_similar: dict[int, int], fav_cats: set[int], popularity: np.ndarray, popularity_cut: float,
                    max_reasons: int = 2) -> list[list[str]]:
    """The reason strings from their evidence (the one place the wording and order live).

    Args:
        item_idx: (k,) item indices (-1 entries get no reasons).
        social: item -> followees who interacted with it.
        best_similar: item -> the most similar history item (similarity >= REASON_MIN_SIMILARITY).
        fav_cats: the user's favourite category indices.
        popularity, popularity_cut: (n_items,) interactions per item and the "popular" threshold.
    Returns:
        k lists of at most ``max_reasons`` strings.
    """
    out: list[list[str]] = []
    has_cats = bool(snapshot.item_category.size)
    for j in np.asarray(item_idx).ravel().tolist():
        if j < 0:
            out.append([])
            continue
        reasons: list[str] = []
        if social.get(j, 0) > 0:
            n = int(social[j])
            reasons.append(f"{n} {'person' if n == 1 else 'people'} you follow interacted with this")
        if j in best_similar:
            reasons.append(f"similar to {item_label(snapshot, best_similar[j])}, which you interacted with")
        cat = int(snapshot.item_category[j]) if has_cats else -1
        if cat >= 0 and cat in fav_cats:
            reasons.append(f"in {snapshot.categories[cat]}, one of your most frequent categories")
        pop = int(popularity[j])
        if pop >= popularity_cut and pop > 0:
            reasons.append(f"popular: {pop} users interacted with it")
        if not reasons:
            reasons.append(f"recommended by the {model.name} model from your interaction history")
        out.append(reasons[:max_reasons])
    return out


def precompute_evidence(snapshot: Snapshot, model: Recommender, candidates: np.ndarray,
                        users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reasons' evidence for every user's cached candidates, computed once per model version.

    What :func:`reasons_for` computes per request for a user of the snapshot (followees from
    ``snapshot.follows``), for all of ``candidates`` at once, with the same helpers, so the
    reasons built from it (:func:`reasons_from_evidence`) are identical.

    Args:
        candidates: (n, c) int item indices per user (-1 pad), from the candidate cache.
        users: (n,) the user index of each row (default: row i is user i, all users).
    Returns:
        ``(social (n_users, c) int32, similar (n_users, c) int32, favourite (n_users, 2) int32)``:
        followees who interacted with each candidate; the most similar history item (-1 none);
        the user's favourite category indices (-1 pad).
    """
    n_users, c = candidates.shape
    social = np.zeros((n_users, c), np.int32)
    similar = np.full((n_users, c), -1, np.int32)
    favourite = np.full((n_users, 2), -1, np.int32)
    inter = snapshot.interactions
    users = np.arange(n_users) if users is None else np.asarray(users)
    with threadpool_limits(1):  # thousands of tiny products: BLAS threads only contend
        _evidence_rows(snapshot, model, candidates, users, social, similar, favourite)
    return social, similar, favourite


def _evidence_rows(snapshot, model, candidates, users, social, similar, favourite) -> None:
    inter = snapshot.interactions
    for r, u in enumerate(users.tolist()):
        items = np.asarray(candidates[r])
        items = items[items >= 0]
        history = _row(inter, u)
        followees = _row(snapshot.follows, u)
        if followees.size and items.size:
            social[r, : items.size] = _followee_counts(inter, followees, items)
        best = _best_similar(model, history, items)
        if best:
            similar[r, : items.size] = [best.get(j, -1) for j in items.tolist()]
        fav = sorted(_favourite_categories(snapshot, history))
        favourite[r, : len(fav)] = fav


def reasons_from_evidence(snapshot: Snapshot, model: Recommender, item_idx: np.ndarray, positions: np.ndarray,
                          social_row: np.ndarray, similar_row: np.ndarray, favourite_row: np.ndarray,
                          popularity: np.ndarray, popularity_cut: float, max_reasons: int = 2) -> list[list[str]]:
    """:func:`reasons_for` from :func:`precompute_evidence` rows (no per-request NumPy work).

    Args:
        item_idx: (k,) recommended items; ``positions``: (k,) their places in the user's candidate row.
        social_row, similar_row: the user's (c,) rows; ``favourite_row``: (2,).
    """
    items = np.asarray(item_idx).ravel().tolist()
    pos = np.asarray(positions).ravel()
    social = dict(zip(items, np.asarray(social_row)[pos].tolist()))
    best = {j: b for j, b in zip(items, np.asarray(similar_row)[pos].tolist()) if b >= 0}
    fav = {f for f in np.asarray(favourite_row).tolist() if f >= 0}
    return compose_reasons(snapshot, model, item_idx, social, best, fav, popularity, popularity_cut, max_reasons)
