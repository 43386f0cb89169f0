"""Influence: PageRank, Goyal et al. probabilities on a hand-built log, cascades, CELF."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from graph.snapshot import build_snapshot
from recsys.value.audience import LiveEdgeWorlds, celf_seeds, exact_spread, expected_spread, greedy_seeds
from recsys.value.influence import influence_weighted_value, learn_influence, pagerank, weighted_cascade

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
    assert expected_spread(worlds, celf) == pytest.approx(sum(celf_gains))


def test_weighted_value_adds_influence_probability_times_follower_clv(hand_log):
    g = learn_influence(hand_log, tau_days=30.0, z_margin=0.0)
    clv = np.array([10.0, 4.0, 2.0])
    wv = influence_weighted_value(g, clv)
    a, b = hand_log.user_index("a"), hand_log.user_index("b")
    assert wv[a] == pytest.approx(clv[a] + g.probabilities[a, b] * clv[b])
    assert wv[b] == pytest.approx(clv[b])
