"""Campaign assignment and analysis: reproducible balanced hashing, SRM, CUPED, Hillstrom's arm effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.store import EmbeddedStore
from recsys.campaigns.analysis import analyze, analyze_campaign, cuped_adjust, diff_in_means, srm_check
from recsys.campaigns.assignment import (
    assign_arms,
    assignment_hash,
    assignments_csv,
    balance_table,
    import_campaign,
    plan_campaign,
)


def _users(n: int) -> list[str]:
    return [f"u_{i:06d}" for i in range(n)]


def test_assignment_is_byte_identical_across_runs_and_independent_of_input_order():
    users = _users(5000)
    strata = [f"s{i % 7}" for i in range(5000)]
    a = plan_campaign("spring-sale", users, 0.3, strata=strata, stratify="segment")
    shuffled = np.random.default_rng(3).permutation(5000)
    b = plan_campaign("spring-sale", [users[i] for i in shuffled], 0.3, strata=[strata[i] for i in shuffled], stratify="segment")
    assert assignments_csv(a.assignments).encode() == assignments_csv(b.assignments).encode()
    other_salt = plan_campaign("spring-sale", users, 0.3, salt="another", strata=strata)
    assert (other_salt.assignments["arm"] != a.assignments["arm"]).mean() > 0.3  # the salt re-randomises


def test_each_stratum_is_split_exactly_in_proportion():
    users = _users(1003)
    strata = ["a"] * 501 + ["b"] * 400 + ["c"] * 102
    out = assign_arms(users, "salt", {"treatment": 0.5, "control": 0.5}, strata)
    sizes = out.groupby(["stratum", "arm"]).size().unstack()
    assert (sizes["treatment"] - sizes["control"]).abs().max() <= 1
    assert sizes.loc["a"].sum() == 501 and sizes.loc["c"].sum() == 102


def test_hash_is_uniform_and_assignment_is_not_tied_to_id_order():
    u = assignment_hash("x", _users(20000))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    out = assign_arms(_users(20000), "x", {"treatment": 0.5, "control": 0.5})
    first_half = out["user_id"] < "u_010000"
    assert abs(out.loc[first_half, "arm"].eq("treatment").mean() - 0.5) < 0.03


def test_bad_assignment_arguments_are_refused():
    with pytest.raises(ValueError, match="twice"):
        assign_arms(["a", "b", "a"], "s", {"treatment": 0.5, "control": 0.5})
    with pytest.raises(ValueError, match="share"):
        plan_campaign("c", _users(10), 1.0)
    with pytest.raises(ValueError, match="empty"):
        assign_arms([], "s", {"treatment": 0.5, "control": 0.5})


def test_balance_table_flags_an_imbalanced_covariate():
    users = _users(4000)
    a = assign_arms(users, "b", {"treatment": 0.5, "control": 0.5})
    rng = np.random.default_rng(0)
    cov = pd.DataFrame({"user_id": a["user_id"], "spend": rng.gamma(2, 10, 4000)})
    cov["rigged"] = cov["spend"] + np.where(a["arm"] == "treatment", 10.0, 0.0)
    table = balance_table(a, cov, "control").set_index("covariate")
    assert not table.loc["spend", "imbalanced"] and table.loc["rigged", "imbalanced"]


def test_srm_flags_a_deliberately_unbalanced_assignment_and_passes_a_fair_one():
    a = plan_campaign("srm", _users(20000), 0.5).assignments
    fair = a["arm"].value_counts().to_dict()
    assert not srm_check(fair, {"treatment": 0.5, "control": 0.5})["flagged"]
    # lose 5 % of the control arm's users (e.g. a broken e-mail log): 10,000 vs 9,500
    control = a[a["arm"] == "control"]
    broken = pd.concat([a[a["arm"] == "treatment"], control.iloc[: int(len(control) * 0.95)]])
    check = srm_check(broken["arm"].value_counts().to_dict(), {"treatment": 0.5, "control": 0.5})
    assert check["flagged"] and check["p_value"] < 1e-3
    frame = broken.assign(y=0.0)
    assert analyze(frame, ["treatment", "control"], "control", ["y"], shares={"treatment": 0.5, "control": 0.5})["srm"]["flagged"]


def test_cuped_keeps_the_effect_and_narrows_the_interval():
    rng = np.random.default_rng(1)
    n = 20000
    x = rng.gamma(2.0, 20.0, n)  # pre-period spend
    t = rng.random(n) < 0.5
    y = 0.8 * x + rng.normal(0, 10, n) + 2.0 * t  # true effect +2
    plain = diff_in_means(y[t], y[~t])
    adj, theta, vr = cuped_adjust(y, x)
    cu = diff_in_means(adj[t], adj[~t])
    assert plain["ci"][0] < 2.0 < plain["ci"][1] and cu["ci"][0] < 2.0 < cu["ci"][1]
    assert (cu["ci"][1] - cu["ci"][0]) < 0.5 * (plain["ci"][1] - plain["ci"][0])
    assert 0.7 < theta < 0.9 and vr > 0.5


def test_roi_and_incremental_revenue_follow_the_lift():
    frame = pd.DataFrame({"arm": ["treatment"] * 4 + ["control"] * 4, "spend": [3, 5, 4, 4, 1, 2, 1, 0]})
    r = analyze(frame, ["treatment", "control"], "control", ["spend"], revenue_outcome="spend", cost_per_contact=0.5, margin=0.5)
    o = r["outcomes"]["spend"]
    assert o["lift"] == pytest.approx(3.0) and o["incremental_revenue"] == pytest.approx(12.0)
    assert o["roi"] == pytest.approx((12.0 * 0.5 - 2.0) / 2.0)
    assert o["roi_ci"][0] < o["roi"] < o["roi_ci"][1]


def test_hillstrom_as_a_finished_campaign_reproduces_the_published_arm_effects(shared_data_dir, tmp_path):
    """PAPER_RESULTS.md §6: men's e-mail vs control visit +7.66 pp, conversion +0.68 pp, spend +$0.770."""
    from etl.campaign import load_campaign_table

    frame, spec = load_campaign_table("hillstrom", data_dir=shared_data_dir)
    store = EmbeddedStore(tmp_path, "hillstrom")
    import_campaign(store, "hillstrom-2008", frame, list(spec.arms), spec.control, list(spec.outcomes),
                    list(spec.numeric_covariates), pre="history", categorical=list(spec.categorical_covariates))
    r = analyze_campaign(store, "hillstrom-2008", treatment="Mens E-Mail", by="channel")
    o = r["outcomes"]
    assert round(o["visit"]["lift"] * 100, 2) == 7.66
    assert round(o["conversion"]["lift"] * 100, 2) == 0.68
    assert round(o["spend"]["lift"], 3) == 0.770
    for name in ("visit", "conversion", "spend"):
        lo, hi = o[name]["ci"]
        assert 0 < lo < o[name]["lift"] < hi  # every effect is positive with 95 % confidence
        assert o[name]["cuped_ci"][0] < o[name]["lift"] < o[name]["cuped_ci"][1]
    women = r["contrasts"]["Womens E-Mail"]
    assert round(women["visit"]["lift"] * 100, 2) == 4.52 and round(women["spend"]["lift"], 3) == 0.424
    assert r["arms"] == {"No E-Mail": 21306, "Womens E-Mail": 21387, "Mens E-Mail": 21307}
    assert not r["srm"]["flagged"]
    assert not any(row["imbalanced"] for row in r["balance"])  # randomised: covariates balanced

    # which segment? the lift does not differ by channel, but the women's e-mail moves mostly
    # the customers who bought women's merchandise (Cochran's Q heterogeneity test)
    assert r["by"]["outcomes"]["visit"]["heterogeneity_p"] > 0.05
    women_by = analyze_campaign(store, "hillstrom-2008", treatment="Womens E-Mail", by="womens")["by"]["outcomes"]["visit"]
    assert women_by["heterogeneity_p"] < 1e-10 and women_by["best"] == "1.0"
