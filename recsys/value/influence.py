"""Social influence, measured from the data and tested before it is used.

* :func:`assess_influence` / :func:`apply_influence` — what weighs customer value and drives
  cascades: the timestamp-shuffle test and reverse-edge placebo (Anagnostopoulos, Kumar &
  Mahdian, KDD 2008), empirical-Bayes Beta-Binomial per-user influence, an out-of-time check,
  and the customer influence value (:func:`customer_influence_value`), used only when all pass
  (section "influence vs homophily" below; docs/customer-value.md).
* :func:`pagerank` — structural influence.
* :func:`learn_influence` — Goyal et al. probabilities, computed at every propensity cut as
  *features* of the high-value model; they no longer weigh value.

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


def _follow_edges(follows: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """(follower u, followee v) int64 arrays of the follow edges, self-loops dropped."""
    fol = sp.coo_matrix(follows)
    mask = fol.row != fol.col
    return fol.row[mask].astype(np.int64), fol.col[mask].astype(np.int64)


def _edge_pairs(times: sp.csr_matrix, fu: np.ndarray, fv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (follow edge, item both ends adopted): ``(edge, pos_v, pos_u)``.

    ``pos_v`` / ``pos_u`` index ``times.data`` (the followee's / follower's adoption of the item).
    Followee actions are expanded per edge in bounded chunks (``_EXPAND_CHUNK`` rows at once).
    """
    n_items = times.shape[1]
    n = times.shape[0]
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(times.indptr)) * n_items + times.indices
    rep_all = np.diff(times.indptr)[fv]
    out_e, out_v, out_u = [], [], []
    start, n_edges = 0, fu.shape[0]
    while start < n_edges:
        cum = np.cumsum(rep_all[start:])
        stop = start + max(1, int(np.searchsorted(cum, _EXPAND_CHUNK, side="right")))
        rep = rep_all[start:stop]
        e_loc = np.repeat(np.arange(start, stop), rep)
        within = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
        pos_v = np.repeat(times.indptr[fv[start:stop]], rep) + within
        k_u = fu[e_loc] * n_items + times.indices[pos_v]
        pos_u = np.minimum(np.searchsorted(keys, k_u), max(len(keys) - 1, 0))
        hit = keys[pos_u] == k_u if len(keys) else np.zeros(0, bool)
        out_e.append(e_loc[hit])
        out_v.append(pos_v[hit])
        out_u.append(pos_u[hit])
        start = stop
    if not out_e:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    return (np.concatenate(out_e).astype(np.int64), np.concatenate(out_v).astype(np.int64),
            np.concatenate(out_u).astype(np.int64))


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
    fu, fv = _follow_edges(snapshot.follows)
    n_edges = fu.shape[0]
    e_hit, pos_v, pos_u = _edge_pairs(times, fu, fv)
    delta = times.data[pos_u] - times.data[pos_v]
    fwd = np.bincount(e_hit, weights=((delta > 0) & (delta <= tau)).astype(np.float64), minlength=n_edges)
    rev = np.bincount(e_hit, weights=((delta < 0) & (delta >= -tau)).astype(np.float64), minlength=n_edges)
    null = np.bincount(e_hit, weights=pi_item[times.indices[pos_v]], minlength=n_edges)
    co = np.bincount(e_hit, minlength=n_edges).astype(np.float64)

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


# ============================================================================ influence vs homophily
# Everything below tests whether the follow graph carries *influence* (adoptions caused by a
# followee adopting first) rather than homophily (friends liking the same things), and only then
# lets influence weigh customer value. See docs/customer-value.md, "Influence: tested first".

MONTH_RESOLUTION_DAYS = 28.0  # distinct adoption dates never closer than this: month-resolution data
MONTH_START_SHARE = 0.95  # or this share of adoptions dated the 1st of a month (lastfm: 98 %)


@dataclass(frozen=True)
class AdoptionPairs:
    """The adoptions on follow edges that every influence test works on.

    An *adoption* is a user's first timestamped interaction with an item (``snapshot.timestamps``).
    A *pair* is a follow edge (u follows v) and an item both u and v adopted.

    Attributes:
        times: (n_users, n_items) CSR of adoption times (Unix seconds), indices sorted.
        edge_u, edge_v: (n_edges,) follower / followee of every follow edge (self-loops dropped).
        pair_edge, pair_v, pair_u: (n_pairs,) the edge and the positions in ``times.data`` of the
            followee's and the follower's adoption.
        tau: propagation window in seconds (see :func:`adoption_pairs` for month resolution).
        tau_days: the window asked for, in days. resolution_days: smallest gap between two
            distinct adoption dates (1 for daily data, >= 28 for monthly data such as lastfm).
        symmetric: every follow edge is reciprocated (the reverse-edge placebo is then void).
        until: adoptions after this (Unix seconds) were dropped; None = all.
    """

    times: sp.csr_matrix
    edge_u: np.ndarray
    edge_v: np.ndarray
    pair_edge: np.ndarray
    pair_v: np.ndarray
    pair_u: np.ndarray
    tau: float
    tau_days: float
    resolution_days: float
    symmetric: bool
    until: float | None = None

    @property
    def n_users(self) -> int:
        return self.times.shape[0]

    @property
    def followers(self) -> np.ndarray:
        """(n_users,) number of followers (in-edges) of every user."""
        return np.bincount(self.edge_v, minlength=self.n_users).astype(np.float64)

    @property
    def actions(self) -> np.ndarray:
        """(n_users,) number of adoptions of every user."""
        return np.diff(self.times.indptr).astype(np.float64)


def adoption_pairs(snapshot: Snapshot, tau_days: float = 30.0, until: float | None = None) -> AdoptionPairs:
    """Build the :class:`AdoptionPairs` of a snapshot.

    At month resolution (no two distinct adoption dates closer than 28 days, or >= 95 % of them
    on the 1st of a month, e.g. lastfm's tag dates: 98 % are) a follower adopting "in the next
    month" is 28-31 days later, so the window is widened to at least 31 days and
    ``resolution_days`` is reported as about 30.4; same-date pairs are never ordered.

    Args:
        snapshot: the snapshot; needs timestamps.
        tau_days: window in days, > 0.
        until: keep adoptions with ts <= until only.
    Raises:
        ValueError: tau_days <= 0, or the snapshot has no timestamps.
    """
    if tau_days <= 0:
        raise ValueError("tau_days must be > 0")
    if not snapshot.has_timestamps:
        raise ValueError("the snapshot has no timestamps: adoption order is unknown")
    times, _ = _actions(snapshot, until)
    fu, fv = _follow_edges(snapshot.follows)
    e, pv, pu = _edge_pairs(times, fu, fv)
    distinct = np.unique(times.data)
    resolution = float(np.diff(distinct).min() / DAY_SECONDS) if distinct.size > 1 else 1.0
    if times.data.size:
        days = np.floor(times.data / DAY_SECONDS).astype(np.int64).astype("datetime64[D]")
        month_start_share = float(np.mean(days == days.astype("datetime64[M]").astype("datetime64[D]")))
        if month_start_share >= MONTH_START_SHARE:  # dated to the month (a few stray days aside)
            resolution = max(resolution, 365.25 / 12.0)
    tau = tau_days * DAY_SECONDS
    if resolution >= MONTH_RESOLUTION_DAYS:
        tau = max(tau, 31.0 * DAY_SECONDS)
    fol = sp.csr_matrix((np.ones(fu.size), (fu, fv)), shape=snapshot.follows.shape)
    symmetric = bool(fu.size) and (fol != fol.T).nnz == 0
    return AdoptionPairs(times=times, edge_u=fu, edge_v=fv, pair_edge=e, pair_v=pv, pair_u=pu, tau=float(tau),
                         tau_days=float(tau_days), resolution_days=resolution, symmetric=symmetric, until=until)


def _direction_counts(pairs: AdoptionPairs, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_pairs,) masks: follower adopted within tau after the followee / the reverse."""
    delta = t[pairs.pair_u] - t[pairs.pair_v]
    return (delta > 0) & (delta <= pairs.tau), (delta < 0) & (delta >= -pairs.tau)


def _summary(values: np.ndarray, seed: int) -> dict:
    q = np.quantile(values, [0.01, 0.05, 0.5, 0.95, 0.99])
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "quantiles": {"q01": float(q[0]), "q05": float(q[1]), "q50": float(q[2]), "q95": float(q[3]),
                          "q99": float(q[4])},
            "n": int(values.size), "seed": int(seed)}


def _p_upper(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value P(null >= observed), with the +1 correction (never 0)."""
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))


def shuffle_test(pairs: AdoptionPairs, n_shuffles: int = 200, seed: int = 0, progress: bool = False) -> dict:
    """The timestamp-shuffle test and, on directed graphs, the reverse-edge placebo.

    Source: A. Anagnostopoulos, R. Kumar, M. Mahdian, "Influence and Correlation in Social
    Networks", KDD 2008, section 4 (shuffle test; edge-reversal test). Under homophily alone the
    *set* of adopters of an item carries the correlation and *who adopted first* does not, so
    permuting each item's adoption dates among its adopters (keeping who adopted what and when
    the item was adopted) leaves the statistic's distribution unchanged; influence makes the
    observed statistic exceed that null.

    * statistic ``S`` = number of (follow edge u->v, item) with the follower adopting within
      ``tau`` after the followee (``0 < t_u - t_v <= tau``);
    * null: ``S`` on ``n_shuffles`` within-item permutations of the adoption dates (seeded);
      p-value ``(1 + #{S_null >= S}) / (1 + n_shuffles)``;
    * reverse-edge placebo (directed graphs only): ``S_rev`` counts the *follower-first* pairs
      (the statistic on the reversed graph); the placebo statistic ``D = S - S_rev`` has the
      same shuffles as its null (centred at 0: the shuffle makes both orders exchangeable). On a
      symmetric graph ``D = 0`` identically and the placebo is reported as not applicable.

    Limitation (stated in the report): co-activity (friends active in the same weeks) also
    raises ``S`` above the shuffle null, so the shuffle test alone can reject without influence;
    that is why detection also needs the placebo and the out-of-time check.

    Args:
        pairs: :func:`adoption_pairs`.
        n_shuffles: number of permutations (>= 1; >= 200 for a reported p-value).
        seed: RNG seed.
        progress: show a tqdm bar.
    Returns:
        ``{"statistic", "reversed_statistic", "p_value", "lift" (S / null mean), "z",
        "null" (mean, sd, quantiles, n, seed), "reverse_placebo" (dict or None),
        "pairs", "tau_days", "resolution_days", "symmetric"}``. The per-user null expectation is
        exact, :func:`exact_shuffle_null`.
    Raises:
        ValueError: n_shuffles < 1.
    """
    if n_shuffles < 1:
        raise ValueError("n_shuffles must be >= 1")
    from tqdm.auto import tqdm

    times = pairs.times
    t_all = times.data.astype(np.float64)
    fwd, rev = _direction_counts(pairs, t_all)
    s_obs, r_obs = float(fwd.sum()), float(rev.sum())
    # only the items some follow edge co-adopted matter; their events are permuted within item
    items_in = np.unique(times.indices[pairs.pair_v])
    events = np.flatnonzero(np.isin(times.indices, items_in))
    local = np.full(t_all.size, -1, dtype=np.int64)
    local[events] = np.arange(events.size)
    pv, pu = local[pairs.pair_v], local[pairs.pair_u]
    t = t_all[events]
    item = times.indices[events].astype(np.float64)
    by_item = np.argsort(item, kind="stable")
    rng = np.random.default_rng(seed)
    null_s = np.zeros(n_shuffles)
    null_d = np.zeros(n_shuffles)
    shuffled = np.empty_like(t)
    for k in tqdm(range(n_shuffles), desc="shuffle test", unit="shuffle", disable=not progress):
        order = np.argsort(item + rng.random(t.size))  # by item, random within item
        shuffled[by_item] = t[order]
        delta = shuffled[pu] - shuffled[pv]
        f = np.count_nonzero((delta > 0) & (delta <= pairs.tau))
        r = np.count_nonzero((delta < 0) & (delta >= -pairs.tau))
        null_s[k] = f
        null_d[k] = f - r
    summ = _summary(null_s, seed)
    placebo = None
    if not pairs.symmetric:
        d_obs = s_obs - r_obs
        placebo = {"forward": s_obs, "reversed": r_obs, "statistic": d_obs, "p_value": _p_upper(d_obs, null_d),
                   "null": _summary(null_d, seed),
                   "forward_to_reverse_ratio": s_obs / r_obs if r_obs > 0 else None}
    return {
        "statistic": s_obs, "reversed_statistic": r_obs, "p_value": _p_upper(s_obs, null_s),
        "lift": s_obs / summ["mean"] if summ["mean"] > 0 else None,
        "z": (s_obs - summ["mean"]) / summ["sd"] if summ["sd"] > 0 else None,
        "null": summ, "reverse_placebo": placebo, "pairs": int(pairs.pair_edge.size),
        "tau_days": pairs.tau / DAY_SECONDS, "resolution_days": pairs.resolution_days, "symmetric": pairs.symmetric,
    }


def exact_shuffle_null(pairs: AdoptionPairs) -> np.ndarray:
    """(n_users,) expected forward count of every followee under the within-item shuffle, exactly.

    Each co-adopting pair on item i is "follower within tau after followee" with probability
    ``#{ordered (j, k), j != k : 0 < D_j - D_k <= tau} / (|D| (|D| - 1))`` over i's date multiset D.
    """
    pi = _pair_null_probability(pairs.times, pairs.tau)
    w = pi[pairs.times.indices[pairs.pair_v]]
    return np.bincount(pairs.edge_v[pairs.pair_edge], weights=w, minlength=pairs.n_users)


@dataclass(frozen=True)
class ShrunkInfluence:
    """Per-user influence with empirical-Bayes shrinkage (all arrays (n_users,)).

    An *exposure* is (followee v adopts item i, follower u of v has not adopted i by then); a
    *success* is u adopting i within tau after v. ``exposures = followers(v) * actions(v) -
    #{pairs with t_u <= t_v}``.

    Attributes:
        exposures, successes: counts. null_successes: expected successes under the shuffle.
        rate, rate_low, rate_high: posterior mean and central interval of the per-exposure
            adoption probability, Beta(alpha + k, beta + n - k).
        null_rate: null_successes / exposures (what homophily and item timing alone give).
        influence, influence_low, influence_high: excess followers adopting per action of v,
            ``max(0, rate - null_rate) * exposures / actions`` (unit: followers per action).
        excess_rate: ``max(0, rate - null_rate)``, the per-exposure probability used on v's edges.
        significant: ``rate_low > null_rate``.
        alpha, beta: the fitted Beta prior. level: interval level.
    """

    exposures: np.ndarray
    successes: np.ndarray
    null_successes: np.ndarray
    rate: np.ndarray
    rate_low: np.ndarray
    rate_high: np.ndarray
    null_rate: np.ndarray
    excess_rate: np.ndarray
    influence: np.ndarray
    influence_low: np.ndarray
    influence_high: np.ndarray
    significant: np.ndarray
    alpha: float
    beta: float
    level: float


def fit_beta_binomial(k: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Maximum marginal likelihood (alpha, beta) of a Beta-Binomial over groups with n > 0.

    Empirical Bayes (e.g. Efron & Morris 1975; the Beta-Binomial marginal of Skellam 1948).
    Starts from the method of moments and maximises ``sum log BetaBinom(k | n, alpha, beta)``
    over log-parameters (scipy L-BFGS-B). Returns (1, 1) when there is nothing to fit.
    """
    from scipy.optimize import minimize
    from scipy.special import betaln

    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    keep = n > 0
    k, n = k[keep], n[keep]
    if k.size == 0 or k.sum() == 0:
        return (1.0, 1.0) if k.size == 0 else (1.0, max(1.0, float(n.sum())))
    m = max(k.sum() / n.sum(), 1e-9)
    start = np.log([m * 10.0, (1 - m) * 10.0])

    def nll(theta):
        a, b = np.exp(theta)
        return -float(np.sum(betaln(k + a, n - k + b) - betaln(a, b)))

    res = minimize(nll, start, method="L-BFGS-B", bounds=[(-12, 12), (-12, 20)])
    a, b = np.exp(res.x)
    return float(a), float(b)


def shrink_influence(pairs: AdoptionPairs, null_successes: np.ndarray | None = None,
                     level: float = 0.95) -> ShrunkInfluence:
    """Empirical-Bayes Beta-Binomial influence per user (see :class:`ShrunkInfluence`).

    Args:
        pairs: :func:`adoption_pairs`.
        null_successes: (n_users,) expected successes under the null; default
            :func:`exact_shuffle_null`.
        level: central posterior interval level in (0, 1).
    """
    from scipy.stats import beta as beta_dist

    n = pairs.n_users
    t = pairs.times.data
    fwd, _ = _direction_counts(pairs, t)
    v = pairs.edge_v[pairs.pair_edge]
    before = t[pairs.pair_u] <= t[pairs.pair_v]
    k = np.bincount(v, weights=fwd.astype(np.float64), minlength=n)
    expo = pairs.followers * pairs.actions - np.bincount(v, weights=before.astype(np.float64), minlength=n)
    expo = np.maximum(expo, 0.0)
    e = exact_shuffle_null(pairs) if null_successes is None else np.asarray(null_successes, dtype=np.float64)
    a, b = fit_beta_binomial(k, expo)
    post_a, post_b = a + k, b + expo - k
    rate = post_a / (post_a + post_b)
    lo = beta_dist.ppf((1 - level) / 2, post_a, post_b)
    hi = beta_dist.ppf(1 - (1 - level) / 2, post_a, post_b)
    null_rate = np.divide(e, expo, out=np.zeros(n), where=expo > 0)
    has = expo > 0
    per_action = np.divide(expo, pairs.actions, out=np.zeros(n), where=pairs.actions > 0)
    excess = np.where(has, np.maximum(0.0, rate - null_rate), 0.0)
    return ShrunkInfluence(
        exposures=expo, successes=k, null_successes=e, rate=np.where(has, rate, np.nan),
        rate_low=np.where(has, lo, np.nan), rate_high=np.where(has, hi, np.nan), null_rate=null_rate,
        excess_rate=excess, influence=excess * per_action,
        influence_low=np.where(has, np.maximum(0.0, lo - null_rate), 0.0) * per_action,
        influence_high=np.where(has, np.maximum(0.0, hi - null_rate), 0.0) * per_action,
        significant=has & (lo > null_rate), alpha=a, beta=b, level=float(level),
    )


def out_of_time_validation(snapshot: Snapshot, tau_days: float = 30.0, cut: float | None = None,
                           cut_quantile: float = 0.75, top_fraction: float = 0.1, n_boot: int = 1000,
                           level: float = 0.95, seed: int = 0) -> dict:
    """Does influence learned before a cut predict follower adoption after it?

    1. Learn :func:`shrink_influence` from adoptions up to ``cut`` (default: the
       ``cut_quantile`` quantile of adoption dates).
    2. Candidates: users with a follower and an exposure before the cut who adopt something
       new after it (activity only, not the outcome, selects them). Top decile
       (``top_fraction``) by the shrunk influence (excess followers adopting per action, the
       quantity that weighs value; ties broken by a seeded permutation, never by id); the rest
       are controls.
    3. Outcome after the cut, per user v: exposures = (v's adoptions dated after the cut) x
       followers not having adopted the item by then; successes = followers adopting within tau.
    4. Activity matching: strata of pre-cut adoption count (deciles among candidates) x follower
       count (terciles); per stratum the pooled success rate of each group. The ratio is
       ``sum_s w_s rate_top_s / sum_s w_s rate_ctrl_s`` with w_s the top users in stratum s that
       had post-cut exposures (strata without both groups dropped).
    5. CI: percentile bootstrap (``n_boot``, seeded) resampling users within group x stratum.

    Args:
        snapshot: with timestamps.
        tau_days: window (widened at month resolution, see :func:`adoption_pairs`).
        cut: the cut (Unix seconds); default from ``cut_quantile``.
        top_fraction: share of candidates called top influencers.
        n_boot, level, seed: bootstrap.
    Returns:
        ``{"value", "ci", "level", "n_boot", "cut", "top_influencers", "controls", "strata",
        "top_rate", "control_rate", "top_exposures", "control_exposures"}``; ``value`` None with
        ``"reason"`` when there is nothing to compare.
    """
    full = adoption_pairs(snapshot, tau_days)
    t_all = full.times.data
    if cut is None:
        cut = float(np.quantile(t_all, cut_quantile))
    pre = adoption_pairs(snapshot, tau_days, until=cut)
    shr = shrink_influence(pre)
    n = full.n_users
    out = {"cut": str(np.datetime64(int(cut), "s").astype("datetime64[D]")), "cut_quantile": cut_quantile,
           "n_boot": int(n_boot), "level": float(level), "top_fraction": float(top_fraction)}
    # post-cut outcome per followee
    v = full.edge_v[full.pair_edge]
    tv, tu = t_all[full.pair_v], t_all[full.pair_u]
    post = tv > cut
    succ = np.bincount(v[post], weights=((tu[post] - tv[post] > 0) & (tu[post] - tv[post] <= full.tau)).astype(float),
                       minlength=n)
    new_actions = np.bincount(np.repeat(np.arange(n), np.diff(full.times.indptr)), weights=(t_all > cut).astype(float),
                              minlength=n)
    expo = np.maximum(full.followers * new_actions - np.bincount(v[post], weights=(tu[post] <= tv[post]).astype(float),
                                                                 minlength=n), 0.0)
    cand = np.flatnonzero((pre.followers > 0) & (shr.exposures > 0) & (expo > 0))
    if cand.size < 20:
        return {**out, "value": None, "ci": None, "reason": f"only {cand.size} users with followers and exposures before the cut"}
    rng = np.random.default_rng(seed)
    tie = rng.permutation(cand.size)
    order = cand[np.lexsort((tie, -shr.influence[cand]))]
    n_top = max(1, int(round(top_fraction * cand.size)))
    is_top = np.zeros(n, dtype=bool)
    is_top[order[:n_top]] = True
    act_bin = _quantile_bins(np.log1p(pre.actions[cand]), 10)
    fol_bin = _quantile_bins(np.log1p(pre.followers[cand]), 3)
    stratum = np.full(n, -1)
    stratum[cand] = act_bin * 3 + fol_bin
    use = cand
    cells = []  # (stratum, top successes, top exposures, ctrl successes, ctrl exposures)
    for s in np.unique(stratum[use]):
        members = use[stratum[use] == s]
        top, ctrl = members[is_top[members]], members[~is_top[members]]
        if top.size and ctrl.size:
            cells.append((top, ctrl))
    if not cells:
        return {**out, "value": None, "ci": None, "reason": "no stratum has both top influencers and matched controls with post-cut exposures"}

    def ratio(weights_top, weights_ctrl):
        num = den = 0.0
        for (top, ctrl), wt, wc in zip(cells, weights_top, weights_ctrl):
            e_t, e_c = (wt * expo[top]).sum(), (wc * expo[ctrl]).sum()
            if e_t <= 0 or e_c <= 0:
                continue
            w = top.size
            num += w * (wt * succ[top]).sum() / e_t
            den += w * (wc * succ[ctrl]).sum() / e_c
        return num / den if den > 0 else np.nan

    ones_t = [np.ones(c[0].size) for c in cells]
    ones_c = [np.ones(c[1].size) for c in cells]
    value = ratio(ones_t, ones_c)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        wt = [rng.multinomial(c[0].size, np.full(c[0].size, 1.0 / c[0].size)) for c in cells]
        wc = [rng.multinomial(c[1].size, np.full(c[1].size, 1.0 / c[1].size)) for c in cells]
        boots[b] = ratio(wt, wc)
    boots = boots[np.isfinite(boots)]
    lo, hi = (np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2]) if boots.size else (np.nan, np.nan))
    tops = np.concatenate([c[0] for c in cells])
    ctrls = np.concatenate([c[1] for c in cells])
    return {
        **out, "value": float(value) if np.isfinite(value) else None,
        "ci": [float(lo), float(hi)] if np.isfinite(lo) else None,
        "top_influencers": int(tops.size), "controls": int(ctrls.size), "strata": len(cells),
        "top_rate": float(succ[tops].sum() / max(expo[tops].sum(), 1.0)),
        "control_rate": float(succ[ctrls].sum() / max(expo[ctrls].sum(), 1.0)),
        "top_exposures": float(expo[tops].sum()), "control_exposures": float(expo[ctrls].sum()),
        "pre_cut_prior": {"alpha": shr.alpha, "beta": shr.beta},
    }


def _quantile_bins(x: np.ndarray, k: int) -> np.ndarray:
    """Integer bins 0..k-1 of x by its quantiles (ties share a bin)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, k + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right")


@dataclass
class InfluenceAssessment:
    """The influence test, the shrunk per-user influence and the decision to use it.

    Attributes:
        test: the JSON record ``influence.test`` (see :func:`assess_influence`).
        shrunk: :class:`ShrunkInfluence` on all adoptions, or None without timestamps.
        probabilities: (n, n) CSR [v, u] = excess per-exposure adoption probability of v on the
            follow edge to u when influence is detected; an all-zero matrix otherwise (cascades
            then spread nothing).
    """

    test: dict
    shrunk: ShrunkInfluence | None
    probabilities: sp.csr_matrix

    @property
    def detected(self) -> bool:
        return bool(self.test.get("detected"))


def assess_influence(snapshot: Snapshot, tau_days: float = 30.0, n_shuffles: int = 200, alpha: float = 0.05,
                     cut_quantile: float = 0.75, n_boot: int = 1000, seed: int = 0,
                     progress: bool = False) -> InfluenceAssessment:
    """Test influence against homophily, shrink it per user, validate it out of time, decide.

    Detection rule: influence is *detected* only when the shuffle test rejects (p < ``alpha``),
    on a directed graph the reverse-edge placebo rejects too (p < ``alpha``), and the
    out-of-time ratio's CI lies above 1. Otherwise ``probabilities`` is zero and the weighted
    value equals CLV (:func:`customer_influence_value`).

    Returns:
        :class:`InfluenceAssessment` whose ``test`` is ``{"can_run", "statistic", "p_value",
        "null" {mean, sd, quantiles, n, seed}, "lift", "z", "reverse_placebo",
        "out_of_time_ratio" {value, ci, ...}, "detected", "reason", "tau_days",
        "resolution_days", "symmetric", "pairs", "shrinkage" {...}, "method"}``. Without timestamps
        ``can_run`` is False, the numbers are None and ``reason`` says why.
    """
    n = snapshot.n_users
    zero = sp.csr_matrix((n, n))
    base = {"method": "timestamp-shuffle (Anagnostopoulos, Kumar & Mahdian, KDD 2008) + reverse-edge placebo "
                      "+ out-of-time top-decile vs activity-matched followers; empirical-Bayes Beta-Binomial per user",
            "alpha": float(alpha), "n_shuffles": int(n_shuffles)}
    if not snapshot.has_timestamps:
        return InfluenceAssessment(test={
            **base, "can_run": False, "statistic": None, "p_value": None, "null": None, "lift": None,
            "reverse_placebo": None, "out_of_time_ratio": None, "detected": False,
            "reason": "the test cannot run: the dataset has no adoption timestamps, so who adopted first is "
                      "unknown and influence cannot be separated from homophily; weighted value = CLV"}, shrunk=None,
            probabilities=zero)
    pairs = adoption_pairs(snapshot, tau_days)
    res = shuffle_test(pairs, n_shuffles=n_shuffles, seed=seed, progress=progress)
    shr = shrink_influence(pairs)
    oot = out_of_time_validation(snapshot, tau_days, cut_quantile=cut_quantile, n_boot=n_boot, seed=seed)
    reasons = []
    shuffle_ok = res["p_value"] < alpha
    reasons.append(f"shuffle test p = {res['p_value']:.3g} ({'rejects' if shuffle_ok else 'does not reject'} at {alpha:g}; "
                   f"observed {res['statistic']:.0f} follower-after-followee adoptions vs null mean "
                   f"{res['null']['mean']:.0f})")
    placebo = res["reverse_placebo"]
    if placebo is None:
        placebo_ok = True
        reasons.append("reverse-edge placebo not applicable (every follow edge is reciprocated)")
    else:
        placebo_ok = placebo["p_value"] < alpha
        reasons.append(f"reverse-edge placebo p = {placebo['p_value']:.3g} (followee-first {placebo['forward']:.0f} vs "
                       f"follower-first {placebo['reversed']:.0f}: {'rejects' if placebo_ok else 'does not reject'})")
    ci = oot.get("ci")
    oot_ok = ci is not None and ci[0] > 1.0
    if oot.get("value") is None:
        reasons.append(f"out-of-time check not possible: {oot.get('reason')}")
    else:
        reasons.append(f"out-of-time ratio {oot['value']:.3g} (CI {ci[0]:.3g}-{ci[1]:.3g}, "
                       f"{'excludes' if oot_ok else 'includes'} 1)")
    detected = bool(shuffle_ok and placebo_ok and oot_ok)
    reason = ("influence detected: " if detected else "influence not detected: ") + "; ".join(reasons)
    test = {
        **base, "can_run": True, **res, "out_of_time_ratio": oot, "detected": detected, "reason": reason,
        "shrinkage": {"prior_alpha": shr.alpha, "prior_beta": shr.beta, "level": shr.level,
                      "users_with_exposures": int((shr.exposures > 0).sum()),
                      "users_significant": int(shr.significant.sum()),
                      "users_with_influence": int((shr.influence > 0).sum())},
    }
    probs = zero
    if detected:
        w = shr.excess_rate[pairs.edge_v]
        probs = sp.csr_matrix((w, (pairs.edge_v, pairs.edge_u)), shape=(n, n))
        probs.eliminate_zeros()
        probs.sort_indices()
    return InfluenceAssessment(test=test, shrunk=shr, probabilities=probs)


def customer_influence_value(probabilities: sp.csr_matrix, clv: np.ndarray, value_per_transaction: np.ndarray,
                             discounted_transactions: np.ndarray) -> np.ndarray:
    """Customer influence value (CIV): the follower value a user's own future purchases cause.

    After the customer influence value of V. Kumar, J. A. Petersen & R. P. Leone ("Driving
    profitability by encouraging customer referrals: who, when, and how", Journal of Marketing
    74(5), 2010) and its use in customer engagement value (V. Kumar, L. Aksoy, B. Donkers,
    R. Venkatesan, T. Wiesel, S. Tillmanns, "Undervalued or overvalued customers: capturing total
    customer engagement value", Journal of Service Research 13(3), 2010), here one hop deep::

        CIV(v) = X(v) * sum_{u follows v} p(v, u) * m(u)

    * ``X(v)`` — v's discounted expected transactions over the CLV horizon (transactions);
    * ``p(v, u)`` — probability that one adoption of v causes follower u to adopt within tau,
      beyond the shuffle null (dimensionless, per adoption of v; zero unless detected);
    * ``m(u)`` — u's expected value per transaction (value unit per transaction).

    Unit: the CLV's value unit (money or interactions) over the CLV horizon, discounted like
    CLV. ``weighted_value = CLV + CIV``. A follower's value may be credited to several of their
    influencers, so CIV must not be summed across users.

    Args:
        probabilities: (n, n) CSR [v, u].
        clv: (n,) CLV (only for the shape/unit check).
        value_per_transaction: (n,) m(u); NaN counts as 0.
        discounted_transactions: (n,) X(v); NaN counts as 0.
    Returns:
        (n,) float64 CIV >= 0.
    """
    m = np.nan_to_num(np.asarray(value_per_transaction, dtype=np.float64), nan=0.0)
    x = np.nan_to_num(np.asarray(discounted_transactions, dtype=np.float64), nan=0.0)
    if m.shape != np.shape(clv) or x.shape != m.shape:
        raise ValueError("clv, value_per_transaction and discounted_transactions must have the same shape")
    return x * (probabilities @ m)


WEIGHTING = {
    "formula": "weighted_value = CLV + CIV, CIV(v) = X(v) * sum_{u follows v} p(v, u) * m(u)",
    "terms": {"X(v)": "v's discounted expected transactions over the CLV horizon (= CLV / value per transaction)",
              "p(v, u)": "excess probability that one adoption of v makes follower u adopt within tau, beyond the "
                         "shuffle null (empirical-Bayes Beta-Binomial); 0 unless influence is detected",
              "m(u)": "u's expected value per transaction"},
    "unit": "the CLV value unit over the CLV horizon, discounted like CLV; not additive across users",
    "source": "customer influence value after Kumar, Petersen & Leone (J. Marketing 74(5), 2010) and Kumar et al. "
              "(J. Service Research 13(3), 2010), one hop deep",
}


def apply_influence(users, snapshot: Snapshot, value_unit: str, tau_days: float = 30.0, seed: int = 0,
                    n_shuffles: int = 200, n_boot: int = 1000, features: InfluenceGraph | None = None,
                    progress: bool = False) -> tuple[dict, sp.csr_matrix]:
    """Run :func:`assess_influence` and write the influence columns of the value frame in place.

    Columns written (``users`` in snapshot row order, needs ``clv`` and ``value_per_transaction``):
    ``influence`` (shrunk excess followers adopting per action, measured even when not detected;
    0 without timestamps), ``influence_low`` / ``influence_high`` (its interval),
    ``influence_significant`` (bool), ``civ`` (customer influence value, 0 unless detected) and
    ``weighted_value = clv + civ`` (exactly ``clv`` unless detected).

    Args:
        users: the per-user value frame.
        snapshot: its snapshot.
        value_unit: "interactions" or a money unit (a follower with unknown value per transaction
            counts 1 interaction, or 0 money).
        tau_days, seed, n_shuffles, n_boot: see :func:`assess_influence`.
        features: the Goyal graph used for the propensity features (its totals are reported).
    Returns:
        ``(metrics["influence"], probabilities for cascades)``.
    """
    assessment = assess_influence(snapshot, tau_days=tau_days, n_shuffles=n_shuffles, n_boot=n_boot, seed=seed,
                                  progress=progress)
    n = snapshot.n_users
    shr = assessment.shrunk
    zeros = np.zeros(n)
    users["influence"] = shr.influence if shr is not None else zeros
    users["influence_low"] = shr.influence_low if shr is not None else zeros
    users["influence_high"] = shr.influence_high if shr is not None else zeros
    users["influence_significant"] = shr.significant if shr is not None else np.zeros(n, dtype=bool)
    clv = users["clv"].to_numpy(np.float64)
    m = users["value_per_transaction"].to_numpy(np.float64)
    x = np.divide(clv, m, out=np.zeros(n), where=np.isfinite(m) & (m > 0))
    m_followers = np.nan_to_num(m, nan=1.0 if value_unit == "interactions" else 0.0)
    civ = customer_influence_value(assessment.probabilities, clv, m_followers, x)
    users["civ"] = civ
    users["weighted_value"] = clv + civ
    metrics = {
        "detected": assessment.detected, "reason": assessment.test["reason"], "test": assessment.test,
        "weighting": WEIGHTING, "weighted_equals_clv": not assessment.detected,
        "civ_total": float(civ.sum()), "users_with_civ": int((civ > 0).sum()),
    }
    if features is not None:
        metrics["goyal_features"] = {"method": features.method, **features.stats}
    return metrics, assessment.probabilities
