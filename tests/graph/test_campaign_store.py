"""Campaigns in both stores: the same round trip, constraints in Neo4j, nothing half-written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.store import EmbeddedStore
from tests.graph.conftest import assert_same_table


def _campaign(cid: str = "spring", n: int = 300):
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({
        "user_id": [f"u_{i:05d}" for i in range(n)],
        "arm": np.where(np.arange(n) % 2 == 0, "treatment", "control"),
        "stratum": [f"s{i % 3}" for i in range(n)],
        "spend": np.round(rng.gamma(1.0, 5.0, n), 2),
    })
    doc = {"id": cid, "name": cid, "arms": ["treatment", "control"], "control_arm": "control",
           "treatment_arm": "treatment", "launched_at": 1.7e9, "status": "running", "shares": {"treatment": 0.5, "control": 0.5}}
    return doc, rows


def test_embedded_store_keeps_campaigns_whole_and_refuses_bad_ones(tmp_path):
    store = EmbeddedStore(tmp_path, "shop")
    doc, rows = _campaign()
    assert store.write_campaign(doc, rows) == 300
    before = store.read_assignments("spring")
    for bad_doc, bad_rows, words in [
        (doc, rows, "already exists"),
        ({**doc, "id": "b"}, pd.concat([rows, rows.iloc[:1]]), "more than once"),
        ({**doc, "id": "c"}, rows.assign(arm=["sms"] + list(rows["arm"][1:])), "unknown arm"),
        ({**doc, "id": "d"}, rows.drop(columns="arm"), "lack column"),
    ]:
        with pytest.raises(ValueError, match=words):
            store.write_campaign(bad_doc, bad_rows)
    assert [d["id"] for d in store.list_campaigns()] == ["spring"]
    assert_same_table(store.read_assignments("spring"), before)
    assert store.delete_campaign("spring") and store.read_campaign("spring") is None


@pytest.mark.neo4j
def test_neo4j_campaign_round_trip_equals_the_embedded_store(neo4j_store, tmp_path):
    doc, rows = _campaign()
    embedded = EmbeddedStore(tmp_path, "shop")
    embedded.write_campaign(doc, rows)
    neo4j_store.upsert("users", pd.DataFrame({"user_id": rows["user_id"][:100]}))  # the rest become stubs
    assert neo4j_store.write_campaign(doc, rows) == 300
    assert_same_table(neo4j_store.read_assignments("spring"), embedded.read_assignments("spring"))
    assert neo4j_store.read_campaign("spring") == embedded.read_campaign("spring")
    assert [d["id"] for d in neo4j_store.list_campaigns()] == ["spring"]
    # analysts see (:Campaign)-[:ASSIGNED {arm}]->(:User); users not loaded are stubs, not table rows
    got = neo4j_store.run("MATCH (c:Campaign {dataset: $ds, id: 'spring'})-[a:ASSIGNED]->(u:User) "
                          "RETURN a.arm AS arm, count(u) AS users ORDER BY arm")
    assert got == [{"arm": "control", "users": 150}, {"arm": "treatment", "users": 150}]
    assert len(neo4j_store.read_table("users")) == 100


@pytest.mark.neo4j
def test_neo4j_constraints_refuse_a_second_campaign_id_and_a_second_assignment(neo4j_store):
    from neo4j.exceptions import ConstraintError

    doc, rows = _campaign()
    neo4j_store.write_campaign(doc, rows)
    with pytest.raises(ValueError, match="already exists"):
        neo4j_store.write_campaign(doc, rows.iloc[:10])
    with neo4j_store._driver.session(database=neo4j_store.database) as session:
        with pytest.raises(ConstraintError):
            session.run("CREATE (:Campaign {dataset: $ds, id: 'spring'})", ds=neo4j_store.dataset).consume()
        with pytest.raises(ConstraintError):  # the same user assigned twice to one campaign
            session.run("MATCH (c:Campaign {dataset: $ds, id: 'spring'})-[a:ASSIGNED]->(u:User) WITH c, a, u LIMIT 1 "
                        "CREATE (c)-[:ASSIGNED {key: a.key, arm: 'control'}]->(u)", ds=neo4j_store.dataset).consume()
    assert len(neo4j_store.read_assignments("spring")) == 300


@pytest.mark.neo4j
def test_neo4j_bad_campaign_writes_leave_the_graph_unchanged(neo4j_store):
    doc, rows = _campaign()
    neo4j_store.write_campaign(doc, rows)
    before = neo4j_store.counts()
    with pytest.raises(ValueError):
        neo4j_store.write_campaign({**doc, "id": "other"}, pd.concat([rows, rows.iloc[:1]]))
    with pytest.raises(ValueError):
        neo4j_store.write_campaign({**doc, "id": "other"}, rows.assign(arm="sms"))
    assert neo4j_store.read_campaign("other") is None and neo4j_store.counts() == before
    neo4j_store.clear()
    assert neo4j_store.list_campaigns() == []
    assert neo4j_store.run("MATCH (c:Campaign {dataset: $ds}) RETURN count(c) AS n") == [{"n": 0}]


@pytest.mark.neo4j
def test_hillstrom_slice_analyzed_from_neo4j_equals_the_embedded_store(neo4j_store, tmp_path, shared_data_dir):
    from etl.campaign import load_campaign_table
    from recsys.campaigns.analysis import analyze_campaign
    from recsys.campaigns.assignment import import_campaign

    frame, spec = load_campaign_table("hillstrom", data_dir=shared_data_dir)
    part = frame.iloc[:3000]
    results = []
    for store in (EmbeddedStore(tmp_path, "hillstrom"), neo4j_store):
        import_campaign(store, "h", part, list(spec.arms), spec.control, list(spec.outcomes), list(spec.numeric_covariates), pre="history")
        results.append(analyze_campaign(store, "h", treatment="Mens E-Mail"))
    a, b = results
    for o in spec.outcomes:
        assert a["outcomes"][o]["lift"] == pytest.approx(b["outcomes"][o]["lift"], abs=1e-12)
        assert a["outcomes"][o]["cuped_ci"] == pytest.approx(b["outcomes"][o]["cuped_ci"], abs=1e-12)
    assert a["srm"] == b["srm"]


@pytest.mark.neo4j
def test_event_outcomes_after_launch_read_from_neo4j_equal_the_embedded_store(neo4j_store, tmp_path):
    from recsys.campaigns.analysis import analyze_campaign
    from recsys.campaigns.assignment import create_campaign

    rng = np.random.default_rng(9)
    users = [f"u_{i:04d}" for i in range(400)]
    launch = 1.7e9
    inter = pd.DataFrame({"user_id": rng.choice(users, 1500), "item_id": [f"i{j}" for j in rng.integers(0, 80, 1500)],
                          "kind": rng.choice(["purchase", "view"], 1500), "value": np.round(rng.gamma(2, 10, 1500), 2),
                          "ts": launch + rng.uniform(-30, 30, 1500) * 86400})
    results = []
    for store in (EmbeddedStore(tmp_path, "shop"), neo4j_store):
        store.upsert("users", pd.DataFrame({"user_id": users}))
        store.upsert("items", pd.DataFrame({"item_id": [f"i{j}" for j in range(80)]}))
        store.upsert("interactions", inter)
        create_campaign(store, "autumn", users, 0.5, launched_at=launch, cost_per_contact=0.5, margin=0.4)
        results.append(analyze_campaign(store, "autumn", until=launch + 30 * 86400))
    a, b = results
    assert a["outcome_source"] == "events" and set(a["outcomes"]) == {"visit", "conversion", "revenue"}
    for o in a["outcomes"]:
        for key in ("lift", "cuped_lift", "incremental_revenue", "roi"):
            assert a["outcomes"][o][key] == pytest.approx(b["outcomes"][o][key], abs=1e-9)
    assert a["arms"] == b["arms"] == {"treatment": 200, "control": 200}
    assert a["balance"] == b["balance"]
