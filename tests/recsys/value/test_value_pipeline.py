"""The customer-value pipeline on ciao: propensity vs BG/NBD, report, write-back, audiences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graph.store import EmbeddedStore
from recsys.value.audience import build_audience
from recsys.value.pipeline import USER_COLUMNS, load_result, run_value_job, save_result, write_back
from recsys.value.report import render_report


def test_every_user_gets_value_influence_and_a_segment(ciao_value, ciao_snapshot):
    users = ciao_value.users
    assert list(users.columns[: len(USER_COLUMNS)]) == list(USER_COLUMNS)
    assert len(users) == ciao_snapshot.n_users
    assert users["segment_id"].notna().all() and (users["segment_id"] != "").all()
    assert (users["clv"] >= 0).all() and np.isfinite(users["clv"]).all()
    assert (users["weighted_value"] >= users["clv"] - 1e-12).all()
    assert users["pagerank"].sum() == pytest.approx(1.0)
    assert ((users["churn_risk"] >= 0) & (users["churn_risk"] <= 1)).all()
    assert ciao_value.value_unit == "interactions"
    seg = ciao_value.metrics["segments"]
    assert seg["modularity"] > 0.3 and seg["segments"] == len(ciao_value.segments)
    assert ciao_value.segments["size"].sum() == len(users)


def test_propensity_beats_the_bgnbd_baseline_on_the_temporal_holdout(ciao_value):
    prop = ciao_value.metrics["propensity"]
    model, base = prop["model"], prop["bgnbd_baseline"]
    # measured: AUC 0.982 vs 0.928, top-decile precision 0.485 vs 0.430 (the stronger recency
    # baseline: tests/recsys/value/test_value_propensity.py)
    assert model["auc"] > base["auc"]
    assert model["precision_at_top_decile"] >= base["precision_at_top_decile"]
    assert model["f1"] > 0.5 and 0.0 < prop["base_rate"] < 0.2
    recent = prop["recently_active"]  # the harder population: customers active in the last year
    assert recent["model"]["auc"] > recent["bgnbd_baseline"]["auc"]


def test_explanations_are_shap_contributions_and_importance_is_reported(ciao_value):
    users = ciao_value.users
    explained = users[users["explanation"].map(len) > 0]
    assert len(explained) == users["frequency"].notna().sum()
    first = explained["explanation"].iloc[0]
    assert {"feature", "value", "contribution"} == set(first[0])
    assert not ciao_value.importance.empty
    assert ciao_value.importance["importance_mean"].iloc[0] > 0


def test_clv_holdout_check_compares_predicted_and_actual(ciao_value):
    hold = ciao_value.metrics["clv"]["holdout"]
    assert hold["actual_repeat_transactions"] > 0
    assert abs(hold["relative_error_value"]) < 0.25  # measured -3.2 % on value, -13.5 % on transactions
    assert len(ciao_value.calibration) == 10


def test_ciao_report_is_generated_with_embedded_plots(ciao_value, tmp_path):
    page = render_report(ciao_value)
    assert page.count("data:image/png;base64,") >= 7
    assert "modularity" in page and "AUC" in page
    assert "reliability diagram" in page and "ECE" in page and "recency only" in page
    assert "model without graph features" in page and "suggested action" in page


def test_write_back_save_load_and_job(ciao_value, ciao_snapshot, tmp_path):
    store = EmbeddedStore(tmp_path / "store", "ciao")
    written = write_back(ciao_value, store, "v-test")
    assert written["segment_write"] == "score"
    scores = store.read_scores("User")
    assert {"clv", "influence", "weighted_value", "segment", "rfm_segment"} <= set(scores.columns)
    assert scores["segment"].notna().all()
    seg_scores = store.read_scores("Segment")
    assert len(seg_scores) == len(ciao_value.segments)

    save_result(ciao_value, tmp_path)
    back = load_result(tmp_path, "ciao")
    uid = ciao_value.users["user_id"].iat[0]
    assert back.user(uid) == ciao_value.user(uid)
    assert back.segment("C01")["top_categories"] == ciao_value.segment("C01")["top_categories"]
    json.dumps(back.user(uid))


def test_store_with_write_segments_gets_segments_through_it(ciao_value, tmp_path):
    calls = {}

    class SegmentStore(EmbeddedStore):  # the Neo4j store's write_segments signature
        def write_segments(self, assignments, segments=None):
            calls["assignments"], calls["segments"] = assignments, segments
            return len(assignments)

    store = SegmentStore(tmp_path / "store", "ciao")
    assert write_back(ciao_value, store, "v1")["segment_write"] == "write_segments"
    assert list(calls["assignments"].columns) == ["user_id", "segment_id"]
    assert len(calls["assignments"]) == len(ciao_value.users)
    seg = calls["segments"]
    assert seg["segment_id"].tolist() == ciao_value.segments["segment_id"].tolist()
    def neo4j_property(v):  # a scalar or a list of scalars (Neo4j list property), never a JSON string
        if isinstance(v, list):
            return all(isinstance(x, (str, int, float)) for x in v)
        return isinstance(v, (str, int, float)) and not (isinstance(v, str) and v.startswith(("[", "{")))

    assert all(seg[c].map(neo4j_property).all() for c in seg.columns)
    assert "label" in seg.columns
    assert "segment" not in store.read_scores("User").columns


def test_category_audience_with_celf_seeds_has_reasons(ciao_value, ciao_snapshot):
    aud = build_audience(ciao_value, ciao_snapshot, category="10", size=25, seed_influencers=2, n_worlds=50)
    assert len(aud) == 25 and aud["user_id"].is_unique
    seeding = aud.attrs["seeding"]
    n_seeds = int((aud["role"] == "influencer_seed").sum())
    assert n_seeds == seeding["chosen"] <= 2
    if not ciao_value.metrics["influence"]["detected"]:  # untested influence seeds nobody
        assert n_seeds == 0 and "not detected" in seeding["stopped"]
    targets = aud[aud["role"] == "target"]
    assert targets["expected_organic_value"].is_monotonic_decreasing
    assert aud["reason"].str.len().min() > 20


def test_item_audience_excludes_users_who_already_have_it(ciao_value, ciao_snapshot):
    counts = np.diff(ciao_snapshot.interactions.tocsc().indptr)
    j = int(np.argmax(counts))
    item = ciao_snapshot.item_ids[j]
    aud = build_audience(ciao_value, ciao_snapshot, item_id=item, size=30)
    owners = set(ciao_snapshot.user_ids[ciao_snapshot.interactions.tocsc()[:, j].nonzero()[0]])
    assert len(aud) == 30 and not owners & set(aud["user_id"])
    with pytest.raises(ValueError):
        build_audience(ciao_value, ciao_snapshot, item_id="no-such-item", size=3)
    with pytest.raises(ValueError):
        build_audience(ciao_value, ciao_snapshot, item_id=item, category="10", size=3)


def test_value_without_timestamps_falls_back_to_interaction_counts(tmp_path):
    from tests.conftest import synthetic_snapshot
    from recsys.value.pipeline import compute_customer_value

    snap = synthetic_snapshot()
    no_ts = snap.with_interactions(snap.interactions)
    import dataclasses
    import scipy.sparse as sp

    ts = sp.csr_matrix(no_ts.timestamps, copy=True)
    ts.data[:] = np.nan
    no_ts = dataclasses.replace(no_ts, timestamps=ts)
    result = compute_customer_value(no_ts, min_segment_size=3)
    assert result.metrics["clv"]["method"].startswith("historical-interaction-count")
    assert result.metrics["influence"]["test"]["can_run"] is False  # no timestamps: no influence test
    assert np.array_equal(result.users["weighted_value"], result.users["clv"])
    assert np.array_equal(result.users["clv"], np.diff(snap.interactions.indptr))
    assert result.users["segment_id"].notna().all()
    aud = build_audience(result, no_ts, category="cat1", size=5, seed_influencers=1, n_worlds=20)
    assert len(aud) == 5 and (aud.loc[aud["role"] == "target", "expected_organic_value"] > 0).all()
    summary = run_value_job(no_ts, EmbeddedStore(tmp_path / "s", "synthetic"), tmp_path, "v0", min_segment_size=3)
    assert summary["written"]["users"] == snap.n_users
    assert (tmp_path / "reports" / "value-synthetic.html").exists()


def test_money_transactions_set_the_value_unit():
    from tests.conftest import synthetic_snapshot
    from recsys.value.pipeline import compute_customer_value, normalise_transactions

    tx = pd.DataFrame({"user_id": ["1", "1"], "ts": [1.0e9, 1.1e9], "amount": [9.5, 3.0]})
    out = normalise_transactions(tx)
    assert list(out.columns) == ["customer_id", "date", "value", "line"] and out["value"].sum() == 12.5

    from tests.recsys.value.test_value_transactions import many_customers

    snap = synthetic_snapshot()
    # A BG/NBD-like purchase process (random timestamps without drop-out give a degenerate fit,
    # a ~ 1e-46, which the job now refuses: tests/recsys/value/test_value_transactions.py).
    money = many_customers(n=29, seed=0)
    money["user_id"] = [f"u{int(c[1:]):02d}" for c in money["user_id"]]
    money = pd.concat([money, pd.DataFrame({"user_id": ["not-a-user"], "date": ["2023-06-01"], "amount": [1.0]})])
    result = compute_customer_value(snap, money, value_unit="EUR", with_propensity=False, min_segment_size=3)
    assert result.value_unit == "EUR" and result.metrics["transactions_unknown_user"] == 1
    assert result.metrics["clv"]["method"] == "bgnbd+gammagamma"
    buyers = result.users["frequency"].notna()
    assert (result.users.loc[buyers, "clv"] > 0).all() and (result.users.loc[~buyers, "clv"] == 0).all()
