"""run_etl end to end into an EmbeddedStore: report shape, quarantine file, idempotence."""

from __future__ import annotations

import pandas as pd

from etl.pipeline import run_etl
from graph.store import EmbeddedStore


def test_reload_leaves_counts_and_fingerprint_unchanged(tmp_path, data_dir, pseudonym_key):
    store = EmbeddedStore(tmp_path / "store", "filmtrust")
    args = dict(data_dir=data_dir, cache_dir=tmp_path / "cache", pseudonym_key=pseudonym_key, quarantine_dir=tmp_path / "q")
    first = run_etl("filmtrust", store, progress=False, batch_size=10_000, **args)
    counts, fp = store.counts(), store.snapshot().fingerprint()
    tables = {t: store.read_table(t) for t in ("users", "interactions", "follows")}
    second = run_etl("filmtrust", store, progress=False, **args)
    assert first["tables"] == second["tables"]
    assert store.counts() == counts
    assert store.snapshot().fingerprint() == fp
    for t, frame in tables.items():
        pd.testing.assert_frame_equal(store.read_table(t), frame)
    assert counts == {"users": 1_642, "items": 2_071, "interactions": 35_494, "reviews": 0, "follows": 1_853}
    assert fp["nnz"] == 35_494 and fp["follows_nnz"] == 1_853


def test_report_shape_and_quarantine_file(tmp_path, data_dir, pseudonym_key):
    store = EmbeddedStore(tmp_path / "store", "filmtrust")
    out = run_etl(
        "filmtrust", store, data_dir, tmp_path / "cache", pseudonym_key, tmp_path / "q", progress=False
    )
    assert out["dataset"] == "filmtrust"
    assert set(out["tables"]) == {"users", "items", "interactions", "reviews", "follows"}
    for line in out["tables"].values():
        assert set(line) == {"read", "loaded", "quarantined"}
    q = pd.read_csv(tmp_path / "q" / "filmtrust" / "quarantine.csv")
    assert list(q.columns) == ["table", "source", "reason", "raw"]
    assert len(q) == 3 and set(q["reason"]) == {"duplicate"}
    assert q["source"].str.startswith("ratings.txt:").all()
    assert not q["raw"].str.contains('"user_id":"308"').any()
