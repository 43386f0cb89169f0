"""Neo4jStore against the REAL Neo4j server (skipped when SOCIALREC_NEO4J_URI is unset)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.neo4j_store import Neo4jStore, StoreError, vector_index_name
from graph.store import TABLE_KEYS, EmbeddedStore
from tests.graph.conftest import TEST_PSEUDONYM_KEY, assert_same_table, new_dataset_name

pytestmark = pytest.mark.neo4j
REPO = Path(__file__).resolve().parents[2]
TABLES = ("users", "items", "interactions", "reviews", "follows")


def _embedded(tmp_path, tables, name="ref") -> EmbeddedStore:
    store = EmbeddedStore(tmp_path / "store", name)
    for table, frame in tables.items():
        store.upsert(table, frame)
    return store


def _canonical_counts(store) -> dict[str, int]:
    return {k: v for k, v in store.counts().items()}


# ---------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("how", ["load", "upsert"])
def test_snapshot_is_identical_to_the_embedded_store(neo4j_store, filmtrust_tables, tmp_path, how):
    if how == "load":
        neo4j_store.load(filmtrust_tables, batch_size=5000)
    else:
        for table, frame in filmtrust_tables.items():
            for start in range(0, len(frame), 20_000):
                neo4j_store.upsert(table, frame.iloc[start : start + 20_000])
    embedded = _embedded(tmp_path, filmtrust_tables)

    for table in TABLES:
        assert_same_table(neo4j_store.read_table(table), embedded.read_table(table))
    a, b = neo4j_store.snapshot(), embedded.snapshot()
    assert a.fingerprint() == b.fingerprint()
    for name in ("interactions", "timestamps", "follows"):
        ma, mb = getattr(a, name), getattr(b, name)
        assert ma.shape == mb.shape and ma.dtype == mb.dtype
        assert np.array_equal(ma.indptr, mb.indptr) and np.array_equal(ma.indices, mb.indices)
        assert np.array_equal(ma.data, mb.data, equal_nan=True)
    assert list(a.user_ids) == list(b.user_ids) and list(a.item_ids) == list(b.item_ids)
    assert np.array_equal(a.item_category, b.item_category) and list(a.categories) == list(b.categories)


def test_ciao_slice_round_trips_reviews_categories_and_timestamps(neo4j_store, ciao_slice, tmp_path):
    neo4j_store.load(ciao_slice, batch_size=2000)
    embedded = _embedded(tmp_path, ciao_slice)
    for table in TABLES:
        assert_same_table(neo4j_store.read_table(table), embedded.read_table(table))
    assert neo4j_store.snapshot().fingerprint() == embedded.snapshot().fingerprint()
    counts = neo4j_store.counts()
    assert counts["rel:WROTE"] == counts["rel:REVIEWS"] == len(ciao_slice["reviews"])
    assert counts["rel:IN_CATEGORY"] == ciao_slice["items"]["category"].notna().sum()


# ---------------------------------------------------------------------------- idempotence
def test_reload_leaves_counts_unchanged(neo4j_store, filmtrust_tables):
    neo4j_store.load(filmtrust_tables)
    first = _canonical_counts(neo4j_store)
    neo4j_store.load(filmtrust_tables)  # identical: skipped as already complete
    assert _canonical_counts(neo4j_store) == first
    for table, frame in filmtrust_tables.items():  # the MERGE path over the same rows
        neo4j_store.upsert(table, frame)
    assert _canonical_counts(neo4j_store) == first
    neo4j_store.load(filmtrust_tables, batch_size=7000)  # a different load: MERGE again
    assert _canonical_counts(neo4j_store) == first
    assert first["interactions"] == len(filmtrust_tables["interactions"])
    assert first["follows"] == len(filmtrust_tables["follows"])


def test_upsert_replaces_by_key(neo4j_store):
    s = neo4j_store
    s.upsert("items", pd.DataFrame({"item_id": ["i1", "i2"], "category": ["books", "music"], "title": ["A", None]}))
    s.upsert("interactions", pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i2"], "kind": ["rating", "play"], "value": [1.0, 3.0]}))
    s.upsert("interactions", pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "kind": ["rating"], "value": [5.0], "ts": [1.5e9]}))
    s.upsert("items", pd.DataFrame({"item_id": ["i1"], "category": ["films"]}))
    inter = s.read_table("interactions")
    assert inter[["item_id", "kind", "value"]].to_dict("list") == {"item_id": ["i1", "i2"], "kind": ["rating", "play"], "value": [5.0, 3.0]}
    assert inter["ts"].iloc[0] == 1.5e9 and np.isnan(inter["ts"].iloc[1])
    items = s.read_table("items")
    assert items["category"].tolist() == ["films", "music"] and pd.isna(items["title"].iloc[0])
    rows = s.run("MATCH (i:Item {dataset: $ds, id: 'i1'})-[:IN_CATEGORY]->(c) RETURN c.id AS c")
    assert rows == [{"c": "films"}]
    counts = s.counts()
    assert counts["rel:RATED"] == 1 and counts["rel:INTERACTED"] == 1
    # users referenced only by relationships are stubs: not rows of the users table
    assert counts["users"] == 0 and counts["label:User"] == 1


def test_extra_attribute_columns_round_trip(neo4j_store, tmp_path):
    users = pd.DataFrame({"user_id": ["a", "b", "c"], "country": ["NL", None, "DE"], "age": [31.0, np.nan, 40.0]})
    neo4j_store.upsert("users", users)
    embedded = _embedded(tmp_path, {"users": users})
    assert_same_table(neo4j_store.read_table("users"), embedded.read_table("users"))


def test_a_failed_upsert_writes_nothing(neo4j_store):
    neo4j_store.upsert("users", pd.DataFrame({"user_id": ["a"]}))
    before = neo4j_store.counts()
    bad = pd.DataFrame({"user_id": [f"u{k}" for k in range(25_000)], "blob": [1.0] * 24_999 + [{"not": "storable"}]})
    with pytest.raises(StoreError):
        neo4j_store.upsert("users", bad)  # the last chunk fails: the first two are rolled back too
    assert neo4j_store.counts() == before
    assert neo4j_store.read_table("users")["user_id"].tolist() == ["a"]


def test_hostile_ids_are_stored_verbatim(neo4j_store):
    evil = "x'}) MATCH (n) DETACH DELETE n //"
    neo4j_store.upsert("follows", pd.DataFrame({"follower_id": [evil], "followee_id": ["`; DROP"]}))
    got = neo4j_store.read_table("follows")
    assert got[["follower_id", "followee_id"]].values.tolist() == [[evil, "`; DROP"]]
    with pytest.raises(ValueError):
        neo4j_store.write_vectors("Item", np.array(["a"]), np.ones((1, 2)), "x) DETACH DELETE n //", "v1")
    with pytest.raises(ValueError):
        neo4j_store.write_scores("User; DROP", np.array(["a"]), {"s": np.ones(1)}, "v1")


# ---------------------------------------------------------------------------- resumable loads
def test_load_that_raises_midway_resumes_to_the_same_counts(open_neo4j_store, filmtrust_tables, monkeypatch):
    reference = open_neo4j_store(new_dataset_name("ref"))
    reference.load(filmtrust_tables, batch_size=4000)
    expected = _canonical_counts(reference)

    store = open_neo4j_store(new_dataset_name("crash"))
    calls = {"n": 0}
    original = Neo4jStore._load_batch

    def crash_after_five(self, *args, **kwargs):  # users, items, follows, 2 of 9 interaction batches
        calls["n"] += 1
        if calls["n"] > 5:
            raise StoreError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Neo4jStore, "_load_batch", crash_after_five)
    with pytest.raises(StoreError):
        store.load(filmtrust_tables, batch_size=4000)
    monkeypatch.undo()
    partial = _canonical_counts(store)
    assert 0 < partial["interactions"] < expected["interactions"]

    written = []
    monkeypatch.setattr(Neo4jStore, "_load_batch", lambda self, tx, t, *a, **k: (written.append(t), original(self, tx, t, *a, **k))[1])
    store.load(filmtrust_tables, batch_size=4000)
    monkeypatch.undo()
    total_batches = sum((len(f) + 3999) // 4000 for f in filmtrust_tables.values())
    assert len(written) == total_batches - 5  # the five committed batches were skipped
    assert _canonical_counts(store) == expected
    for table in TABLES:
        assert_same_table(store.read_table(table), reference.read_table(table))


def test_load_killed_by_sigkill_resumes_to_the_same_counts(open_neo4j_store, neo4j_conn, filmtrust_tables, shared_data_dir):
    dataset = new_dataset_name("kill")
    child = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from etl.datasets import read_dataset
        from etl.pseudonymise import Pseudonymiser
        from graph.neo4j_store import Neo4jStore
        tables = read_dataset("filmtrust", Path({str(shared_data_dir)!r}), Pseudonymiser({TEST_PSEUDONYM_KEY!r}), Path(sys.argv[1])).tables
        store = Neo4jStore(*sys.argv[2:5], dataset={dataset!r})
        store.load(tables, batch_size=1000, progress=lambda *a: time.sleep(0.3))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", child, str(Path(os.environ.get("TMPDIR", "/tmp"))), *neo4j_conn], cwd=REPO, env=env)
    store = open_neo4j_store(dataset)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            n = store.run("MATCH (c:LoadCheckpoint {dataset: $ds}) RETURN count(c) AS n")[0]["n"]
            if n >= 5 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the loader finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = _canonical_counts(store)
    assert partial["interactions"] < len(filmtrust_tables["interactions"])

    store.load(filmtrust_tables, batch_size=1000)
    reference = open_neo4j_store(new_dataset_name("ref"))
    reference.load(filmtrust_tables, batch_size=1000)
    assert _canonical_counts(store) == _canonical_counts(reference)
    for table in TABLES:
        assert_same_table(store.read_table(table), reference.read_table(table))


# ---------------------------------------------------------------------------- write-back
def test_vectors_are_found_by_the_vector_index(neo4j_store):
    rng = np.random.default_rng(7)
    ids = np.array([f"i{k:03d}" for k in range(200)])
    vecs = rng.normal(size=(200, 16)).astype(np.float32)
    vecs[1] = vecs[0] + 0.01 * rng.normal(size=16)  # i001 is i000's near twin
    neo4j_store.upsert("items", pd.DataFrame({"item_id": ids}))
    assert neo4j_store.write_vectors("Item", ids, vecs, "test_embedding", "v1") == 200
    neo4j_store.await_indexes()
    rows = neo4j_store.run(
        "MATCH (q:Item {dataset: $ds, id: 'i000'}) "
        "CALL db.index.vector.queryNodes($index, 50, q.test_embedding) YIELD node, score "
        "WHERE node.dataset = $ds AND node <> q RETURN node.id AS id, score ORDER BY score DESC LIMIT 5",
        index=vector_index_name("Item", "test_embedding"),
    )
    assert rows[0]["id"] == "i001" and rows[0]["score"] > 0.99
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    cos = dict(zip(ids[1:], unit[1:] @ unit[0]))
    exact_top = sorted(cos, key=lambda i: -cos[i])[:5]
    # HNSW is approximate: the nearest neighbour is exact, the top 5 mostly; scores are exact
    assert len({r["id"] for r in rows} & set(exact_top)) >= 4
    assert np.allclose([r["score"] for r in rows], [(1 + cos[r["id"]]) / 2 for r in rows], atol=1e-4)  # (1 + cos) / 2
    assert neo4j_store.similar("Item", "test_embedding", "i000", k=5)[0][0] == "i001"

    got_ids, got_vecs, version = neo4j_store.read_vectors("Item", "test_embedding")
    assert list(got_ids) == list(ids) and version == "v1"
    assert np.array_equal(got_vecs, vecs)  # float32 -> float64 property -> float32 is exact


def test_write_vectors_replaces_the_previous_version(neo4j_store):
    neo4j_store.upsert("users", pd.DataFrame({"user_id": ["a", "b"]}))
    neo4j_store.write_vectors("User", np.array(["a", "b"]), np.ones((2, 4)), "test_embedding", "v1")
    neo4j_store.write_vectors("User", np.array(["b"]), np.full((1, 4), 2.0), "test_embedding", "v2")
    ids, vecs, version = neo4j_store.read_vectors("User", "test_embedding")
    assert list(ids) == ["b"] and version == "v2" and np.all(vecs == 2.0)


def test_scores_round_trip(neo4j_store, tmp_path):
    users = pd.DataFrame({"user_id": ["a", "b", "c"]})
    neo4j_store.upsert("users", users)
    neo4j_store.write_scores("User", np.array(["a", "b"]), {"clv": np.array([10.5, 2.0]), "segment": np.array(["s1", "s2"])}, "v1")
    neo4j_store.write_scores("User", np.array(["b", "c"]), {"influence": np.array([0.25, 0.75])}, "v2")
    got = neo4j_store.read_scores("User")
    assert got["id"].tolist() == ["a", "b", "c"]
    assert got["clv"].tolist()[:2] == [10.5, 2.0] and np.isnan(got["clv"].iloc[2])
    assert got["segment"].tolist()[:2] == ["s1", "s2"]
    assert got["influence_version"].tolist()[1:] == ["v2", "v2"]
    with pytest.raises(ValueError):
        neo4j_store.write_scores("User", np.array(["a"]), {"clv": np.ones(2)}, "v3")


def test_write_segments_replaces_the_previous_segmentation(neo4j_store):
    neo4j_store.upsert("users", pd.DataFrame({"user_id": ["a", "b", "c"]}))
    neo4j_store.write_segments(
        pd.DataFrame({"user_id": ["a", "b", "c"], "segment_id": ["s1", "s1", "s2"]}),
        pd.DataFrame({"segment_id": ["s1", "s2"], "name": ["loyal", "new"], "mean_clv": [10.0, 1.0]}),
    )
    assert neo4j_store.write_segments(pd.DataFrame({"user_id": ["a", "c"], "segment_id": ["s3", "s3"]})) == 2
    assignments, segments = neo4j_store.read_segments()
    assert assignments.values.tolist() == [["a", "s3"], ["c", "s3"]]
    assert segments["segment_id"].tolist() == ["s3"]
    assert neo4j_store.counts()["rel:IN_SEGMENT"] == 2


def test_clear_removes_only_this_dataset(open_neo4j_store, filmtrust_tables):
    a = open_neo4j_store(new_dataset_name("a"))
    b = open_neo4j_store(new_dataset_name("b"))
    small = {"users": filmtrust_tables["users"].head(50), "follows": filmtrust_tables["follows"].head(100)}
    a.load(small)
    b.load(small)
    a.clear()
    assert all(v == 0 for v in a.counts().values())
    assert b.counts()["follows"] == 100
    assert set(TABLE_KEYS) <= set(b.counts())
