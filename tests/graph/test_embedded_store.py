"""EmbeddedStore: idempotent upserts, replace-by-key, atomic write-back, vector round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.store import EmbeddedStore, StoreError, empty_table  # noqa: F401  (StoreError: part of the API under test)
from tests.graph.conftest import assert_same_table


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "store", "filmtrust")


def _load(store, tables):
    for table, frame in tables.items():
        store.upsert(table, frame)


def test_upsert_twice_leaves_tables_unchanged(store, filmtrust_tables):
    _load(store, filmtrust_tables)
    first = {t: store.read_table(t) for t in filmtrust_tables}
    counts = store.counts()
    _load(store, filmtrust_tables)
    assert store.counts() == counts
    for t in filmtrust_tables:
        assert_same_table(store.read_table(t), first[t])
    assert counts["interactions"] == len(filmtrust_tables["interactions"])


def test_upsert_replaces_the_row_with_the_same_key(store):
    store.upsert("interactions", pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i2"], "kind": "rating", "value": [1.0, 2.0]}))
    store.upsert("interactions", pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "kind": ["rating"], "value": [5.0]}))
    got = store.read_table("interactions")
    assert got[["item_id", "value"]].to_dict("list") == {"item_id": ["i1", "i2"], "value": [5.0, 2.0]}


def test_read_table_of_an_empty_store_has_the_canonical_columns(store):
    for table in ("users", "items", "interactions", "reviews", "follows"):
        assert list(store.read_table(table).columns) == list(empty_table(table).columns)
        assert store.counts()[table] == 0


def test_snapshot_of_filmtrust_matches_the_files(store, filmtrust_tables):
    _load(store, filmtrust_tables)
    snap = store.snapshot()
    inter = filmtrust_tables["interactions"]
    assert snap.interactions.nnz == len(inter)
    assert snap.follows.nnz == len(filmtrust_tables["follows"])
    assert np.isclose(snap.interactions.sum(), inter["value"].sum())


def test_read_vectors_round_trip(store):
    rng = np.random.default_rng(0)
    ids = np.array([f"i{k}" for k in range(50)])
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    assert store.write_vectors("Item", ids, vecs, "als_embedding", "v1") == 50
    got_ids, got_vecs, version = store.read_vectors("Item", "als_embedding")
    assert list(got_ids) == list(ids)
    assert got_vecs.dtype == np.float32 and np.array_equal(got_vecs, vecs)
    assert version == "v1"


def test_read_vectors_of_an_unknown_name_is_empty(store):
    ids, vecs, version = store.read_vectors("Item", "nothing")
    assert len(ids) == 0 and vecs.shape[0] == 0 and version is None


def test_write_vectors_with_bad_shape_leaves_the_previous_vectors(store):
    ids = np.array(["a", "b"])
    store.write_vectors("User", ids, np.ones((2, 4), np.float32), "emb", "v1")
    with pytest.raises(ValueError):
        store.write_vectors("User", ids, np.ones((3, 4), np.float32), "emb", "v2")
    _, vecs, version = store.read_vectors("User", "emb")
    assert version == "v1" and vecs.shape == (2, 4)


def test_write_back_killed_midway_leaves_the_previous_version(store, monkeypatch):
    ids = np.array(["a", "b"])
    store.write_vectors("User", ids, np.ones((2, 4), np.float32), "emb", "v1")
    store.write_scores("User", ids, {"clv": np.array([1.0, 2.0])}, "v1")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError):
        store.write_vectors("User", ids, np.zeros((2, 4), np.float32), "emb", "v2")
    with pytest.raises(OSError):
        store.write_scores("User", ids, {"clv": np.array([9.0, 9.0])}, "v2")
    monkeypatch.undo()
    _, vecs, version = store.read_vectors("User", "emb")
    assert version == "v1" and np.all(vecs == 1.0)
    scores = store.read_scores("User")
    assert scores["clv"].tolist() == [1.0, 2.0] and set(scores["clv_version"]) == {"v1"}
    leftovers = [p.name for p in store.dir.rglob(".*")]
    assert leftovers == []  # no temporary files left behind


def test_write_scores_merges_with_earlier_scores(store):
    store.write_scores("User", np.array(["a", "b"]), {"clv": np.array([1.0, 2.0])}, "v1")
    store.write_scores("User", np.array(["b", "c"]), {"influence": np.array([0.5, 0.7])}, "v2")
    got = store.read_scores("User").sort_values("id").reset_index(drop=True)
    assert got["id"].tolist() == ["a", "b", "c"]
    assert got["clv"].tolist()[:2] == [1.0, 2.0] and np.isnan(got["clv"].tolist()[2])
    assert np.isnan(got["influence"].tolist()[0]) and got["influence"].tolist()[1:] == [0.5, 0.7]


def test_clear_empties_the_namespace(store, filmtrust_tables):
    _load(store, filmtrust_tables)
    store.clear()
    assert all(v == 0 for v in store.counts().values())


def test_bad_dataset_name_is_refused(tmp_path):
    with pytest.raises(ValueError):
        EmbeddedStore(tmp_path, "bad name!")


def test_concurrent_processes_appending_and_compacting_lose_no_row(tmp_path):
    """Issue 14 soak finding: a server's replayer appending parts while another process compacts
    the table (read_table after 16 parts) must not lose a part."""
    import subprocess
    import sys
    import textwrap

    from graph.store import EmbeddedStore

    code = textwrap.dedent(f"""
        import sys, pandas as pd
        from graph.store import EmbeddedStore
        store = EmbeddedStore({str(tmp_path)!r}, "ds")
        me = sys.argv[1]
        for i in range(60):
            store.upsert("follows", pd.DataFrame({{"follower_id": [f"{{me}}-{{i}}"], "followee_id": ["x"]}}))
            if i % 5 == 0:
                store.read_table("follows")  # compacts once there are > 16 parts
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b", "c")]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    assert len(EmbeddedStore(tmp_path, "ds").read_table("follows")) == 180
