"""Reliability against the real Neo4j (issue 14): registrations stored once, write-back of one
version at a time, no NaN property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.neo4j


def test_registration_rows_replayed_twice_store_one_user_one_follow_one_item(neo4j_store, tmp_path):
    from recsys.events import (EventQueue, ITEM_REGISTRATION_PREFIX, USER_REGISTRATION_PREFIX, deliver,
                               item_registration_rows, registration_key, user_registration_rows)

    neo4j_store.upsert("users", pd.DataFrame({"user_id": ["old"]}))
    rows = user_registration_rows("new-u", ["old", "old"], {"categories": ["a"]})
    items = item_registration_rows("sku/1", "Books", "Caf\u00e9", None)
    queue = EventQueue(tmp_path / "queue")
    queue.enqueue(registration_key(USER_REGISTRATION_PREFIX, rows), rows)
    queue.enqueue(registration_key(ITEM_REGISTRATION_PREFIX, items), items)
    pending = queue.pending()
    deliver(neo4j_store, pending)
    deliver(neo4j_store, pending)  # a crash before mark_delivered replays the rows: still once
    got = neo4j_store.run(
        "MATCH (u:User {dataset: $ds, id: 'new-u'}) OPTIONAL MATCH (u)-[f:FOLLOWS]->(o:User {dataset: $ds}) "
        "RETURN count(DISTINCT u) AS users, count(f) AS follows, collect(o.id) AS followees, u.attributes AS attrs")
    assert got[0]["users"] == 1 and got[0]["follows"] == 1 and got[0]["followees"] == ["old"]
    assert '"categories"' in got[0]["attrs"]
    assert neo4j_store.run("MATCH (i:Item {dataset: $ds, id: 'sku/1'}) RETURN count(i) AS n")[0]["n"] == 1
    assert neo4j_store.snapshot().user_index("new-u") is not None
    queue.close()


def _small_graph(store, n_users=30, n_items=12, seed=0):
    """A random small interaction graph loaded into ``store``; returns its snapshot."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:03d}" for i in range(n_users)]
    items = [f"i{j:03d}" for j in range(n_items)]
    pairs = {(users[u], items[j]) for u, j in zip(rng.integers(0, n_users, 200), rng.integers(0, n_items, 200))}
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "kind": "play", "value": 1.0} for u, i in sorted(pairs)])
    store.upsert("users", pd.DataFrame({"user_id": users}))
    store.upsert("items", pd.DataFrame({"item_id": items, "category": ["c"] * n_items}))
    store.upsert("interactions", inter)
    return store.snapshot()


def _fit(snapshot, seed):
    from recsys.models.als import AlternatingLeastSquaresModel
    from recsys.models.popular import PopularModel

    return {"als": AlternatingLeastSquaresModel(factors=4, iterations=3, seed=seed).fit(snapshot),
            "popular": PopularModel().fit(snapshot)}


def _versions_seen(store) -> set[str]:
    """Every model version an analyst finds through the store's readers (users, items, scores)."""
    seen = set()
    for label in ("User", "Item"):
        _, _, tag = store.read_vectors(label, "als_embedding")
        seen.add(tag)
    scores = store.read_scores("User")
    seen |= set(scores["top_items_version"].dropna()) if "top_items_version" in scores else set()
    return seen


def test_write_back_is_one_version_at_any_moment_and_a_crash_is_repaired(open_neo4j_store):
    """Issue 14 item 2: write-back under a version slot, flip after promote, clean the loser;
    batched (batch_size 7: dozens of transactions), and `repair_write_back` after a crash."""
    from recsys.retrain import activate_write_back, repair_write_back, write_back_models

    from tests.graph.conftest import new_dataset_name

    store = open_neo4j_store(new_dataset_name(), batch_size=7)
    snap = _small_graph(store)
    a, b = _fit(snap, 0), _fit(snap, 1)
    write_back_models(store, snap, a, "als", "vA/als")
    activate_write_back(store, "vA")
    assert _versions_seen(store) == {"vA/als"}

    # candidate B written completely but never promoted (the run was killed before promote)
    write_back_models(store, snap, b, "als", "vB/als")
    assert _versions_seen(store) == {"vA/als"}  # readers still on A, users and items alike
    ids, vecs, _ = store.read_vectors("User", "als_embedding")
    assert np.allclose(vecs, a["als"].user_embeddings()[[snap.user_index(i) for i in ids]], atol=1e-5)
    out = repair_write_back(store, promoted="vA")
    assert out["dropped"] == ["vvB"] and not out["flipped"]
    left = store.run("MATCH (n:User {dataset: $ds}) WHERE n.als_embedding__vvB IS NOT NULL RETURN count(n) AS n")
    assert left[0]["n"] == 0

    # B promoted, then killed before the flip: the next run's repair finishes the flip
    write_back_models(store, snap, b, "als", "vB/als")
    out = repair_write_back(store, promoted="vB")
    assert out["flipped"] and out["dropped"] == ["vvA"]
    assert _versions_seen(store) == {"vB/als"}
    ids, vecs, _ = store.read_vectors("Item", "als_embedding")
    assert len(ids) == snap.n_items and np.allclose(vecs, b["als"].item_embeddings(), atol=1e-5)
    # a slot killed half-way can never become current
    store.stage_write_back("vvC", "vC", complete=False)
    with pytest.raises(ValueError):
        store.flip_write_back("vvC")


def test_no_nan_property_reaches_the_graph(neo4j_store):
    """Issue 14 item 6: NaN scores are absent properties; NaN vectors are refused whole."""
    snap = _small_graph(neo4j_store, n_users=5, n_items=4)
    ids = np.asarray(snap.user_ids)
    propensity = np.array([0.5, np.nan, np.inf, 0.1, np.nan])
    neo4j_store.write_scores("User", ids, {"propensity": propensity}, "v1")
    bad = np.ones((5, 3), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        neo4j_store.write_vectors("User", ids, bad, "nan_embedding", "v1")
    nan_props = neo4j_store.run(
        "MATCH (n) WHERE n.dataset = $ds UNWIND keys(n) AS k WITH n, k, n[k] AS v "
        "WHERE (v IS :: FLOAT AND isNaN(v)) OR (v IS :: LIST<FLOAT> AND any(x IN v WHERE isNaN(x))) "
        "RETURN count(*) AS n")
    assert nan_props[0]["n"] == 0
    ranked = neo4j_store.run("MATCH (u:User {dataset: $ds}) WHERE u.propensity IS NOT NULL "
                             "RETURN u.propensity AS p ORDER BY u.propensity DESC")
    assert [r["p"] for r in ranked] == [0.5, 0.1]
    assert neo4j_store.run("MATCH (u:User {dataset: $ds}) WHERE u.nan_embedding IS NOT NULL RETURN count(u) AS n")[0]["n"] == 0


def test_transient_retries_are_counted(neo4j_store):
    """Issue 14 item 17: a transaction the driver retries is counted on the store."""
    from neo4j.exceptions import TransientError

    attempts = []

    def flaky(tx):
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientError("simulated deadlock")
        tx.run("RETURN 1").consume()

    assert neo4j_store.transient_retries == 0
    neo4j_store._write(flaky, "flaky write")
    assert len(attempts) == 3 and neo4j_store.transient_retries == 2
