"""Social influence, measured from the data: structural (PageRank) and behavioural (Goyal et al.).

Direction convention: ``snapshot.follows[u, v] = 1`` when u follows v; influence flows the other
way, from v (the followee) to u (the follower). Every influence matrix here is indexed
``[v, u]`` = "v influences u".

Structural influence: PageRank of the follow graph (edges u -> v, so attention flows to the
followed), computed by igraph (PRPACK), damping 0.85; sums to 1 over users.

Behavioural influence, after A. Goyal, F. Bonchi, L. V. S. Lakshmanan, "Learning Influence
Probabilities in Social Networks", WSDM 2010. An action is a user's first interaction with an
item, at its timestamp (day resolution on ciao). For a follow edge (u follows v):

* ``A_v`` — actions of v;
* ``A_{v2u}`` — items u adopted strictly after v and within ``tau`` (0 < t_u - t_v <= tau);
  same-day pairs cannot be ordered at day resolution and are not counted;
* Bernoulli probability ``p(v, u) = A_{v2u} / A_v``; Jaccard ``A_{v2u} / A_{v|u}`` with
  ``A_{v|u} = A_v + A_u - (items both adopted)``.

Against the base rate: followers co-adopt with the people they follow for reasons other than
influence (similar taste, the same products being new at the same time, being active in the same
years). Two nulls are measured for every influencer v, summed over their followers u:

* ``B_v`` — the exact expectation of the propagations under a *within-item time permutation*:
  each co-adopted item's adoption dates are randomly reassigned among its adopters, keeping what
  was adopted, by whom and when the item was popular, and breaking who went first. For an item
  with date multiset D, a co-adopting pair propagates with probability
  ``#{(j, k) ordered, j != k : 0 < D_j - D_k <= tau} / (|D| (|D| - 1))``.
* ``R_v`` — the *edge-reversal* count (Anagnostopoulos, Kumar & Mahdian, KDD 2008): items v
  adopted within ``tau`` after a follower did. Without influence, "followee first" and
  "follower first" are exchangeable.

The null is ``N_v = max(B_v, R_v)``. v's *excess* propagations are
``E_v = max(0, P_v - N_v - z sqrt(P_v + N_v))`` with ``P_v = sum_u A_{v2u}`` and a one-sided
margin ``z`` (1.645: 5 % under a normal approximation of the count difference), so chance
fluctuations do not make influencers. The influence probability used for cascades is the
Bernoulli probability scaled by v's excess share: ``p_infl(v, u) = p(v, u) * E_v / P_v`` in
[0, 1], and the user's behavioural ``influence`` is ``sum_u p_infl(v, u) = E_v / A_v``: the
expected number of followers who adopt an item because v did, per action of v (unit:
followers per action).

Fallback without timestamps: adoption order is unknown, so nothing behavioural can be measured.
The weighted-cascade model of Kempe, Kleinberg & Tardos (KDD 2003) is used instead,
``p(v, u) = 1 / (number of users u follows)``: an *assumption*, flagged in ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import igraph as ig
import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot

DAY_SECONDS = 86400.0
_EXPAND_CHUNK = 4_000_000  # expanded (edge, followee action) rows held at once


def pagerank(follows: sp.csr_matrix, damping: float = 0.85) -> np.ndarray:
    """PageRank of the follow graph (edge u -> v when u follows v), by igraph.

    Args:
        follows: (n, n) CSR, [u, v] != 0 when u follows v.
        damping: damping factor in (0, 1).
    Returns:
        (n,) float64, non-negative, summing to 1 (dangling users spread their rank uniformly);
        uniform when there are no edges.
    Raises:
        ValueError: damping outside (0, 1) or a non-square matrix.
    """
    if not 0.0 < damping < 1.0:
        raise ValueError(f"damping must be in (0, 1), got {damping}")
    n = follows.shape[0]
    if follows.shape != (n, n):
        raise ValueError(f"follows must be square, got {follows.shape}")
    if n == 0:
        return np.zeros(0)
    coo = sp.coo_matrix(follows)
    mask = coo.row != coo.col
    graph = ig.Graph(n=n, edges=list(zip(coo.row[mask].tolist(), coo.col[mask].tolist())), directed=True)
    pr = np.asarray(graph.pagerank(damping=damping, directed=True), dtype=np.float64)
    return pr / pr.sum()


@dataclass(frozen=True)
class InfluenceGraph:
    """Influence probabilities on the follow edges, all indexed [v, u] = v influences u.

    Attributes:
        probabilities: (n, n) CSR float64 in [0, 1], the ``p_infl`` used for cascades and for the
            influence-weighted value (see the module docstring).
        bernoulli: (n, n) CSR, Goyal's ``A_{v2u} / A_v`` (empty in the fallback).
        jaccard: (n, n) CSR, Goyal's ``A_{v2u} / A_{v|u}`` (empty in the fallback).
        influence: (n,) float64 ``sum_u probabilities[v, u]`` (followers per action).
        actions: (n,) ``A_v``. propagations: (n,) ``P_v``. permutation_null: (n,) ``B_v``.
        reversed_propagations: (n,) ``R_v``. excess: (n,) ``E_v``.
        method: ``"goyal-bernoulli-excess"`` or ``"weighted-cascade-fallback"``.
        tau_days: the window.
        stats: totals (propagations, nulls, lift, users with significant influence).
    """

    probabilities: sp.csr_matrix
    bernoulli: sp.csr_matrix
    jaccard: sp.csr_matrix
    influence: np.ndarray
    actions: np.ndarray
    propagations: np.ndarray
    permutation_null: np.ndarray
    reversed_propagations: np.ndarray
    excess: np.ndarray
    method: str
    tau_days: float
    stats: dict = field(default_factory=dict)


def _actions(snapshot: Snapshot, until: float | None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Timestamped interactions (optionally ts <= until) as CSR of times and the per-user counts."""
    ts = snapshot.timestamps.tocsr()
    keep = np.isfinite(ts.data)
    if until is not None:
        keep &= ts.data <= until
    coo = ts.tocoo()
    times = sp.csr_matrix((coo.data[keep] + 1.0, (coo.row[keep], coo.col[keep])), shape=ts.shape)  # +1: keep t=0
    times.sort_indices()
    times.data -= 1.0
    return times, np.diff(times.indptr).astype(np.float64)


def _pair_null_probability(times: sp.csr_matrix, tau: float) -> np.ndarray:
    """Per item: P(a random ordered pair of its adopters has 0 < t_j - t_k <= tau) under permutation.

    Returns (n_items,) float64 (0 for items with fewer than two adopters).
    """
    csc = times.tocsc()
    n_items = csc.shape[1]
    item = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(csc.indptr))
    t = np.rint(csc.data).astype(np.int64)
    shift = np.int64(1) << 34  # > any Unix time in seconds before year 2514
    key = item * shift + t
    order = np.argsort(key, kind="stable")
    key = key[order]
    lo = np.searchsorted(key, key, side="right")
    hi = np.searchsorted(key, key + np.int64(round(tau)), side="right")
    pairs = np.bincount(item[order], weights=(hi - lo).astype(np.float64), minlength=n_items)
    n_i = np.diff(csc.indptr).astype(np.float64)
    denom = n_i * (n_i - 1.0)
    return np.divide(pairs, denom, out=np.zeros(n_items), where=denom > 0)


def learn_influence(
    snapshot: Snapshot,
    tau_days: float = 30.0,
    z_margin: float = 1.645,
    until: float | None = None,
) -> InfluenceGraph:
    """Learn influence probabilities on the follow edges (see the module docstring).

    Args:
        snapshot: the snapshot (``follows``, ``timestamps``).
        tau_days: propagation window in days, > 0.
        z_margin: one-sided margin (standard deviations) an influencer's propagations must exceed
            the null by; 0 keeps every excess.
        until: only actions with ts <= until (Unix seconds) are used (temporal features).
    Returns:
        An :class:`InfluenceGraph`; the weighted-cascade fallback when the snapshot has no
        timestamps.
    Raises:
        ValueError: tau_days <= 0 or z_margin < 0.
    """
    if tau_days <= 0 or z_margin < 0:
        raise ValueError("tau_days must be > 0 and z_margin >= 0")
    n = snapshot.n_users
    if not snapshot.has_timestamps:
        return weighted_cascade(snapshot.follows, tau_days)
    tau = tau_days * DAY_SECONDS
    times, n_actions = _actions(snapshot, until)
    pi_item = _pair_null_probability(times, tau)
    fol = sp.coo_matrix(snapshot.follows)
    mask = fol.row != fol.col
    fu, fv = fol.row[mask].astype(np.int64), fol.col[mask].astype(np.int64)
    n_edges = fu.shape[0]
    n_items = times.shape[1]
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(times.indptr)) * n_items + times.indices
    fwd = np.zeros(n_edges)
    rev = np.zeros(n_edges)
    null = np.zeros(n_edges)
    co = np.zeros(n_edges)
    rep_all = np.diff(times.indptr)[fv]
    start = 0
    while start < n_edges:  # expand followee actions per edge, in bounded chunks
        cum = np.cumsum(rep_all[start:])
        stop = start + max(1, int(np.searchsorted(cum, _EXPAND_CHUNK, side="right")))
        rep = rep_all[start:stop]
        e_loc = np.repeat(np.arange(start, stop), rep)
        within = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
        pos_v = np.repeat(times.indptr[fv[start:stop]], rep) + within
        k_u = fu[e_loc] * n_items + times.indices[pos_v]
        pos_u = np.minimum(np.searchsorted(keys, k_u), max(len(keys) - 1, 0))
        hit = keys[pos_u] == k_u if len(keys) else np.zeros(0, bool)
        e_hit, pos_v, pos_u = e_loc[hit], pos_v[hit], pos_u[hit]
        delta = times.data[pos_u] - times.data[pos_v]
        fwd += np.bincount(e_hit, weights=((delta > 0) & (delta <= tau)).astype(np.float64), minlength=n_edges)
        rev += np.bincount(e_hit, weights=((delta < 0) & (delta >= -tau)).astype(np.float64), minlength=n_edges)
        null += np.bincount(e_hit, weights=pi_item[times.indices[pos_v]], minlength=n_edges)
        co += np.bincount(e_hit, minlength=n_edges).astype(np.float64)
        start = stop

    a_v, a_u = n_actions[fv], n_actions[fu]
    bern = np.divide(fwd, a_v, out=np.zeros(n_edges), where=a_v > 0)
    union = a_v + a_u - co
    jacc = np.divide(fwd, union, out=np.zeros(n_edges), where=union > 0)
    P = np.bincount(fv, weights=fwd, minlength=n)
    R = np.bincount(fv, weights=rev, minlength=n)
    B = np.bincount(fv, weights=null, minlength=n)
    N = np.maximum(B, R)
    E = np.maximum(0.0, P - N - z_margin * np.sqrt(P + N))
    share = np.divide(E, P, out=np.zeros(n), where=P > 0)
    p_infl = np.clip(bern * share[fv], 0.0, 1.0)

    def mat(values: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix((values, (fv, fu)), shape=(n, n))
        m.eliminate_zeros()
        m.sort_indices()
        return m

    probs = mat(p_infl)
    influence = np.asarray(probs.sum(axis=1)).ravel()
    tot_p, tot_b, tot_r = float(P.sum()), float(B.sum()), float(R.sum())
    stats = {
        "tau_days": float(tau_days),
        "z_margin": float(z_margin),
        "follow_edges": int(n_edges),
        "co_adoptions_on_edges": int(co.sum()),
        "propagations": tot_p,
        "permutation_null": tot_b,
        "reversed_propagations": tot_r,
        "lift_vs_permutation": tot_p / tot_b if tot_b > 0 else None,
        "forward_to_reverse_ratio": tot_p / tot_r if tot_r > 0 else None,
        "excess_propagations": float(E.sum()),
        "influencers_with_excess": int((E > 0).sum()),
        "users_with_propagations": int((P > 0).sum()),
    }
    return InfluenceGraph(
        probabilities=probs, bernoulli=mat(bern), jaccard=mat(jacc), influence=influence,
        actions=n_actions, propagations=P, permutation_null=B, reversed_propagations=R, excess=E,
        method="goyal-bernoulli-excess", tau_days=float(tau_days), stats=stats,
    )


def weighted_cascade(follows: sp.csr_matrix, tau_days: float = float("nan")) -> InfluenceGraph:
    """The no-timestamp fallback: p(v, u) = 1 / (number of users u follows) (Kempe et al. 2003).

    Args:
        follows: (n, n) CSR, [u, v] = 1 when u follows v.
        tau_days: recorded only.
    Returns:
        An :class:`InfluenceGraph` with ``method="weighted-cascade-fallback"`` whose behavioural
        fields are zero.
    """
    n = follows.shape[0]
    fol = sp.coo_matrix(follows)
    mask = fol.row != fol.col
    fu, fv = fol.row[mask], fol.col[mask]
    out_deg = np.bincount(fu, minlength=n).astype(np.float64)
    probs = sp.csr_matrix((1.0 / out_deg[fu], (fv, fu)), shape=(n, n)) if fu.size else sp.csr_matrix((n, n))
    probs.sort_indices()
    zeros = np.zeros(n)
    empty = sp.csr_matrix((n, n))
    return InfluenceGraph(
        probabilities=probs, bernoulli=empty, jaccard=empty,
        influence=np.asarray(probs.sum(axis=1)).ravel(), actions=zeros, propagations=zeros,
        permutation_null=zeros, reversed_propagations=zeros, excess=zeros,
        method="weighted-cascade-fallback", tau_days=float(tau_days),
        stats={"follow_edges": int(fu.size), "note": "no timestamps: probabilities assumed, not measured"},
    )


def influence_weighted_value(graph: InfluenceGraph, clv: np.ndarray) -> np.ndarray:
    """weighted_value(v) = clv(v) + sum over followers u of p_infl(v, u) * clv(u).

    Unit: the CLV's unit (money, or interactions for datasets without prices) over the CLV
    horizon. The second term is the value v moves in others, one hop deep; a follower's value is
    credited to each of their influencers, so weighted values must not be summed across users.

    Args:
        graph: learned influence (``probabilities`` [v, u]).
        clv: (n,) own CLV.
    Returns:
        (n,) float64.
    """
    clv = np.asarray(clv, dtype=np.float64)
    return clv + graph.probabilities @ clv
