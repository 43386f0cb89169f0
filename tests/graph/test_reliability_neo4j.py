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
