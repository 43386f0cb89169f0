"""Campaign audiences: who to target for an item or a category, and which influencers to seed.

Expected *organic* value of user u for a campaign on target g (an item or a category) over a
window of ``window_weeks``: what u is expected to bring *without* any treatment effect being
modelled. It is not an incremental (causal) estimate: no uplift is estimated here, so the
audience ranks likely buyers, not persuadable ones (until the campaigns work supplies uplift)::

    expected_organic_value(u) = organic_propensity(u, g) * value_per_transaction(u)
    organic_propensity(u, g)  = P(active in window) * (1 - (1 - base(u, g)) * (1 - social(u, g)))

* ``P(active in window)`` — BG/NBD probability of at least one transaction in the window
  (:meth:`recsys.value.clv.BetaGeoModel.p_active`); without BG/NBD (no timestamps) 1 for users
  with any interaction, 0 otherwise;
* ``base(u, g)`` — the user's affinity for the target's category, Dirichlet-smoothed towards the
  catalogue's category shares: ``(n_uc + beta * share_c) / (n_u + beta)``; for an item, times
  the item's smoothed share of its category's interactions;
* ``social(u, g)`` — for an item, the chance that at least one followee who already adopted it
  influences u: ``1 - prod_v (1 - p(v, u))`` with the tested influence probabilities
  (:func:`recsys.value.influence.assess_influence`; all zero unless influence was detected);
  0 for a category campaign;
* ``value_per_transaction(u)`` — the Gamma-Gamma expected value of one transaction (one
  interaction when there is no estimate and value is counted in interactions).

Users who already adopted the item are left out of an item campaign.

Seeding: ``seed_influencers = k`` asks for up to k users maximising the expected spread under the
independent cascade model with the tested probabilities (Kempe, Kleinberg & Tardos, KDD 2003),
by CELF lazy-greedy evaluation (Leskovec, Krause, Guestrin, Faloutsos, VanBriesen & Glance,
"Cost-effective Outbreak Detection in Networks", KDD 2007). The objective is the *reach beyond
the seeds*, ``sigma(S) - |S|`` (expected activated users who are not seeds; submodular, as sigma
minus a modular term), estimated on a fixed set of ``n_worlds`` sampled live-edge graphs
(common random numbers), so CELF returns exactly the plain greedy seed set.

* Floor: a seed is added only while its marginal reach beyond the seeds exceeds
  ``min_marginal_spread`` expected users (default 1.0): fewer than k seeds, possibly none, come
  back when influence is weak, and none when it was not detected.
* Ties: equal marginal gains go to the candidate ranked earlier by influence x P(active), and
  among equal scores by a seeded random permutation — never by user id.
* Interval: the chosen seed set's expected reach is re-estimated on ``n_eval_worlds`` *fresh*
  worlds (the optimisation worlds are optimistically biased) with a normal 95 % Monte-Carlo
  interval, mean +- 1.96 sd / sqrt(worlds).

Candidates are the ``candidate_pool`` users with the highest shrunk behavioural influence x
P(active in the window), among users with P(active) >= ``min_active``: an influencer who has
gone quiet seeds nothing.
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


def _beyond(worlds: LiveEdgeWorlds, node: int, active: list[np.ndarray]) -> int:
    """Total (over worlds) marginal reach *beyond the seeds*: newly activated nodes minus one seed."""
    return _gain(worlds, node, active) - len(worlds.worlds)


def greedy_seeds(worlds: LiveEdgeWorlds, candidates: np.ndarray, k: int,
                 min_marginal_spread: float = -np.inf) -> tuple[list[int], list[float]]:
    """Plain greedy influence maximisation of the reach beyond the seeds, sigma(S) - |S|.

    Every remaining candidate is re-evaluated each round; a round's best is added only when its
    marginal reach (expected users) exceeds ``min_marginal_spread``. Ties go to the candidate
    earlier in ``candidates`` (the caller's priority order).

    Returns ``(seeds, marginal reach beyond the seeds, expected users)``.
    """
    active = [np.zeros(worlds.n, dtype=bool) for _ in worlds.worlds]
    n_w = len(worlds.worlds)
    seeds, gains = [], []
    remaining = [int(c) for c in candidates]
    for _ in range(min(k, len(remaining))):
        best, best_gain = None, None
        for c in remaining:
            g = _beyond(worlds, c, active)
            if best_gain is None or g > best_gain:
                best, best_gain = c, g
        if best is None or not best_gain / n_w > min_marginal_spread:
            break
        seeds.append(best)
        gains.append(best_gain / n_w)
        remaining.remove(best)
        for w in range(n_w):
            active[w] |= worlds.reach(w, np.array([best]), active[w])
    return seeds, gains


def celf_seeds(worlds: LiveEdgeWorlds, candidates: np.ndarray, k: int,
               min_marginal_spread: float = -np.inf) -> tuple[list[int], list[float]]:
    """CELF lazy-greedy maximisation of sigma(S) - |S| (Leskovec et al., KDD 2007), with a floor.

    Marginal gains only shrink as seeds are added (submodularity), so a stale gain is an upper
    bound: a candidate whose gain was computed in the current round and still tops the queue is
    the greedy choice. Stops when that choice's marginal reach beyond the seeds is not above
    ``min_marginal_spread`` (expected users): every other candidate's bound is no higher. Ties
    go to the candidate earlier in ``candidates``, as in :func:`greedy_seeds`, so CELF returns
    the plain greedy seed set.

    Returns ``(seeds, marginal reach beyond the seeds, expected users)``.
    """
    active = [np.zeros(worlds.n, dtype=bool) for _ in worlds.worlds]
    n_w = len(worlds.worlds)
    heap = [(-_beyond(worlds, int(c), active), order, int(c), 0) for order, c in enumerate(candidates)]
    heapq.heapify(heap)
    seeds, gains = [], []
    round_ = 0
    while heap and len(seeds) < k:
        neg, order, node, stamp = heapq.heappop(heap)
        if stamp == round_:
            if not -neg / n_w > min_marginal_spread:
                break
            seeds.append(node)
            gains.append(-neg / n_w)
            for w in range(n_w):
                active[w] |= worlds.reach(w, np.array([node]), active[w])
            round_ += 1
        else:
            heapq.heappush(heap, (-_beyond(worlds, node, active), order, node, round_))
    return seeds, gains


def spread_interval(worlds: LiveEdgeWorlds, seeds, z: float = 1.96) -> dict:
    """Monte-Carlo estimate of a seed set's reach beyond the seeds, with a normal interval.

    Returns ``{"expected_reach", "ci_low", "ci_high", "sd", "worlds", "expected_spread"}``:
    expected activated users excluding / including the seeds, and the interval
    ``mean +- z sd / sqrt(worlds)`` of the former (users).
    """
    seeds = np.asarray(list(seeds), dtype=np.int64)
    n_w = len(worlds.worlds)
    if seeds.size == 0:
        return {"expected_reach": 0.0, "ci_low": 0.0, "ci_high": 0.0, "sd": 0.0, "worlds": n_w,
                "expected_spread": 0.0}
    reach = np.array([worlds.reach(w, seeds).sum() for w in range(n_w)], dtype=np.float64) - seeds.size
    sd = float(reach.std(ddof=1)) if n_w > 1 else 0.0
    half = z * sd / np.sqrt(n_w)
    mean = float(reach.mean())
    return {"expected_reach": mean, "ci_low": mean - half, "ci_high": mean + half, "sd": sd, "worlds": n_w,
            "expected_spread": mean + seeds.size}


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
    min_marginal_spread: float = 1.0,
    n_eval_worlds: int = 1000,
) -> pd.DataFrame:
    """The ``size`` users with the highest expected organic value, optionally with seeds.

    Args:
        result: a :class:`recsys.value.pipeline.CustomerValueResult` for ``snapshot``.
        snapshot: the snapshot the result was computed on.
        item_id: target item (exclusive with ``category``).
        category: target category name.
        size: audience size N >= 1 (seeds included).
        seed_influencers: at most k >= 0 influencers to seed by CELF (0 = none); they come
            first. Fewer (or none) when the floor stops CELF.
        window_weeks: campaign window for P(active).
        candidate_pool: seed candidates: the users with the highest influence x P(active), among
            those with P(active in window) >= ``min_active``.
        min_active: see ``candidate_pool``.
        n_worlds: live-edge samples for the spread estimate.
        seed: RNG seed of the worlds and of the tie-break permutation.
        min_marginal_spread: the floor: a seed is added only while its marginal expected reach
            beyond the seeds exceeds this many users.
        n_eval_worlds: fresh worlds for the reported spread and its Monte-Carlo interval.
    Returns:
        Frame ``user_id``, ``expected_organic_value`` (value unit), ``reason`` (str), ``role``
        (``influencer_seed`` / ``target``), ``organic_propensity``, ``value_per_transaction``,
        ``marginal_reach`` (expected extra users beyond the seeds, seeds only), sorted seeds
        first then by expected organic value. ``frame.attrs["seeding"]`` holds the seeding
        record: requested k, seeds chosen, the floor, the tie rule, ``influence_detected``,
        ``stopped`` (why CELF stopped) and the fresh-world ``spread`` with its interval
        (:func:`spread_interval`).
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
    # only tested influence spreads: without detection (or an old result without the test) nothing does
    detected = bool(result.metrics.get("influence", {}).get("detected", False))
    probs = (result.influence_probabilities if detected and result.influence_probabilities is not None
             else sp.csr_matrix((n, n)))
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
    seeding = {"requested": int(seed_influencers), "min_marginal_spread": float(min_marginal_spread),
               "influence_detected": detected, "n_worlds": int(n_worlds), "n_eval_worlds": int(n_eval_worlds),
               "objective": "expected users activated beyond the seeds, sigma(S) - |S|, independent cascade",
               "tie_rule": "equal marginal reach: higher influence x P(active) first, then a seeded random permutation "
                           "(never user id)"}
    if seed_influencers:
        # A seed must be around to act: candidates are users likely active in the window, ranked
        # by influence x P(active); the fallback without BG/NBD ranks by influence alone.
        infl = np.nan_to_num(users["influence"].to_numpy(np.float64), nan=0.0)
        reach_now = infl * p_active if bg is not None else infl
        ok = ~exclude & ((p_active >= min_active) if bg is not None else True)
        tie = np.random.default_rng(seed).permutation(n)
        order = np.lexsort((tie, -reach_now))
        pool = order[ok[order]][:candidate_pool].astype(np.int64)
        worlds = LiveEdgeWorlds(probs, n_worlds=n_worlds, seed=seed)
        seeds, gains = celf_seeds(worlds, pool, seed_influencers, min_marginal_spread=min_marginal_spread)
        if len(seeds) < seed_influencers:
            why = ("influence was not detected, so no follow edge carries a tested probability"
                   if not detected else f"no further candidate adds more than {min_marginal_spread:g} expected users")
            seeding["stopped"] = f"{len(seeds)} of {seed_influencers} seeds: {why}"
        fresh = LiveEdgeWorlds(probs, n_worlds=n_eval_worlds, seed=seed + 1) if seeds else worlds
        seeding["spread"] = spread_interval(fresh, seeds)
    seeding["chosen"] = len(seeds)
    rows = []
    for rank, (s, g) in enumerate(zip(seeds, gains), start=1):
        rows.append({
            "user_id": users["user_id"].iat[s], "expected_organic_value": float(expected[s]), "role": "influencer_seed",
            "organic_propensity": float(propensity[s]), "value_per_transaction": float(value[s]),
            "marginal_reach": float(g),
            "reason": (f"influencer seed {rank}: adds {g:.2f} expected activated users beyond the seeds (floor "
                       f"{min_marginal_spread:g}) under the independent cascade with tested influence (influence "
                       f"{users['influence'].iat[s]:.3f} followers/action, pagerank {users['pagerank'].iat[s]:.2e}); "
                       f"segment {users['segment_id'].iat[s]}"),
        })
    taken = np.zeros(n, dtype=bool)
    taken[seeds] = True
    eligible = np.flatnonzero(~exclude & ~taken)
    tie = np.random.default_rng(seed).permutation(n)
    order = eligible[np.lexsort((tie[eligible], -expected[eligible]))][: size - len(seeds)]
    for u in order:
        parts = [f"P(active in {window_weeks:g} wk) {p_active[u]:.2f}", f"{cat_name} affinity {affinity[u, c] if c >= 0 else 0:.2f}"]
        if social[u] > 0:
            parts.append(f"followees who adopted it: social pull {social[u]:.2f}")
        rows.append({
            "user_id": users["user_id"].iat[u], "expected_organic_value": float(expected[u]), "role": "target",
            "organic_propensity": float(propensity[u]), "value_per_transaction": float(value[u]),
            "marginal_reach": np.nan,
            "reason": (f"{target}: organic propensity {propensity[u]:.3f} (" + ", ".join(parts) + f") x value/transaction "
                       f"{value[u]:.2f} {unit}; CLV {users['clv'].iat[u]:.2f}; segment {users['segment_id'].iat[u]}"),
        })
    cols = ["user_id", "expected_organic_value", "reason", "role", "organic_propensity", "value_per_transaction",
            "marginal_reach"]
    frame = pd.DataFrame(rows, columns=cols)
    frame.attrs["seeding"] = seeding
    return frame


def _log_no_influence(probs: sp.csr_matrix, adopters: np.ndarray, n: int) -> np.ndarray:
    """(n,) sum over adopters v of log(1 - p_infl(v, u)): log P(no adopter influences u)."""
    sub = sp.csr_matrix(probs)[adopters].tocoo()
    out = np.zeros(n)
    np.add.at(out, sub.col, np.log1p(-np.clip(sub.data, 0.0, 1.0 - 1e-12)))
    return out
