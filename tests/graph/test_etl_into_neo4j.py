"""The ETL pipeline into the real Neo4j: loading ciao twice leaves identical counts, and the
snapshot read back equals the embedded store's (the Neo4j issue's done-when)."""

from __future__ import annotations

import numpy as np
import pytest

from etl.pipeline import run_etl
from graph.store import EmbeddedStore
from tests.graph.conftest import new_dataset_name

KEY = b"neo4j-etl-test-key"


@pytest.mark.slow
def test_loading_ciao_twice_gives_identical_counts_and_the_embedded_snapshot(open_neo4j_store, shared_data_dir, tmp_path):
    store = open_neo4j_store(new_dataset_name("ciao"))
    first = run_etl("ciao", store, shared_data_dir, tmp_path / "cache", KEY, tmp_path / "q", progress=False)
    counts_1 = store.counts()
    second = run_etl("ciao", store, shared_data_dir, tmp_path / "cache", KEY, tmp_path / "q", progress=False)
    counts_2 = store.counts()
    assert counts_1 == counts_2
    assert first["tables"] == second["tables"]
    assert counts_1["interactions"] == first["tables"]["interactions"]["loaded"] == 282_619
    assert counts_1["rel:FOLLOWS"] == 111_781 and counts_1["label:User"] == 7_375

    embedded = EmbeddedStore(tmp_path / "store", "ciao")
    run_etl("ciao", embedded, shared_data_dir, tmp_path / "cache", KEY, tmp_path / "q", progress=False)
    a, b = store.snapshot(), embedded.snapshot()
    assert a.fingerprint() == b.fingerprint()
    assert list(a.user_ids) == list(b.user_ids) and list(a.item_ids) == list(b.item_ids)
    assert (a.interactions != b.interactions).nnz == 0 and (a.follows != b.follows).nnz == 0
    np.testing.assert_array_equal(a.item_category, b.item_category)
