"""BTYD inputs from the field (issue 10 item 7): every case a shop hit is pinned here."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from etl.errors import EtlInputError
from etl.pseudonymise import Pseudonymiser
from etl.transactions import read_transactions
from graph.snapshot import build_snapshot
from graph.store import EmbeddedStore
from recsys.value.clv import BetaGeoModel
from recsys.value.pipeline import (
    TransactionInputError,
    ValueFitError,
    check_value_fit,
    compute_customer_value,
    prepare_transactions,
    run_value_job,
)

KEY = b"value-transactions-test-key-0123456789"  # >= 32 bytes, >= 8 distinct: accepted in production
PSEUDO = Pseudonymiser(KEY)


def shop_snapshot(raw_ids=("alice", "bob", "carol", "dave", "erin", "frank")):
    """A snapshot whose user ids are pseudonyms of ``raw_ids`` (as the ETL stores a shop's users)."""
    users = pd.DataFrame({"user_id": [PSEUDO.user(u) for u in raw_ids]})
    items = pd.DataFrame({"item_id": ["i1", "i2"], "category": ["a", "b"]})
    inter = pd.DataFrame({"user_id": users["user_id"], "item_id": "i1", "kind": "purchase", "value": 1.0,
                          "ts": 1.7e9})
    follows = pd.DataFrame({"follower_id": users["user_id"][:2].to_numpy(),
                            "followee_id": users["user_id"][1:3].to_numpy()})
    return build_snapshot("shop", users, items, inter, follows)


def many_customers(n=60, seed=0, start="2023-01-01", weeks=78):
    """A money transaction log for n raw ids drawn from a BG/NBD process (purchase rate ~ Gamma,
    drop-out after each purchase ~ Beta), so BG/NBD and Gamma-Gamma have interior fits."""
    rng = np.random.default_rng(seed)
    rows = []
    end = pd.Timestamp(start) + pd.Timedelta(weeks=weeks)
    for c in range(n):
        lam = rng.gamma(2.0, 0.25)  # purchases per week while alive
        p = rng.beta(2.0, 4.0)  # drop-out probability after each purchase
        t = pd.Timestamp(start) + pd.Timedelta(days=int(rng.integers(0, 56)))
        while t <= end:
            rows.append((f"c{c:03d}", t.strftime("%Y-%m-%d"), float(np.round(rng.gamma(3.0, 10.0), 2))))
            if rng.random() < p:
                break
            t = t + pd.Timedelta(days=max(1, int(rng.exponential(7.0 / lam))))
    return pd.DataFrame(rows, columns=["user_id", "date", "amount"])


def write_csv(tmp_path, frame, name="tx.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- raw ids are pseudonymised, never dropped
def test_raw_shop_ids_are_pseudonymised_and_used(tmp_path):
    tx = many_customers()
    snap = shop_snapshot(tuple(sorted(tx["user_id"].unique())))
    read = read_transactions(write_csv(tmp_path, tx), PSEUDO)
    assert read["customer_id"].str.match(r"^u_[0-9a-f]{20}$").all()
    assert set(read["customer_id"]) == set(snap.user_ids)
    assert not set(tx["user_id"]) & set(read["customer_id"])  # no raw id survives
    result = compute_customer_value(snap, read, value_unit="EUR", with_propensity=False, min_segment_size=2)
    assert result.metrics["transactions"]["quarantined"] == {}
    assert (result.users["rfm_segment"] != "no_transactions").all()
    assert result.metrics["clv"]["method"] == "bgnbd+gammagamma"


def test_ids_that_already_are_pseudonyms_are_kept(tmp_path):
    pid = PSEUDO.user("alice")
    read = read_transactions(write_csv(tmp_path, pd.DataFrame({"user_id": [pid, "alice"], "date": ["2024-01-01"] * 2,
                                                                  "amount": [1, 2]})), PSEUDO)
    assert read["customer_id"].tolist() == [pid, pid]


def test_transactions_matching_no_user_fail_instead_of_being_silently_dropped():
    snap = shop_snapshot()
    raw = pd.DataFrame({"user_id": ["alice", "bob"], "date": ["2024-01-01", "2024-02-01"], "amount": [5.0, 6.0]})
    with pytest.raises(TransactionInputError, match="none of the 2 transaction rows"):
        compute_customer_value(snap, raw, with_propensity=False, min_segment_size=2)


def test_unknown_users_are_quarantined_with_a_reason():
    snap = shop_snapshot()
    tx = pd.DataFrame({"user_id": [PSEUDO.user("alice"), PSEUDO.user("nobody")], "date": ["2024-01-01"] * 2,
                       "amount": [5.0, 6.0]})
    used, quarantine, report = prepare_transactions(tx, snap)
    assert len(used) == 1 and quarantine["reason"].tolist() == ["unknown_user"]
    assert report["quarantined"] == {"unknown_user": 1}


# ---------------------------------------------------------------- dates
def test_mixed_iso_dates_and_datetimes_parse(tmp_path):
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "date": ["2024-01-06T10:00", "2024-01-06", "2024-01-07 09:00+01:00"],
                          "amount": [1, 2, 3]})
    read = read_transactions(write_csv(tmp_path, frame), PSEUDO)
    assert read["date"].tolist() == [pd.Timestamp("2024-01-06 10:00"), pd.Timestamp("2024-01-06"),
                                     pd.Timestamp("2024-01-07 08:00")]
    assert read["line"].tolist() == [2, 3, 4]


def test_an_unparseable_date_names_file_line_and_field(tmp_path):
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "date": ["2024-01-06", "06/01/2024", "2024-01-08"],
                          "amount": [1, 2, 3]})
    path = write_csv(tmp_path, frame)
    with pytest.raises(EtlInputError) as err:
        read_transactions(path, PSEUDO)
    assert err.value.line == 3 and err.value.field == "date" and str(path) in str(err.value)


def test_a_bad_amount_names_its_line(tmp_path):
    path = write_csv(tmp_path, pd.DataFrame({"user_id": ["a", "b"], "date": ["2024-01-06"] * 2, "amount": ["1", "x"]}))
    with pytest.raises(EtlInputError) as err:
        read_transactions(path, PSEUDO)
    assert (err.value.line, err.value.field) == (3, "amount")


def test_frame_with_a_bad_date_raises_a_named_input_error():
    snap = shop_snapshot()
    tx = pd.DataFrame({"user_id": [PSEUDO.user("alice")] * 2, "date": ["2024-01-06", "yesterday"], "amount": [1, 2]})
    with pytest.raises(TransactionInputError, match="row 2: field 'date'"):
        prepare_transactions(tx, snap)


# ---------------------------------------------------------------- refunds and zero amounts
def test_refund_and_zero_days_are_not_repeat_occasions():
    snap = shop_snapshot()
    a, b = PSEUDO.user("alice"), PSEUDO.user("bob")
    tx = pd.DataFrame({
        "user_id": [a, a, a, a, b, b, b],
        "date": ["2024-01-01", "2024-02-01", "2024-02-01", "2024-03-01", "2024-01-05", "2024-01-20", "2024-02-10"],
        "amount": [20.0, 10.0, -4.0, -5.0, 8.0, 0.0, 12.0],
    })
    used, quarantine, report = prepare_transactions(tx, snap)
    # alice: 01-01 (+20), 02-01 (net +6, an occasion), 03-01 (refund only: not an occasion); bob: 01-20 (zero).
    assert sorted(quarantine["reason"]) == ["non_positive_net_spend"] * 2
    assert report["quarantined"] == {"non_positive_net_spend": 2}
    from recsys.value.rfm import calibration_summary

    summ = calibration_summary(used.drop(columns="line"), "2024-06-30")
    assert summ.loc[a, "frequency"] == 1 and summ.loc[a, "monetary_value"] == pytest.approx(6.0)
    assert summ.loc[b, "frequency"] == 1 and summ.loc[b, "monetary_value"] == pytest.approx(12.0)
    assert (summ["monetary_value"] >= 0).all()


def test_served_monetary_value_is_never_negative_with_refunds():
    tx = many_customers(seed=3)
    refunds = tx.groupby("user_id").tail(1).assign(amount=lambda f: -f["amount"] - 5.0)  # a refund day wipes a purchase
    refunds["date"] = (pd.to_datetime(refunds["date"]) + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
    tx = pd.concat([tx, refunds], ignore_index=True)
    tx["user_id"] = [PSEUDO.user(u) for u in tx["user_id"]]
    snap = shop_snapshot(tuple(sorted({u for u in many_customers(seed=3)["user_id"]})))
    result = compute_customer_value(snap, tx, value_unit="EUR", with_propensity=False, min_segment_size=2)
    buyers = result.users["frequency"].notna()
    assert (result.users.loc[buyers, "monetary_value"] >= 0).all()
    assert result.metrics["transactions"]["quarantined"]["non_positive_net_spend"] == len(refunds)


# ---------------------------------------------------------------- observation end
def test_rows_after_the_observation_end_are_quarantined_and_T_ends_there():
    tx = many_customers(seed=1)
    late = pd.DataFrame({"user_id": ["c000", "c001"], "date": ["2031-01-01", "2031-02-01"], "amount": [99.0, 99.0]})
    end = "2024-06-30"
    tx = pd.concat([tx, late], ignore_index=True)
    tx["user_id"] = [PSEUDO.user(u) for u in tx["user_id"]]
    snap = shop_snapshot(tuple(sorted(many_customers(seed=1)["user_id"].unique())))
    result = compute_customer_value(snap, tx, value_unit="EUR", with_propensity=False, min_segment_size=2,
                                    observation_end=end)
    rep = result.metrics["transactions"]
    assert rep["observation_end"] == end and rep["quarantined"] == {"after_observation_end": 2}
    assert result.metrics["clv"]["end"] == end
    assert set(result.quarantine["reason"]) == {"after_observation_end"}
    users = result.users.set_index("user_id")
    first = pd.to_datetime(tx[~tx["date"].str.startswith("2031")].groupby("user_id")["date"].min())
    expected_T = (pd.Timestamp(end) - first).dt.days / 7.0
    assert np.allclose(users.loc[expected_T.index, "T"], expected_T)


# ---------------------------------------------------------------- degenerate fits are not served
def test_boundary_and_q_below_one_fits_are_refused():
    with pytest.raises(ValueFitError, match="a = 4e-13"):
        check_value_fit(BetaGeoModel(params={"r": 0.9, "alpha": 1.2, "a": 4e-13, "b": 7.0}), None)
    from recsys.value.clv import GammaGammaModel

    with pytest.raises(ValueFitError, match="q = 0.9"):
        check_value_fit(None, GammaGammaModel(params={"p": 4.0, "q": 0.9, "v": 2.5}))
    check_value_fit(BetaGeoModel(params={"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43}),
                    GammaGammaModel(params={"p": 6.25, "q": 3.74, "v": 15.44}))


def test_a_degenerate_fit_fails_the_job_and_the_previous_result_keeps_serving(tmp_path, monkeypatch):
    tx = many_customers(seed=2)
    tx["user_id"] = [PSEUDO.user(u) for u in tx["user_id"]]
    snap = shop_snapshot(tuple(sorted(many_customers(seed=2)["user_id"].unique())))
    store = EmbeddedStore(tmp_path / "store", "shop")
    run_value_job(snap, store, tmp_path, "v1", tx, value_unit="EUR", with_propensity=False, min_segment_size=2)
    metrics = tmp_path / "value" / "shop" / "metrics.json"
    before = metrics.read_bytes()
    scores_before = store.read_scores("User")

    import recsys.value.propensity as propensity

    real = propensity.fit_value_models

    def degenerate(summary, penalizer=1e-3):
        bg, gg = real(summary, penalizer)
        bg.params["a"] = 4e-13  # what a sparse shop produced in the field
        return bg, gg

    monkeypatch.setattr(propensity, "fit_value_models", degenerate)
    with pytest.raises(ValueFitError):
        run_value_job(snap, store, tmp_path, "v2", tx, value_unit="EUR", with_propensity=False, min_segment_size=2)
    assert metrics.read_bytes() == before
    assert store.read_scores("User").equals(scores_before)


# ---------------------------------------------------------------- every CLV is explained
def test_every_clv_has_an_explanation_including_a_one_purchase_customer_at_T0():
    tx = many_customers(seed=4)
    newcomer = pd.DataFrame({"user_id": ["zz-new"], "date": [pd.to_datetime(tx["date"]).max().strftime("%Y-%m-%d")],
                             "amount": [30.0]})
    tx = pd.concat([tx, newcomer], ignore_index=True)
    ids = tuple(sorted(tx["user_id"].unique())) + ("no-purchase",)
    tx["user_id"] = [PSEUDO.user(u) for u in tx["user_id"]]
    snap = shop_snapshot(ids)
    result = compute_customer_value(snap, tx, value_unit="EUR", with_propensity=False, min_segment_size=2)
    users = result.users.set_index("user_id")
    assert users["clv_explanation"].str.len().min() > 20
    new = users.loc[PSEUDO.user("zz-new")]
    assert new["T"] == 0 and "T = 0" in new["clv_explanation"]
    assert "CLV 0" in users.loc[PSEUDO.user("no-purchase"), "clv_explanation"]


# ---------------------------------------------------------------- the command line, end to end
def _cli(args, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update({"SOCIALREC_HOME": str(tmp_path / "home"), "SOCIALREC_PSEUDONYM_KEY": KEY.decode(),
                "SOCIALREC_STORE": "embedded"})
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_cli_value_with_raw_shop_ids_and_a_bad_date(tmp_path):
    tx = many_customers(seed=5)
    shop = tmp_path / "shop"
    shop.mkdir()
    pd.DataFrame({"user_id": tx["user_id"], "item_id": "i1", "kind": "purchase", "value": 1,
                  "ts": tx["date"]}).to_csv(shop / "interactions.csv", index=False)
    good = write_csv(tmp_path, tx)
    r = _cli(["value", "--dataset", f"csv:{shop}", "--transactions", str(good), "--value-unit", "EUR",
              "--no-propensity", "--no-progress", "--store", "embedded", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["transactions"]["used"] == len(tx) and out["transactions"]["quarantined"] == {}
    assert out["clv"]["method"] == "bgnbd+gammagamma"
    assert "alice" not in r.stdout and "c000" not in r.stdout and "c000" not in r.stderr

    bad = write_csv(tmp_path, pd.concat([tx, pd.DataFrame({"user_id": ["c001"], "date": ["31.12.2023"],
                                                             "amount": [5.0]})], ignore_index=True), "bad.csv")
    r = _cli(["value", "--dataset", f"csv:{shop}", "--transactions", str(bad), "--no-propensity", "--no-progress",
              "--store", "embedded", "--json"], tmp_path)
    assert r.returncode == 2 and f"bad.csv:{len(tx) + 2}" in r.stderr and "date" in r.stderr
    assert "Traceback" not in r.stderr
