"""Influence: PageRank, Goyal et al. probabilities on a hand-built log, cascades, CELF."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from graph.snapshot import build_snapshot
from recsys.value.audience import (
    LiveEdgeWorlds,
    celf_seeds,
    exact_spread,
    expected_spread,
    greedy_seeds,
    spread_interval,
)
from recsys.value.influence import customer_influence_value, learn_influence, pagerank, weighted_cascade

DAY = 86400.0


def _snapshot(actions, follows, with_ts=True):
    inter = pd.DataFrame(
        [(u, i, "purchase", 1.0, t * DAY if with_ts else np.nan) for u, i, t in actions],
        columns=["user_id", "item_id", "kind", "value", "ts"],
    )
    fol = pd.DataFrame(follows, columns=["follower_id", "followee_id"])
    users = pd.DataFrame({"user_id": sorted({u for u, _, _ in actions} | {a for e in follows for a in e})})
    items = pd.DataFrame({"item_id": sorted({i for _, i, _ in actions}), "category": "c"})
    return build_snapshot("hand", users, items, inter, fol)


@pytest.fixture()
def hand_log():
    """a acts on i1, i2, i3 at day 10; b (follows a) adopts i1 at day 11, i2 at day 12, i3 at day 5
    (before a: not a propagation); c (follows a) adopts i1 at day 100 (outside tau = 30 days)."""
    actions = [("a", "i1", 10), ("a", "i2", 10), ("a", "i3", 10),
               ("b", "i1", 11), ("b", "i2", 12), ("b", "i3", 5), ("b", "i4", 50),
               ("c", "i1", 100)]
    return _snapshot(actions, [("b", "a"), ("c", "a")])


def test_goyal_probabilities_on_a_hand_built_log_are_exact(hand_log):
    g = learn_influence(hand_log, tau_days=30.0, z_margin=0.0)
    a, b, c = (hand_log.user_index(u) for u in "abc")
    # A_a = 3; A_{a2b} = 2 (i1, i2); A_{a2c} = 0 (i1 is 90 days later)
    assert g.bernoulli[a, b] == pytest.approx(2 / 3)
    assert g.bernoulli[a, c] == 0.0
    # Jaccard: A_{a|b} = 3 + 4 - 3 co-adopted = 4
    assert g.jaccard[a, b] == pytest.approx(2 / 4)
    assert g.actions[a] == 3 and g.propagations[a] == 2
    # reversal: a adopted i3 five days after follower b -> R_a = 1
    assert g.reversed_propagations[a] == 1
    # permutation null: i1 dates {10, 11, 100}: 1 of 6 ordered pairs within (0, 30] days;
    # i2 {10, 12}: 1 of 2; i3 {10, 5}: 1 of 2. Edge a->b co-adopts i1, i2, i3; a->c co-adopts i1.
    assert g.permutation_null[a] == pytest.approx((1 / 6 + 1 / 2 + 1 / 2) + 1 / 6)
    null = max(g.permutation_null[a], 1.0)
    assert g.excess[a] == pytest.approx(2 - null)
    assert g.probabilities[a, b] == pytest.approx(2 / 3 * (2 - null) / 2)
    assert g.influence[a] == pytest.approx(g.probabilities[a, b])


def test_influence_probabilities_lie_in_unit_interval_and_follow_edges(ciao_snapshot):
    g = learn_influence(ciao_snapshot)
    for m in (g.probabilities, g.bernoulli, g.jaccard):
        assert m.data.min() >= 0.0 and m.data.max() <= 1.0
    edges = set(zip(*sp.coo_matrix(ciao_snapshot.follows).nonzero()))
    v, u = g.bernoulli.nonzero()
    assert all((uu, vv) in edges for vv, uu in zip(v[:500], u[:500]))  # [v, u] only where u follows v
    assert g.method == "goyal-bernoulli-excess"
    assert g.stats["propagations"] > 0 and g.stats["permutation_null"] > 0


def test_no_timestamps_falls_back_to_weighted_cascade(hand_log):
    snap = _snapshot([("a", "i1", 0), ("b", "i1", 0)], [("b", "a"), ("c", "a"), ("c", "b")], with_ts=False)
    g = learn_influence(snap)
    a, b, c = (snap.user_index(u) for u in "abc")
    assert g.method == "weighted-cascade-fallback"
    assert g.probabilities[a, b] == pytest.approx(1.0)  # b follows one user
    assert g.probabilities[a, c] == pytest.approx(0.5)  # c follows two
    assert g.probabilities[b, c] == pytest.approx(0.5)
    assert weighted_cascade(snap.follows).influence[a] == pytest.approx(1.5)


def test_pagerank_sums_to_one_and_matches_networkx():
    rng = np.random.default_rng(3)
    n = 40
    rows, cols = rng.integers(0, n, 150), rng.integers(0, n, 150)
    keep = rows != cols
    follows = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    follows.data[:] = 1.0
    pr = pagerank(follows)
    assert pr.sum() == pytest.approx(1.0)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(*follows.nonzero()))
    ref = nx.pagerank(graph, alpha=0.85, tol=1e-12)
    assert np.allclose(pr, [ref[i] for i in range(n)], atol=1e-6)


def test_pagerank_on_ciao_sums_to_one(ciao_snapshot):
    pr = pagerank(ciao_snapshot.follows)
    assert pr.shape == (ciao_snapshot.n_users,)
    assert pr.sum() == pytest.approx(1.0, abs=1e-9) and pr.min() > 0


def test_independent_cascade_chain_has_the_exact_expected_spread():
    # a -> b -> c, each with p = 0.5: sigma({a}) = 1 + 0.5 + 0.25
    p = sp.csr_matrix((np.array([0.5, 0.5]), (np.array([0, 1]), np.array([1, 2]))), shape=(3, 3))
    assert exact_spread(p, [0]) == pytest.approx(1.75)
    # P(c active | seed a) = 0.25 exactly; a diamond a->b, a->c, b->d, c->d (p = 0.5):
    # P(d) = 1 - (1 - 0.25)^2 = 0.4375, sigma = 1 + 0.5 + 0.5 + 0.4375
    d = sp.csr_matrix((np.full(4, 0.5), (np.array([0, 0, 1, 2]), np.array([1, 2, 3, 3]))), shape=(4, 4))
    assert exact_spread(d, [0]) == pytest.approx(2.4375)
    worlds = LiveEdgeWorlds(d, n_worlds=4000, seed=1)
    assert expected_spread(worlds, [0]) == pytest.approx(2.4375, abs=0.05)


def test_celf_returns_the_plain_greedy_seed_set():
    rng = np.random.default_rng(11)
    n = 40
    rows, cols = rng.integers(0, n, 160), rng.integers(0, n, 160)
    keep = rows != cols
    probs = sp.csr_matrix((rng.uniform(0.05, 0.4, keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    worlds = LiveEdgeWorlds(probs, n_worlds=30, seed=2)
    candidates = np.arange(n)
    greedy, greedy_gains = greedy_seeds(worlds, candidates, 5)
    celf, celf_gains = celf_seeds(worlds, candidates, 5)
    assert celf == greedy
    assert celf_gains == pytest.approx(greedy_gains)
    assert all(a >= b for a, b in zip(celf_gains, celf_gains[1:]))  # submodular: gains shrink
    assert expected_spread(worlds, celf) == pytest.approx(sum(celf_gains) + len(celf))  # gains exclude the seeds


def test_customer_influence_value_is_transactions_times_probability_times_follower_value():
    # a (0) is followed by b (1) and c (2): p(a, b) = 0.5, p(a, c) = 0.1; X(a) = 4 discounted
    # transactions; m(b) = 3, m(c) = 10 per transaction -> CIV(a) = 4 * (0.5 * 3 + 0.1 * 10) = 10
    p = sp.csr_matrix((np.array([0.5, 0.1]), (np.array([0, 0]), np.array([1, 2]))), shape=(3, 3))
    civ = customer_influence_value(p, np.array([8.0, 6.0, 0.0]), np.array([2.0, 3.0, 10.0]),
                                   np.array([4.0, 2.0, 0.0]))
    assert civ == pytest.approx([10.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        customer_influence_value(p, np.zeros(3), np.zeros(2), np.zeros(3))


# ---------------------------------------------------------------------------- influence vs homophily
def _synthetic(kind: str, seed: int = 0, n_users: int = 300, n_items: int = 300, per_user: int = 15):
    """A directed follow graph with dated adoptions (day resolution).

    ``homophily``: 10 taste groups; users follow mostly their own group and adopt items from
    their group's pool; every adoption date is drawn independently from the item's own
    popularity window (launch + exponential), so timing carries no influence at all.
    ``influence``: the same, plus 10 % of users are influencers whose every adoption makes each
    follower adopt the item 1-10 days later with probability 0.3 (one hop).
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 10, n_users)
    item_group = rng.integers(0, 10, n_items)
    launch = rng.uniform(0, 1500, n_items)
    follows = set()
    for u in range(n_users):
        same = np.flatnonzero(group == group[u])
        for v in rng.choice(same, size=min(6, same.size), replace=False):
            if v != u:
                follows.add((u, int(v)))
        for v in rng.integers(0, n_users, 2):
            if v != u:
                follows.add((u, int(v)))
    adopt: dict[tuple[int, int], float] = {}
    for u in range(n_users):
        pool = np.flatnonzero(item_group == group[u])
        for i in rng.choice(pool, size=min(per_user, pool.size), replace=False):
            adopt[(u, int(i))] = float(np.floor(launch[i] + rng.exponential(120.0)))
    if kind == "influence":
        influencer = rng.random(n_users) < 0.1
        followers_of: dict[int, list[int]] = {}
        for u, v in follows:
            followers_of.setdefault(v, []).append(u)
        for (v, i), t in list(adopt.items()):
            if not influencer[v]:
                continue
            for u in followers_of.get(v, []):
                if rng.random() < 0.3:
                    t_new = t + float(rng.integers(1, 11))
                    if (u, i) not in adopt or adopt[(u, i)] > t_new:
                        adopt[(u, i)] = t_new
    actions = [(f"u{u:03d}", f"i{i:03d}", t) for (u, i), t in adopt.items()]
    return _snapshot(actions, [(f"u{u:03d}", f"u{v:03d}") for u, v in follows])


@pytest.fixture(scope="module")
def planted():
    return _synthetic("influence")


@pytest.fixture(scope="module")
def homophily():
    return _synthetic("homophily")


def test_shuffle_test_and_placebo_reject_on_planted_influence(planted):
    from recsys.value.influence import adoption_pairs, shuffle_test

    res = shuffle_test(adoption_pairs(planted, 30.0), n_shuffles=200, seed=1)
    assert res["p_value"] < 0.01 and res["statistic"] > res["null"]["quantiles"]["q99"]
    assert res["null"]["n"] == 200 and res["null"]["sd"] > 0
    placebo = res["reverse_placebo"]
    assert placebo is not None and placebo["p_value"] < 0.01 and placebo["forward"] > placebo["reversed"]


def test_shuffle_test_and_placebo_do_not_reject_on_homophily_only(homophily):
    from recsys.value.influence import adoption_pairs, shuffle_test

    pairs = adoption_pairs(homophily, 30.0)
    assert pairs.pair_edge.size > 1000  # plenty of co-adoption on edges: homophily is there
    res = shuffle_test(pairs, n_shuffles=200, seed=1)
    assert res["p_value"] > 0.05
    assert res["reverse_placebo"]["p_value"] > 0.05
    assert abs(res["reverse_placebo"]["null"]["mean"]) < 3 * res["reverse_placebo"]["null"]["sd"]


def test_shuffle_test_is_seeded_and_counts_the_hand_log_exactly(hand_log):
    from recsys.value.influence import adoption_pairs, shuffle_test

    pairs = adoption_pairs(hand_log, 30.0)
    a = shuffle_test(pairs, n_shuffles=50, seed=7)
    b = shuffle_test(pairs, n_shuffles=50, seed=7)
    assert a == b
    # b adopts i1, i2 within 30 days after a (followee); a adopts i3 five days after b
    assert a["statistic"] == 2 and a["reversed_statistic"] == 1 and a["pairs"] == 4


def test_reverse_placebo_is_void_on_a_symmetric_graph_and_month_dates_widen_tau():
    from recsys.value.influence import adoption_pairs, shuffle_test

    month = 30.44
    actions = [("a", "i1", 0), ("b", "i1", month), ("a", "i2", 2 * month), ("b", "i2", 2 * month),
               ("c", "i1", 3 * month)]
    snap = _snapshot(actions, [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")])
    pairs = adoption_pairs(snap, 30.0)
    assert pairs.symmetric and pairs.resolution_days >= 28
    assert pairs.tau >= 31 * DAY  # next calendar month still counts
    res = shuffle_test(pairs, n_shuffles=20, seed=0)
    assert res["reverse_placebo"] is None and res["symmetric"]
    # dated to the 1st of a month with one stray day (like lastfm's tag dates): still monthly
    first = [float(np.datetime64(f"2008-{m:02d}-01", "D").astype(np.int64)) for m in range(1, 13)]
    acts = [(f"u{k % 7}", f"i{k % 5}", first[k % 12]) for k in range(60)] + [("u0", "i9", first[3] + 4)]
    monthly = adoption_pairs(_snapshot(acts, [("u0", "u1"), ("u1", "u0")]), 30.0)
    assert monthly.resolution_days > 28 and monthly.tau == 31 * DAY


def test_beta_binomial_fit_recovers_the_prior_and_shrinks_small_counts():
    from recsys.value.influence import fit_beta_binomial

    rng = np.random.default_rng(5)
    p = rng.beta(2.0, 50.0, 3000)
    n = rng.integers(50, 400, 3000)
    k = rng.binomial(n, p)
    a, b = fit_beta_binomial(k, n)
    assert a / (a + b) == pytest.approx(2 / 52, rel=0.05)
    assert a + b == pytest.approx(52, rel=0.3)


def test_shrunk_influence_has_intervals_and_pulls_tiny_counts_to_the_prior(planted):
    from recsys.value.influence import adoption_pairs, shrink_influence

    pairs = adoption_pairs(planted, 30.0)
    shr = shrink_influence(pairs)
    has = shr.exposures > 0
    assert np.all(shr.rate_low[has] <= shr.rate[has]) and np.all(shr.rate[has] <= shr.rate_high[has])
    assert np.all(shr.influence_low <= shr.influence + 1e-12) and np.all(shr.influence <= shr.influence_high + 1e-12)
    prior = shr.alpha / (shr.alpha + shr.beta)
    raw = np.divide(shr.successes, shr.exposures, out=np.zeros_like(shr.exposures), where=has)
    # the posterior lies between the raw ratio and the prior mean, closer to the prior for fewer exposures
    lo, hi = np.minimum(raw, prior), np.maximum(raw, prior)
    assert np.all((shr.rate[has] >= lo[has] - 1e-12) & (shr.rate[has] <= hi[has] + 1e-12))
    # planted influencers (followers adopt with p = 0.3) stand out as significant
    assert shr.significant.sum() >= 10
    top = np.argsort(-shr.influence)[:20]
    assert 0.2 < np.median(shr.rate[top]) < 0.4  # the planted 0.3
    assert np.median(shr.rate[top]) > 3 * np.median(shr.null_rate[has])


def test_planted_influence_is_detected_and_weighs_value(planted):
    from recsys.value.influence import assess_influence, customer_influence_value

    a = assess_influence(planted, n_shuffles=200, n_boot=300, seed=0)
    t = a.test
    assert t["detected"], t["reason"]
    assert t["out_of_time_ratio"]["value"] > 1 and t["out_of_time_ratio"]["ci"][0] > 1
    assert a.probabilities.nnz > 0
    clv = np.ones(planted.n_users)
    civ = customer_influence_value(a.probabilities, clv, np.ones(planted.n_users), np.ones(planted.n_users))
    assert civ.max() > 0


def test_homophily_only_is_not_detected_and_weighted_value_equals_clv(homophily):
    from recsys.value.influence import apply_influence

    users = pd.DataFrame({"clv": np.linspace(0, 5, homophily.n_users), "value_per_transaction": 1.0})
    metrics, probs = apply_influence(users, homophily, "interactions", n_shuffles=200, n_boot=300)
    assert metrics["detected"] is False and metrics["test"]["detected"] is False
    assert "not detected" in metrics["reason"] and "shuffle test p" in metrics["reason"]
    assert probs.nnz == 0
    assert np.array_equal(users["weighted_value"].to_numpy(), users["clv"].to_numpy())
    assert metrics["weighted_equals_clv"] and "Kumar" in metrics["weighting"]["source"]
    null = metrics["test"]["null"]
    assert {"mean", "sd", "quantiles", "n"} <= set(null) and null["n"] == 200


def test_without_timestamps_the_test_cannot_run():
    from recsys.value.influence import apply_influence

    snap = _snapshot([("a", "i1", 0), ("b", "i1", 0)], [("b", "a"), ("c", "a")], with_ts=False)
    users = pd.DataFrame({"clv": [1.0, 2.0, 0.0], "value_per_transaction": np.nan})
    metrics, probs = apply_influence(users, snap, "interactions")
    assert metrics["test"]["can_run"] is False and metrics["detected"] is False
    assert "cannot run" in metrics["reason"] and metrics["test"]["p_value"] is None
    assert np.array_equal(users["weighted_value"].to_numpy(), users["clv"].to_numpy())


# ---------------------------------------------------------------------------- CELF floor and ties
def _hubs(n=30):
    """Node 0 reaches 1..10 (p = 0.5); node 20 reaches 21..23 (p = 1); nodes 11..19 reach nobody."""
    rows = [0] * 10 + [20] * 3
    cols = list(range(1, 11)) + [21, 22, 23]
    data = [0.5] * 10 + [1.0] * 3
    return sp.csr_matrix((data, (rows, cols)), shape=(n, n))


def test_celf_stops_at_the_floor_instead_of_padding_with_zero_influence_seeds():
    worlds = LiveEdgeWorlds(_hubs(), n_worlds=150, seed=0)
    cand = np.array([15, 0, 11, 20, 12, 13])
    seeds, gains = celf_seeds(worlds, cand, 5, min_marginal_spread=1.0)
    assert seeds == [0, 20]  # 0 adds ~5 users, 20 adds 3; the isolated nodes add 0 and are not taken
    assert gains[0] == pytest.approx(5.0, abs=0.5) and gains[1] == pytest.approx(3.0)
    assert greedy_seeds(worlds, cand, 5, min_marginal_spread=1.0) == (seeds, gains)
    # a floor above the best gain: no seeds at all
    assert celf_seeds(worlds, cand, 5, min_marginal_spread=10.0) == ([], [])
    # without a floor the old behaviour pads with nodes that reach nobody (gain 0)
    padded, padded_gains = celf_seeds(worlds, cand, 5)
    assert len(padded) == 5 and padded_gains[2:] == [0.0, 0.0, 0.0]


def test_celf_ties_follow_the_candidate_priority_not_the_id():
    # two identical deterministic stars: 3 -> {4, 5}, 7 -> {8, 9}; equal gains (2 users)
    p = sp.csr_matrix((np.ones(4), ([3, 3, 7, 7], [4, 5, 8, 9])), shape=(10, 10))
    worlds = LiveEdgeWorlds(p, n_worlds=5, seed=0)
    assert celf_seeds(worlds, np.array([7, 3]), 1)[0] == [7]
    assert celf_seeds(worlds, np.array([3, 7]), 1)[0] == [3]
    assert greedy_seeds(worlds, np.array([7, 3]), 1)[0] == [7]


def test_spread_interval_covers_the_exact_reach_beyond_the_seed():
    p = sp.csr_matrix((np.array([0.5, 0.5]), (np.array([0, 1]), np.array([1, 2]))), shape=(3, 3))
    exact_reach = exact_spread(p, [0]) - 1  # 0.75 users beyond the seed
    iv = spread_interval(LiveEdgeWorlds(p, n_worlds=3000, seed=4), [0])
    assert iv["ci_low"] < exact_reach < iv["ci_high"]
    assert iv["expected_spread"] == pytest.approx(iv["expected_reach"] + 1)
    assert iv["ci_high"] - iv["ci_low"] < 0.1
    assert spread_interval(LiveEdgeWorlds(p, n_worlds=10), [])["expected_reach"] == 0.0


def test_audience_seeds_only_tested_influence_with_an_interval(planted):
    from recsys.value.audience import build_audience
    from recsys.value.pipeline import compute_customer_value

    result = compute_customer_value(planted, with_propensity=False, min_segment_size=5)
    assert result.metrics["influence"]["detected"], result.metrics["influence"]["reason"]
    users = result.users
    assert (users["weighted_value"] >= users["clv"]).all() and (users["weighted_value"] > users["clv"]).any()
    cats = list(map(str, planted.categories))
    aud = build_audience(result, planted, category=cats[0], size=20, seed_influencers=5, n_worlds=100,
                         n_eval_worlds=300, min_marginal_spread=0.5)
    seeding = aud.attrs["seeding"]
    seeds = aud[aud["role"] == "influencer_seed"]
    assert 1 <= len(seeds) <= 5 and (seeds["marginal_reach"] > 0.5).all()
    assert seeding["spread"]["ci_low"] <= seeding["spread"]["expected_reach"] <= seeding["spread"]["ci_high"]
    assert seeding["spread"]["expected_reach"] > 0 and "never user id" in seeding["tie_rule"]
    assert "incremental" not in " ".join(aud["reason"]) and "organic propensity" in aud["reason"].iloc[-1]
    # the same result with influence marked not detected: no seed, and the record says why
    result.metrics["influence"]["detected"] = False
    none = build_audience(result, planted, category=cats[0], size=20, seed_influencers=5, n_worlds=50)
    assert (none["role"] == "target").all() and "not detected" in none.attrs["seeding"]["stopped"]


def test_api_value_record_says_influence_not_detected_with_the_reason(homophily):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.problems import install_problem_handlers
    from api.routes.value import get_pseudonymise, get_value_state, router
    from recsys.value.pipeline import compute_customer_value

    result = compute_customer_value(homophily, with_propensity=False, min_segment_size=5)
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_value_state] = lambda: result
    app.dependency_overrides[get_pseudonymise] = lambda: (lambda raw: raw)
    body = TestClient(app).get("/v1/users/u000/value").json()
    assert body["influence_detected"] is False
    assert body["influence_reason"].startswith("influence not detected") and "shuffle test p" in body["influence_reason"]
    assert body["weighted_value"] == body["clv"]
    low, high = body["influence_interval"]
    assert 0 <= low <= body["influence"] <= high
