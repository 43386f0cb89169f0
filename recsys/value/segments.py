"""Segments: communities of the follow graph (Leiden), their profiles, and the rule for the rest.

Communities: the follow graph made undirected (a mutual follow is one edge of weight 2, a one-way
follow weight 1), partitioned by Leiden (V. A. Traag, L. Waltman, N. J. van Eck, "From Louvain to
Leiden: guaranteeing well-connected communities", Sci. Rep. 9, 2019; ``leidenalg``) maximising
modularity (Newman 2006), best of ``n_starts`` seeded runs. The modularity of the partition is
reported.

Rule for users outside a usable community — users with no follow edge at all (neither following
nor followed) and members of communities smaller than ``min_size`` (a pair of friends is not a
market segment): each is attached to the community whose members' activity is most concentrated
on the items the user interacted with, score(C) = sum over the user's items i of
(interactions of C's members with i) / (all interactions of C's members); ties go to the larger
community. A user who shares no item with any community member (or has no interactions) goes to
the segment ``"unconnected"``. So every user gets exactly one segment; ``assignment`` records
which rule placed them (``graph``, ``attached``, ``unconnected``).

Segment ids are ``"C01"``, ``"C02"``, ... by decreasing size after attachment.
"""

from __future__ import annotations

from dataclasses import dataclass

import igraph as ig
import leidenalg
import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.snapshot import Snapshot

UNCONNECTED = "unconnected"


@dataclass(frozen=True)
class Communities:
    """Segment membership of every user.

    Attributes:
        segment_id: (n_users,) object array of segment ids.
        assignment: (n_users,) object array: ``graph``, ``attached`` or ``unconnected``.
        modularity_leiden: modularity of the Leiden partition of the follow graph.
        modularity: modularity of the final segments on the same weighted graph (after
            attachment; unconnected users count as singletons) — the figure reported.
        modularity_unweighted: the same partition's modularity with every edge weight 1.
        n_communities_leiden: communities Leiden found (including tiny ones).
    """

    segment_id: np.ndarray
    assignment: np.ndarray
    modularity_leiden: float
    modularity: float
    modularity_unweighted: float
    n_communities_leiden: int


def undirected_follow_graph(follows: sp.csr_matrix) -> ig.Graph:
    """The follow graph as an undirected weighted igraph (mutual follow = weight 2), no self loops."""
    n = follows.shape[0]
    sym = sp.csr_matrix(follows, dtype=np.float64)
    sym.data[:] = 1.0
    sym = (sym + sym.T).tocoo()
    keep = sym.row < sym.col
    graph = ig.Graph(n=n, edges=list(zip(sym.row[keep].tolist(), sym.col[keep].tolist())), directed=False)
    graph.es["weight"] = sym.data[keep].tolist()
    return graph


def follow_communities(
    snapshot: Snapshot,
    min_size: int = 20,
    seed: int = 0,
    resolution: float = 1.0,
    n_starts: int = 4,
) -> Communities:
    """Leiden communities of the follow graph plus the attachment rule (module docstring).

    Args:
        snapshot: the snapshot (``follows``; ``interactions`` for the attachment rule).
        min_size: communities smaller than this are dissolved and their members attached.
        seed: Leiden's random seed; runs use seeds ``seed .. seed + n_starts - 1`` (results are
            deterministic for a seed and a node order).
        resolution: RB-configuration resolution; 1.0 = plain modularity.
        n_starts: Leiden runs (2 iterations each); the partition of highest quality is kept.
    Returns:
        :class:`Communities`.
    Raises:
        ValueError: min_size < 1 or n_starts < 1.
    """
    if min_size < 1 or n_starts < 1:
        raise ValueError(f"min_size and n_starts must be >= 1, got {min_size}, {n_starts}")
    n = snapshot.n_users
    graph = undirected_follow_graph(snapshot.follows)
    if graph.ecount():
        # Leiden's local optimum depends on the seed (and the node order): keep the best of
        # n_starts runs (measured on ciao: modularity 0.517-0.535 over single seeds).
        part = None
        for start in range(n_starts):
            if resolution == 1.0:
                cand = leidenalg.find_partition(graph, leidenalg.ModularityVertexPartition, weights="weight",
                                                n_iterations=2, seed=seed + start)
            else:
                cand = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                                n_iterations=2, seed=seed + start, resolution_parameter=resolution)
            if part is None or cand.quality() > part.quality():
                part = cand
        membership = np.asarray(part.membership, dtype=np.int64)
        # leidenalg's ``part.modularity`` ignores weights; igraph's weighted modularity is the objective.
        q_leiden = float(graph.modularity(membership.tolist(), weights="weight"))
    else:
        membership = np.arange(n, dtype=np.int64)
        q_leiden = 0.0
    n_leiden = int(membership.max() + 1) if n else 0
    degree = np.asarray(graph.degree(), dtype=np.int64) if n else np.zeros(0, np.int64)
    sizes = np.bincount(membership, minlength=n_leiden)
    big = (sizes >= min_size) & (np.bincount(membership, weights=(degree > 0), minlength=n_leiden) > 0)
    comm = np.where(big[membership], membership, -1)
    assignment = np.where(comm >= 0, "graph", "").astype(object)

    # Attachment by item co-activity (binary interactions).
    todo = np.flatnonzero(comm < 0)
    kept = np.flatnonzero(big)
    if todo.size and kept.size:
        remap = -np.ones(n_leiden, dtype=np.int64)
        remap[kept] = np.arange(kept.size)
        member = comm >= 0
        inter = snapshot.interactions.tocsr().astype(bool).astype(np.float64)
        onehot = sp.csr_matrix((np.ones(member.sum()), (np.flatnonzero(member), remap[comm[member]])),
                               shape=(n, kept.size))
        item_by_comm = (inter.T @ onehot).tocsr()  # (n_items, n_kept): member interactions per item
        comm_total = np.asarray(item_by_comm.sum(axis=0)).ravel()
        scores = (inter[todo] @ item_by_comm).toarray() / np.maximum(comm_total, 1.0)
        best = np.argmax(scores + 1e-12 * sizes[kept] / max(n, 1), axis=1)  # tie -> larger community
        has = scores.max(axis=1) > 0 if scores.size else np.zeros(todo.size, bool)
        comm[todo[has]] = kept[best[has]]
        assignment[todo[has]] = "attached"
    assignment[comm < 0] = "unconnected"

    labels = np.full(n, UNCONNECTED, dtype=object)
    final_sizes = pd.Series(comm[comm >= 0]).value_counts()
    order = sorted(final_sizes.index, key=lambda c: (-final_sizes[c], c))
    width = max(2, len(str(len(order))))
    names = {c: f"C{i + 1:0{width}d}" for i, c in enumerate(order)}
    labels[comm >= 0] = [names[c] for c in comm[comm >= 0]]
    if graph.ecount():
        final = comm.copy()
        iso = final < 0
        final[iso] = n_leiden + np.arange(iso.sum())  # unconnected users as singletons
        q_final = float(graph.modularity(final.tolist(), weights="weight"))
        q_unweighted = float(graph.modularity(final.tolist()))
    else:
        q_final = q_unweighted = 0.0
    return Communities(segment_id=labels, assignment=assignment, modularity_leiden=q_leiden,
                       modularity=q_final, modularity_unweighted=q_unweighted, n_communities_leiden=n_leiden)


#: Suggested-action thresholds (:func:`suggest_action`).
ACTIVE_SHARE_RETAIN = 0.20
IGNORE_VALUE_SHARE = 0.01
WIN_BACK_MAX_MEDIAN_WEEKS = 104.0


def suggest_action(size_share: float, value_share: float, historical_share: float, active_13w: float,
                   median_recency_weeks: float | None = None) -> tuple[str, str]:
    """A rule-based next step for a segment, with the reason in words.

    Rules, first match wins (shares are of all users / all value; "value" = expected CLV):

    1. ``retain``: >= 20 % of members active in the last 13 weeks and a share of value >= the
       share of users (valuable and still buying: keep them).
    2. ``win back``: < 20 % active in the last 13 weeks, a share of *past* value >= the share of
       users, and the median member last seen at most 104 weeks ago (it used to be valuable and
       went quiet recently enough to come back).
    3. ``ignore``: < 1 % of value, or median member last seen over 104 weeks ago with a share of
       value below the share of users (long lapsed, below-average value).
    4. ``nurture``: everything else (active or recent, but below-average value).

    Args:
        size_share, value_share, historical_share, active_13w: fractions in [0, 1].
        median_recency_weeks: median weeks since the members' last occasion (None = unknown,
            treated as recent).
    Returns:
        ``(action, reason)``.
    """
    rec = float("nan") if median_recency_weeks is None else float(median_recency_weeks)
    lapsed = bool(np.isfinite(rec) and rec > WIN_BACK_MAX_MEDIAN_WEEKS)
    figures = (f"{active_13w:.0%} active in the last 13 weeks, {value_share:.1%} of expected value, "
               f"{historical_share:.1%} of past value, {size_share:.1%} of users"
               + (f", median {rec:.0f} weeks since last" if np.isfinite(rec) else ""))
    if active_13w >= ACTIVE_SHARE_RETAIN and value_share >= size_share:
        return "retain", f"valuable and still active ({figures})"
    if active_13w < ACTIVE_SHARE_RETAIN and historical_share >= size_share and not lapsed:
        return "win back", f"was valuable, quiet for less than two years ({figures})"
    if value_share < IGNORE_VALUE_SHARE or (lapsed and value_share < size_share):
        return "ignore", f"little expected value or lapsed for years ({figures})"
    return "nurture", f"recent but below-average value per member ({figures})"


def profile_segments(
    users: pd.DataFrame,
    snapshot: Snapshot,
    top: int = 3,
    churn_threshold: float = 0.5,
    influencers: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per segment: what a marketer needs to act on it.

    Args:
        users: per-user frame in snapshot row order with ``user_id``, ``segment_id``, ``clv``,
            ``influence``, ``churn_risk``, ``rfm_segment`` and ``assignment``; optional
            ``frequency``/``recency``/``T`` (weeks; NaN without a transaction) for activity and
            recency, and ``historical_value`` (value up to the observation end).
        snapshot: for the members' interactions per category.
        top: how many categories / influencers / RFM segments to list.
        churn_threshold: a user is at churn risk when ``churn_risk >= churn_threshold``.
        influencers: optional (n_users,) bool mask of users whose influence passed the
            influence tests (:mod:`recsys.value.influence`); None = influence not detected, and
            ``detected_influencers`` stays empty.
    Returns:
        Frame sorted by segment id with ``segment_id``, ``size``, ``share_of_users``,
        ``total_value``, ``mean_value``, ``share_of_value`` (of the total CLV),
        ``share_of_historical_value``, ``share_active_13w`` (members with an occasion in the last
        13 weeks), ``median_recency_weeks`` (weeks since the last occasion, members with one; None
        if none), ``churn_risk_share`` (of members with a transaction history),
        ``top_categories`` (list of ``{"category", "share"}``), ``top_influencers`` (list of
        ``{"user_id", "influence"}``, influence > 0), ``detected_influencers`` (count) and
        ``detected_influencer_ids`` (up to ``top`` ids, by influence), ``rfm_mix`` (list of
        ``{"rfm_segment", "share"}``), ``members_by_rule`` (dict), ``suggested_action`` and
        ``action_reason`` (:func:`suggest_action`).
    """
    inter = snapshot.interactions.tocsr()
    n_cat = len(snapshot.categories)
    cat_counts = None
    if n_cat:
        cats = snapshot.item_category
        valid = cats >= 0
        item_to_cat = sp.csr_matrix((np.ones(valid.sum()), (np.flatnonzero(valid), cats[valid])),
                                    shape=(snapshot.n_items, n_cat))
        cat_counts = (inter.astype(bool).astype(np.float64) @ item_to_cat).tocsr()
    n = max(len(users), 1)
    total_clv = float(users["clv"].sum())
    hist = users["historical_value"] if "historical_value" in users else pd.Series(0.0, index=users.index)
    hist = hist.fillna(0.0)
    total_hist = float(hist.sum())
    if {"T", "recency"} <= set(users.columns):
        since_last = (users["T"] - users["recency"]).to_numpy(np.float64)
    else:
        since_last = np.full(len(users), np.nan)
    detected = np.zeros(len(users), dtype=bool) if influencers is None else np.asarray(influencers, dtype=bool)
    rows = []
    for seg, idx in users.groupby("segment_id", sort=True).indices.items():
        members = users.iloc[idx]
        top_categories: list = []
        if cat_counts is not None:
            per_cat = np.asarray(cat_counts[idx].sum(axis=0)).ravel()
            total = per_cat.sum()
            if total > 0:
                for c in np.argsort(-per_cat, kind="stable")[:top]:
                    if per_cat[c] > 0:
                        top_categories.append({"category": str(snapshot.categories[c]),
                                               "share": float(per_cat[c] / total)})
        infl = members.sort_values(["influence", "user_id"], ascending=[False, True]).head(top)
        top_influencers = [{"user_id": str(u), "influence": float(v)}
                           for u, v in zip(infl["user_id"], infl["influence"]) if v > 0]
        det = members[detected[idx]].sort_values(["influence", "user_id"], ascending=[False, True])
        risk = members["churn_risk"].dropna()
        rfm = members["rfm_segment"].value_counts(normalize=True).head(top)
        sl = since_last[idx]
        sl = sl[np.isfinite(sl)]
        size_share = len(members) / n
        value_share = float(members["clv"].sum()) / total_clv if total_clv > 0 else 0.0
        hist_share = float(hist.iloc[idx].sum()) / total_hist if total_hist > 0 else 0.0
        active = float((sl <= 13.0).sum()) / len(members)
        action, reason = suggest_action(size_share, value_share, hist_share, active,
                                        float(np.median(sl)) if sl.size else None)
        rows.append({
            "segment_id": seg,
            "size": int(len(members)),
            "share_of_users": float(size_share),
            "total_value": float(members["clv"].sum()),
            "mean_value": float(members["clv"].mean()),
            "share_of_value": value_share,
            "share_of_historical_value": hist_share,
            "share_active_13w": active,
            "median_recency_weeks": float(np.median(sl)) if sl.size else None,
            "churn_risk_share": float((risk >= churn_threshold).mean()) if len(risk) else None,
            "top_categories": top_categories,
            "top_influencers": top_influencers,
            "detected_influencers": int(len(det)),
            "detected_influencer_ids": [str(u) for u in det["user_id"].head(top)],
            "rfm_mix": [{"rfm_segment": str(k), "share": float(v)} for k, v in rfm.items()],
            "members_by_rule": {str(k): int(v) for k, v in members["assignment"].value_counts().items()},
            "suggested_action": action,
            "action_reason": reason,
        })
    return pd.DataFrame(rows)
