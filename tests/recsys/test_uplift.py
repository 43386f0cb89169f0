"""Uplift metrics, protocol and targeting policy (small synthetic campaigns + a hillstrom subsample)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score, uplift_curve

from etl.campaign import check_campaign_table
from etl.errors import EtlInputError
from recsys.campaigns.policy import profit_curve
from recsys.campaigns.uplift import run_uplift, stratified_split, subsample
from recsys.campaigns.uplift_metrics import curves, incremental_at, perfect_scores, poisson_weights, ranking_metrics


def _campaign(n=4000, effect=0.25, seed=0, spend=True):
    """x ~ N(0,1); treated customers with x > 0 visit with +effect probability; others no effect."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    p = 0.1 + effect * t * (x > 0)
    visit = (rng.random(n) < p).astype(int)
    raw = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "arm": np.where(t == 1, "mail", "control"),
                        "visit": visit, "x": x, "noise": rng.normal(size=n)})
    if spend:
        raw["spend"] = visit * 10.0
    raw["_line"] = np.arange(2, n + 2)
    return check_campaign_table(raw, file="synthetic.csv")


# --------------------------------------------------------------------------- metrics
def _random_binary(n=2000, seed=1):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 0.1 + 0.15 * t * (x > 0)).astype(int)
    return y, t, x


def test_metrics_equal_scikit_uplift_without_weights():
    y, t, x = _random_binary()
    score = np.round(x + np.random.default_rng(2).normal(size=x.size), 1)  # ties on purpose
    m = ranking_metrics(y, t, score)
    assert m["qini"][0] == pytest.approx(qini_auc_score(y, score, t))
    assert m["uplift@30"][0] == pytest.approx(uplift_at_k(y, score, t, strategy="overall", k=0.3))
    xs, us = uplift_curve(y, score, t)
    c = curves(y, t, score)
    assert np.allclose(c["x"][0], xs) and np.allclose(c["uplift"][0], us)
    assert uplift_auc_score(y, score, t) > 0 and m["auuc"][0] > 0


def test_perfect_ranking_has_qini_one_and_random_rankings_average_zero():
    y, t, _ = _random_binary()
    assert ranking_metrics(y, t, perfect_scores(y, t))["qini"][0] == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    qs = [ranking_metrics(y, t, rng.random(y.size))["qini"][0] for _ in range(200)]
    assert abs(np.mean(qs)) < 0.01 and np.std(qs) > 0.005
    # a reversed good ranking is worse than random
    assert ranking_metrics(y, t, -perfect_scores(y, t))["qini"][0] < 0


def test_bootstrap_weights_give_a_ci_around_the_point_value():
    y, t, x = _random_binary(4000)
    w = poisson_weights(y.size, 300, np.random.default_rng(0))
    point = ranking_metrics(y, t, x)["qini"][0]
    draws = ranking_metrics(y, t, x, w)["qini"]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    assert lo < point < hi and lo > 0  # the true ranking separates
    assert ranking_metrics(y, t, x, np.ones((1, y.size)))["qini"][0] == pytest.approx(point, rel=0.02)


def test_bootstrap_path_with_unit_weights_matches_the_exact_metrics():
    y, t, x = _random_binary(4000)
    ones = np.ones((2, y.size))
    exact, binned = ranking_metrics(y, t, x), ranking_metrics(y, t, x, ones)
    for k in ("qini", "qini_area", "auuc", "uplift@10", "uplift@30"):
        assert binned[k][1] == pytest.approx(exact[k][0], rel=0.02, abs=1e-4), k
    fr = [0.0, 0.3, 1.0]
    assert np.allclose(incremental_at(y, t, x, fr, ones)[0], incremental_at(y, t, x, fr)[0])


def test_incremental_at_is_the_arm_difference_inside_the_selected_group():
    y, t, x = _random_binary()
    order = np.argsort(-x, kind="mergesort")[:600]
    expected = (y[order][t[order] == 1].mean() - y[order][t[order] == 0].mean()) * 600 / y.size
    assert incremental_at(y, t, x, [0.3])[0, 0] == pytest.approx(expected)
    assert incremental_at(y, t, x, [0.0])[0, 0] == 0.0


def test_bad_metric_arguments_are_value_errors():
    y, t, x = _random_binary(100)
    with pytest.raises(ValueError):
        ranking_metrics(y, t[:50], x)
    with pytest.raises(ValueError):
        ranking_metrics(y, t, x, fractions=(1.5,))


# --------------------------------------------------------------------------- protocol
def test_split_is_seeded_disjoint_and_stratified_by_arm_and_outcome():
    rng = np.random.default_rng(0)
    arm = rng.choice(["a", "b", "c"], 3000)
    y = (rng.random(3000) < 0.05).astype(float)
    s0, s0b, s1 = stratified_split(arm, y, 0), stratified_split(arm, y, 0), stratified_split(arm, y, 1)
    assert np.array_equal(s0.test, s0b.test) and not np.array_equal(s0.test, s1.test)
    assert len(set(s0.fit) | set(s0.val) | set(s0.test)) == 3000
    assert not set(s0.fit) & set(s0.val) and not set(s0.train) & set(s0.test)
    for a in "abc":
        share_all = ((arm == a) & (y > 0)).mean()
        assert ((arm[s0.test] == a) & (y[s0.test] > 0)).mean() == pytest.approx(share_all, abs=0.005)


def test_strong_heterogeneity_separates_from_random_and_targets(monkeypatch):
    frame, spec = _campaign(n=3000, effect=0.3)
    r = run_uplift(frame, spec, "mail", "visit", models=("t_learner",), seeds=2, n_boot=200,
                   cost=1.0, margin=1.0, progress=False, keep_curves=False)
    best = r["models"][r["selected_model"]]
    assert best["qini_ci"][0] > 0 and r["separates_from_random"]
    assert abs(r["baselines"]["random"]["qini"]) < best["qini"]
    assert set(r["baselines"]) == {"random", "response", "t_learner"}
    assert len(best["qini_seeds"]) == 2 and len(best["params"]) == 2
    pol = r["policy"]
    assert set(pol["policies"]) == {"contact_all", "contact_none", "top_n_response", "top_n_uplift", "profit_optimal"}
    assert pol["policies"]["contact_none"]["profit"] == 0.0
    # effect only for x > 0 (half): contacting everybody pays (0.5 x 3 - 1 per customer) but wastes
    # the cost of the other half; targeting the top half earns 0.5 x (3 - 1): a gain of 0.5 per customer
    assert 0.3 <= pol["policies"]["profit_optimal"]["fraction"] <= 0.7
    assert pol["recommended"] == "profit_optimal" and pol["targeting_gain"]["ci"][0] > 0


def test_no_effect_falls_back_to_contact_none_and_claims_no_gain():
    frame, spec = _campaign(n=3000, effect=0.0, seed=4)
    r = run_uplift(frame, spec, "mail", "visit", models=("t_learner",), seeds=2, n_boot=200, cost=0.5, margin=1.0,
                   progress=False, keep_curves=False)
    pol = r["policy"]
    assert pol["recommended"] in ("contact_none", "contact_all")
    assert pol["recommended"] == "contact_none"  # a contact costs and earns nothing
    assert "no targeting gain" in pol["reason"]


def test_run_rejects_unknown_arm_control_as_treatment_and_missing_outcome():
    frame, spec = _campaign(n=200, spend=False)
    with pytest.raises(EtlInputError, match="unknown arm"):
        run_uplift(frame, spec, "sms", "visit", progress=False)
    with pytest.raises(EtlInputError, match="control arm"):
        run_uplift(frame, spec, "control", "visit", progress=False)
    with pytest.raises(EtlInputError, match=r"synthetic.csv:1: field 'spend': missing outcome column"):
        run_uplift(frame, spec, "mail", "spend", progress=False)


def test_profit_curve_needs_revenue():
    y, t, x = _random_binary(500)
    assert profit_curve({"visit": y.astype(float)}, t, x, outcome="visit", cost=0.1, margin=0.3,
                        value_per_outcome=None, population=1000) is None
    c = profit_curve({"visit": y.astype(float)}, t, x, outcome="visit", cost=0.1, margin=0.3, value_per_outcome=2.0,
                     population=1000)
    assert c[0] == 0.0 and c.shape == (21,)


def test_hillstrom_subsample_all_models_and_best_arm(shared_data_dir):
    from etl.campaign import load_campaign_table

    frame, spec = load_campaign_table("hillstrom", data_dir=shared_data_dir)
    small = subsample(frame, 4000)
    r = run_uplift(small, spec, "Mens E-Mail", "visit", seeds=1, n_boot=50, progress=False, keep_curves=False)
    assert set(r["models"]) == {"s_learner", "t_learner", "x_learner", "transformed_outcome", "uplift_forest"}
    for block in r["models"].values():
        assert {"qini", "qini_ci", "uplift@10", "uplift@30", "auuc"} <= set(block)
    multi = run_uplift(small, spec, "all", "visit", models=("t_learner",), seeds=1, n_boot=50, progress=False)
    assert set(multi["models"]["t_learner"]["per_arm"]) == {"Mens E-Mail", "Womens E-Mail"}
    assert "best_arm:t_learner" in multi["policy"]["policies"] and multi["policy"]["recommended"]
    spend = run_uplift(small, spec, "Mens E-Mail", "spend", models=("t_learner", "uplift_forest"), seeds=1, n_boot=50,
                       progress=False, keep_curves=False)
    assert "uplift_forest" not in spend["models"]  # binary outcomes only


def test_best_arm_per_customer_beats_every_single_arm_when_arms_suit_different_customers():
    rng = np.random.default_rng(7)
    n = 4500
    x = rng.normal(size=n)
    arm = rng.choice(["control", "a", "b"], n)
    p = 0.1 + 0.35 * ((arm == "a") & (x > 0)) + 0.35 * ((arm == "b") & (x <= 0))
    visit = (rng.random(n) < p).astype(int)
    raw = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "arm": arm, "visit": visit, "x": x,
                        "_line": np.arange(2, n + 2)})
    frame, spec = check_campaign_table(raw, file="arms.csv")
    r = run_uplift(frame, spec, "all", "visit", models=("t_learner",), seeds=1, n_boot=200, cost=0.0, progress=False)
    pol = r["policy"]["policies"]
    best = pol["best_arm:t_learner"]["incremental_visits"]
    assert best > pol["all:a"]["incremental_visits"] and best > pol["all:b"]["incremental_visits"]
    assert r["policy"]["recommended"] == "best_arm:t_learner"
    assert r["models"]["t_learner"]["per_arm"]["a"]["qini_ci"][0] > 0
