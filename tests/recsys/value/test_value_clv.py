"""BG/NBD and Gamma-Gamma: the CDNOW validation (Fader, Hardie & Lee 2005) and model identities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.value.clv import (
    CDNOW_ACTUAL_HOLDOUT_REPEATS,
    PUBLISHED_BGNBD,
    PUBLISHED_GAMMA_GAMMA,
    BetaGeoModel,
    GammaGammaModel,
    customer_lifetime_value,
)

# Measured on the CDNOW sample with this code: 1,653.41 predicted vs 1,882 actual, -12.15 %
# (BG/NBD under-forecasts this holdout, most for customers with 1-2 calibration repeats; see
# the report's by_frequency). The bound is 0.85 points above the measurement (~16 transactions):
# the protocol slips we measured break it — a 38-week holdout predicts 1,618 (-14.0 %), and
# counting purchase lines instead of customer-days makes the actual 1,959 (-15.6 %).
HOLDOUT_RELATIVE_ERROR_BOUND = 0.13
MEASURED_PREDICTED_HOLDOUT = 1653.41


@pytest.mark.parametrize("name", ["r", "alpha", "a", "b"])
def test_cdnow_bgnbd_parameters_match_published_within_half_percent(cdnow_report_dict, name):
    fitted = cdnow_report_dict["params"][name]
    assert fitted == pytest.approx(PUBLISHED_BGNBD[name], rel=0.005)


def test_cdnow_log_likelihood_matches_published_within_half_percent(cdnow_report_dict):
    assert cdnow_report_dict["log_likelihood"] == pytest.approx(-9582.4, rel=0.005)
    # and much tighter than that: CLVTools reports -9582.429 for the same MLE
    assert cdnow_report_dict["log_likelihood"] == pytest.approx(-9582.429, abs=0.01)


def test_cdnow_holdout_actual_is_1882_and_forecast_error_is_bounded(cdnow_report_dict):
    hold = cdnow_report_dict["holdout"]
    assert hold["weeks"] == pytest.approx(39.0)
    assert hold["customers"] == 2357
    assert hold["calibration_repeat_transactions"] == 2457
    assert hold["actual_repeat_transactions"] == CDNOW_ACTUAL_HOLDOUT_REPEATS == 1882
    assert hold["predicted_repeat_transactions"] == pytest.approx(MEASURED_PREDICTED_HOLDOUT, abs=1.0)
    assert abs(hold["relative_error"]) < HOLDOUT_RELATIVE_ERROR_BOUND
    assert hold["error"] == pytest.approx(hold["predicted_repeat_transactions"] - 1882)


def test_cdnow_report_has_the_cli_json_shape(cdnow_report_dict):
    r = cdnow_report_dict
    assert r["model"] == "bgnbd+gammagamma"
    assert set(r["params"]) == {"r", "alpha", "a", "b", "p", "q", "v"}
    assert {"predicted_repeat_transactions", "actual_repeat_transactions"} <= set(r["holdout"])
    import json

    json.dumps(r)  # plain JSON types only


@pytest.mark.parametrize("name", ["p", "q", "v"])
def test_cdnow_gamma_gamma_on_946_repeaters_matches_published(cdnow_report_dict, name):
    assert cdnow_report_dict["spend"]["repeat_customers"] == 946
    assert cdnow_report_dict["params"][name] == pytest.approx(PUBLISHED_GAMMA_GAMMA[name], rel=0.005)


def test_cdnow_spend_frequency_correlation_matches_published(cdnow_report_dict):
    assert cdnow_report_dict["spend"]["corr_frequency_value"] == pytest.approx(0.113884, abs=1e-4)


def test_calibration_summary_reproduces_the_shipped_cdnow_summary(cdnow_dir):
    from etl.datasets.cdnow import CALIBRATION_END, read_cdnow_transactions, to_value_transactions
    from recsys.value.rfm import calibration_summary

    ours = calibration_summary(to_value_transactions(read_cdnow_transactions(cdnow_dir)), CALIBRATION_END)
    shipped = pd.read_csv(cdnow_dir / "cdnow_customers_summary_with_transactions.csv")
    shipped.index = shipped["ID"].astype(str).str.zfill(4)
    ours = ours.loc[shipped.index]
    assert np.array_equal(ours["frequency"].to_numpy(), shipped["x"].to_numpy())
    assert np.allclose(ours["recency"], shipped["t_x"], atol=0.006)
    assert np.allclose(ours["T"], shipped["T"], atol=0.006)
    assert np.allclose(ours["monetary_value"], shipped["zbar"], atol=0.006)


def test_conditional_expectation_of_a_brand_new_customer_equals_the_unconditional_one():
    model = BetaGeoModel(params={"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    t = np.array([1.0, 10.0, 39.0, 78.0])
    cond = model.conditional_expected_transactions(t, np.zeros(4), np.zeros(4), np.zeros(4))
    assert np.allclose(cond, model.expected_transactions(t), rtol=1e-10)


def test_p_alive_is_one_without_repeats_and_falls_with_time_since_last_purchase():
    model = BetaGeoModel(params={"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert model.p_alive([0], [0], [30])[0] == pytest.approx(1.0)
    recent, stale = model.p_alive([3, 3], [29, 5], [30, 30])
    assert 0 < stale < recent < 1


def test_bgnbd_recovers_the_parameters_of_simulated_customers():
    rng = np.random.default_rng(7)
    true = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    n, T = 6000, 52.0
    x = np.zeros(n)
    t_x = np.zeros(n)
    lam = rng.gamma(true["r"], 1.0 / true["alpha"], n)
    p = rng.beta(true["a"], true["b"], n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    fit = BetaGeoModel().fit(x, t_x, np.full(n, T)).params
    for k in true:
        assert fit[k] == pytest.approx(true[k], rel=0.25), k


def test_gamma_gamma_expected_value_shrinks_towards_the_population_mean():
    gg = GammaGammaModel(params={"p": 6.25, "q": 3.74, "v": 15.44})
    pop = gg.population_mean_value()
    low, high, none = gg.conditional_expected_value([1, 1, 0], [10.0, 100.0, 0.0])
    assert low < pop < high
    assert none == pytest.approx(pop)
    many = gg.conditional_expected_value([50], [100.0])[0]
    assert abs(many - 100.0) < abs(high - 100.0)  # more transactions -> closer to the own mean


def test_undiscounted_clv_is_expected_transactions_times_value():
    model = BetaGeoModel(params={"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    x, t_x, T = np.array([2.0, 0.0]), np.array([30.0, 0.0]), np.array([38.0, 38.0])
    clv = customer_lifetime_value(model, x, t_x, T, np.array([20.0, 20.0]), horizon=52, step=4, discount_rate=0.0)
    expected = model.conditional_expected_transactions(52, x, t_x, T) * 20.0
    assert np.allclose(clv, expected)
    discounted = customer_lifetime_value(model, x, t_x, T, 20.0, horizon=52, step=4, discount_rate=0.01)
    assert np.all(discounted < clv)
