"""Campaign audiences: who to target for an item or a category, and which influencers to seed.

Expected incremental value of targeting user u with a campaign for target g (an item or a
category) over a window of ``window_weeks``::

    expected_value(u) = propensity(u, g) * value_per_transaction(u)
    propensity(u, g)  = P(active in window) * (1 - (1 - base(u, g)) * (1 - social(u, g)))

* ``P(active in window)`` — BG/NBD probability of at least one transaction in the window
  (:meth:`recsys.value.clv.BetaGeoModel.p_active`); without BG/NBD (no timestamps) 1 for users
  with any interaction, 0 otherwise;
* ``base(u, g)`` — the user's affinity for the target's category, Dirichlet-smoothed towards the
  catalogue's category shares: ``(n_uc + beta * share_c) / (n_u + beta)``; for an item, times
  the item's smoothed share of its category's interactions;
* ``social(u, g)`` — for an item, the chance that at least one followee who already adopted it
  influences u: ``1 - prod_v (1 - p_infl(v, u))`` with the measured probabilities
  (:mod:`recsys.value.influence`); 0 for a category campaign;
* ``value_per_transaction(u)`` — the Gamma-Gamma expected value of one transaction (one
  interaction when there is no estimate and value is counted in interactions).

Users who already adopted the item are left out of an item campaign.

Seeding: ``seed_influencers = k`` picks k users maximising the expected spread sigma(S) (expected
number of users activated) under the independent cascade model with the learned probabilities
(Kempe, Kleinberg & Tardos, KDD 2003), by CELF lazy-greedy evaluation (Leskovec, Krause,
Guestrin, Faloutsos, VanBriesen & Glance, "Cost-effective Outbreak Detection in Networks", KDD
2007). sigma is estimated on a fixed set of ``n_worlds`` sampled live-edge graphs (common random
numbers), so it is a deterministic monotone submodular set function and CELF returns exactly
the plain greedy seed set. Candidates are the ``candidate_pool`` users with the highest
behavioural influence x P(active in the window), among users with P(active) >= ``min_active``:
an influencer who has gone quiet seeds nothing.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.snapshot import Snapshot


# ============================================================================ independent cascade
class LiveEdgeWorlds:
    """``n_worlds`` live-edge samples of an independent-cascade graph.

    Args:
        probabilities: (n, n) CSR, [v, u] = probability that v activates u.
        n_worlds: number of sampled worlds.
        seed: RNG seed.
    """

    def __init__(self, probabilities: sp.csr_matrix, n_worlds: int = 200, seed: int = 0):
        if n_worlds < 1:
            raise ValueError("n_worlds must be >= 1")
        p = sp.csr_matrix(probabilities, dtype=np.float64)
        p.eliminate_zeros()
        self.n = p.shape[0]
        rng = np.random.default_rng(seed)
        rows = np.repeat(np.arange(self.n), np.diff(p.indptr))
        self.worlds: list[sp.csr_matrix] = []
        for _ in range(n_worlds):
            live = rng.random(p.nnz) < p.data
            self.worlds.append(sp.csr_matrix((np.ones(int(live.sum()), dtype=np.int8), (rows[live], p.indices[live])),
                                             shape=p.shape))

    def reach(self, world: int, sources: np.ndarray, blocked: np.ndarray | None = None) -> np.ndarray:
        """Boolean (n,) mask of the nodes reached from ``sources`` in one world (sources included),
        not expanding through nodes already in ``blocked`` (they are already active)."""
        g = self.worlds[world]
        seen = np.zeros(self.n, dtype=bool) if blocked is None else blocked.copy()
        frontier = np.asarray([s for s in np.atleast_1d(sources) if not seen[s]], dtype=np.int64)
        seen[frontier] = True
        while frontier.size:
            nxt = g[frontier].indices
            nxt = np.unique(nxt[~seen[nxt]])
            seen[nxt] = True
            frontier = nxt
        return seen if blocked is None else seen & ~blocked


def _gain(worlds: LiveEdgeWorlds, node: int, active: list[np.ndarray]) -> int:
    """Total (over worlds) number of newly activated nodes when ``node`` is added to the seeds."""
    return int(sum(worlds.reach(w, np.array([node]), active[w]).sum() for w in range(len(worlds.worlds))))


def greedy_seeds(worlds: LiveEdgeWorlds, candidates: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """Plain greedy influence maximisation: k rounds, every candidate re-evaluated each round.

    Returns ``(seeds, marginal expected spreads)``; ties go to the earlier candidate.
    """
    active = [np.zeros(worlds.n, dtype=bool) for _ in worlds.worlds]
    seeds, gains = [], []
    remaining = list(candidates)
    for _ in range(min(k, len(remaining))):
        best, best_gain = None, -1
        for c in remaining:
            g = _gain(worlds, c, active)
            if g > best_gain:
                best, best_gain = c, g
        seeds.append(int(best))
        gains.append(best_gain / len(worlds.worlds))
        remaining.remove(best)
        for w in range(len(worlds.worlds)):
            active[w] |= worlds.reach(w, np.array([best]), active[w])
    return seeds, gains


def celf_seeds(worlds: LiveEdgeWorlds, candidates: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """CELF lazy-greedy influence maximisation (Leskovec et al., KDD 2007).

    Marginal gains only shrink as seeds are added (submodularity), so a stale gain is an upper
    bound: a candidate whose gain was computed in the current round and still tops the queue is
    the greedy choice. Ties go to the earlier candidate, as in :func:`greedy_seeds`.

    Returns ``(seeds, marginal expected spreads)``.
    """
    active = [np.zeros(worlds.n, dtype=bool) for _ in worlds.worlds]
    heap = [(-_gain(worlds, int(c), active), order, int(c), 0) for order, c in enumerate(candidates)]
    heapq.heapify(heap)
    seeds, gains = [], []
    round_ = 0
    while heap and len(seeds) < k:
        neg, order, node, stamp = heapq.heappop(heap)
        if stamp == round_:
            seeds.append(node)
            gains.append(-neg / len(worlds.worlds))
            for w in range(len(worlds.worlds)):
                active[w] |= worlds.reach(w, np.array([node]), active[w])
            round_ += 1
        else:
            heapq.heappush(heap, (-_gain(worlds, node, active), order, node, round_))
    return seeds, gains


def expected_spread(worlds: LiveEdgeWorlds, seeds) -> float:
    """Monte Carlo sigma(S): mean number of active nodes (seeds included) over the worlds."""
    seeds = np.asarray(list(seeds), dtype=np.int64)
    if seeds.size == 0:
        return 0.0
    return float(np.mean([worlds.reach(w, seeds).sum() for w in range(len(worlds.worlds))]))


def exact_spread(probabilities: sp.csr_matrix, seeds, max_edges: int = 20) -> float:
    """Exact sigma(S) by enumerating every live-edge world (tiny graphs only; tests).

    Raises:
        ValueError: more than ``max_edges`` edges.
    """
    p = sp.coo_matrix(probabilities)
    keep = p.data > 0
    rows, cols, probs = p.row[keep], p.col[keep], p.data[keep]
    if rows.size > max_edges:
        raise ValueError(f"{rows.size} edges: exact enumeration is limited to {max_edges}")
    n = p.shape[0]
    total = 0.0
    for live in itertools.product((False, True), repeat=rows.size):
        live = np.asarray(live, dtype=bool)
        weight = float(np.prod(np.where(live, probs, 1.0 - probs)))
        if weight == 0.0:
            continue
        adj = sp.csr_matrix((np.ones(live.sum()), (rows[live], cols[live])), shape=(n, n))
        seen = np.zeros(n, dtype=bool)
        frontier = np.asarray(list(seeds), dtype=np.int64)
        seen[frontier] = True
        while frontier.size:
            nxt = adj[frontier].indices
            nxt = np.unique(nxt[~seen[nxt]])
            seen[nxt] = True
            frontier = nxt
        total += weight * seen.sum()
    return total


# ============================================================================ audiences
def category_affinity(snapshot: Snapshot, beta: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, n_categories) smoothed category shares and the catalogue's shares (n_categories,)."""
    n_cat = len(snapshot.categories)
    inter = snapshot.interactions.tocsr().astype(bool).astype(np.float64)
    cats = snapshot.item_category
    valid = cats >= 0
    item_to_cat = sp.csr_matrix((np.ones(valid.sum()), (np.flatnonzero(valid), cats[valid])), shape=(snapshot.n_items, n_cat))
    counts = (inter @ item_to_cat).toarray()
    share = counts.sum(axis=0) / max(counts.sum(), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return (counts + beta * share) / (totals + beta), share


def build_audience(
    result,
    snapshot: Snapshot,
    item_id: str | None = None,
    category: str | None = None,
    size: int = 100,
    seed_influencers: int = 0,
    window_weeks: float = 4.0,
    candidate_pool: int = 200,
    min_active: float = 0.1,
    n_worlds: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``size`` users with the highest expected incremental value, optionally with seeds.

    Args:
        result: a :class:`recsys.value.pipeline.CustomerValueResult` for ``snapshot``.
        snapshot: the snapshot the result was computed on.
        item_id: target item (exclusive with ``category``).
        category: target category name.
        size: audience size N >= 1 (seeds included).
        seed_influencers: k >= 0 influencers to seed by CELF (0 = none); they come first.
        window_weeks: campaign window for P(active).
        candidate_pool: seed candidates: the users with the highest influence x P(active), among
            those with P(active in window) >= ``min_active``.
        min_active: see ``candidate_pool``.
        n_worlds: live-edge samples for the spread estimate.
        seed: RNG seed of the worlds.
    Returns:
        Frame ``user_id``, ``expected_value`` (value unit), ``reason`` (str), ``role``
        (``influencer_seed`` / ``target``), ``propensity``, ``value_per_transaction``,
        ``expected_spread`` (marginal, seeds only), sorted seeds first then by expected value.
    Raises:
        ValueError: neither or both of item_id/category, unknown item or category, size < 1,
            seed_influencers < 0 or > size.
    """
    if (item_id is None) == (category is None):
        raise ValueError("give exactly one of item_id or category")
    if size < 1 or seed_influencers < 0 or seed_influencers > size:
        raise ValueError("need size >= 1 and 0 <= seed_influencers <= size")
    users = result.users
    if len(users) != snapshot.n_users or not np.array_equal(users["user_id"].to_numpy(str), snapshot.user_ids.astype(str)):
        raise ValueError("the value result was computed on a different snapshot")
    n = snapshot.n_users
    affinity, share = category_affinity(snapshot)
    probs = result.influence_probabilities if result.influence_probabilities is not None else sp.csr_matrix((n, n))
    social = np.zeros(n)
    exclude = np.zeros(n, dtype=bool)
    if item_id is not None:
        j = snapshot.item_index(str(item_id))
        if j is None:
            raise ValueError(f"unknown item {item_id!r}")
        c = int(snapshot.item_category[j])
        inter = snapshot.interactions.tocsc()
        adopters = inter.indices[inter.indptr[j]:inter.indptr[j + 1]]
        exclude[adopters] = True
        col_counts = np.diff(inter.indptr).astype(np.float64)
        if c >= 0:
            in_cat = snapshot.item_category == c
            item_share = (col_counts[j] + 1.0) / (col_counts[in_cat].sum() + in_cat.sum())
            base = affinity[:, c] * item_share
        else:
            base = np.full(n, (col_counts[j] + 1.0) / (col_counts.sum() + max(snapshot.n_items, 1)))
        if adopters.size:
            social = 1.0 - np.exp(_log_no_influence(probs, adopters, n))
        target = f"item {item_id}"
        cat_name = str(snapshot.categories[c]) if c >= 0 else "none"
    else:
        cats = list(map(str, snapshot.categories))
        if str(category) not in cats:
            raise ValueError(f"unknown category {category!r}")
        c = cats.index(str(category))
        base = affinity[:, c]
        target = f"category {category}"
        cat_name = str(category)

    bg = result.bgnbd()
    x, t_x, T = (users[k].to_numpy(np.float64) for k in ("frequency", "recency", "T"))
    has = np.isfinite(x)
    p_active = np.zeros(n)
    if bg is not None and has.any():
        p_active[has] = bg.p_active(window_weeks, x[has], t_x[has], T[has])
    elif bg is None:  # no BG/NBD (no timestamps): activity is not modelled; anyone with history counts
        p_active = (np.diff(snapshot.interactions.tocsr().indptr) > 0).astype(np.float64)
    # value of one transaction; without a Gamma-Gamma estimate, one interaction (or nothing known)
    value = np.nan_to_num(users["value_per_transaction"].to_numpy(np.float64),
                          nan=1.0 if result.value_unit == "interactions" else 0.0)
    propensity = p_active * (1.0 - (1.0 - base) * (1.0 - social))
    expected = propensity * value
    unit = result.value_unit

    seeds, gains = [], []
    if seed_influencers:
        # A seed must be around to act: candidates are users likely active in the window, ranked
        # by influence x P(active); the fallback without BG/NBD ranks by influence alone.
        infl = users["influence"].to_numpy(np.float64)
        reach_now = infl * p_active if bg is not None else infl
        ok = ~exclude & ((p_active >= min_active) if bg is not None else True)
        order = np.lexsort((np.arange(n), -reach_now))
        pool = order[ok[order]][:candidate_pool].astype(np.int64)
        worlds = LiveEdgeWorlds(probs, n_worlds=n_worlds, seed=seed)
        seeds, gains = celf_seeds(worlds, pool, seed_influencers)
    rows = []
    for rank, (s, g) in enumerate(zip(seeds, gains), start=1):
        rows.append({
            "user_id": users["user_id"].iat[s], "expected_value": float(expected[s]), "role": "influencer_seed",
            "propensity": float(propensity[s]), "value_per_transaction": float(value[s]), "expected_spread": float(g),
            "reason": (f"influencer seed {rank}: adds {g:.2f} expected activated users (seed included) under the "
                       f"independent cascade with measured influence (influence {users['influence'].iat[s]:.3f} "
                       f"followers/action, pagerank {users['pagerank'].iat[s]:.2e}); segment {users['segment_id'].iat[s]}"),
        })
    taken = np.zeros(n, dtype=bool)
    taken[seeds] = True
    eligible = np.flatnonzero(~exclude & ~taken)
    order = eligible[np.lexsort((eligible, -expected[eligible]))][: size - len(seeds)]
    for u in order:
        parts = [f"P(active in {window_weeks:g} wk) {p_active[u]:.2f}", f"{cat_name} affinity {affinity[u, c] if c >= 0 else 0:.2f}"]
        if social[u] > 0:
            parts.append(f"followees who adopted it: social pull {social[u]:.2f}")
        rows.append({
            "user_id": users["user_id"].iat[u], "expected_value": float(expected[u]), "role": "target",
            "propensity": float(propensity[u]), "value_per_transaction": float(value[u]), "expected_spread": np.nan,
            "reason": (f"{target}: propensity {propensity[u]:.3f} (" + ", ".join(parts) + f") x value/transaction "
                       f"{value[u]:.2f} {unit}; CLV {users['clv'].iat[u]:.2f}; segment {users['segment_id'].iat[u]}"),
        })
    cols = ["user_id", "expected_value", "reason", "role", "propensity", "value_per_transaction", "expected_spread"]
    return pd.DataFrame(rows, columns=cols)


def _log_no_influence(probs: sp.csr_matrix, adopters: np.ndarray, n: int) -> np.ndarray:
    """(n,) sum over adopters v of log(1 - p_infl(v, u)): log P(no adopter influences u)."""
    sub = sp.csr_matrix(probs)[adopters].tocoo()
    out = np.zeros(n)
    np.add.at(out, sub.col, np.log1p(-np.clip(sub.data, 0.0, 1.0 - 1e-12)))
    return out
