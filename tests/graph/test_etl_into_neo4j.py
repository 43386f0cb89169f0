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


def test_a_replace_interrupted_while_clearing_is_redone_by_the_next_command(open_neo4j_store, shared_data_dir, tmp_path, monkeypatch):
    """`etl --replace` killed midway through the clear must not leave a 'complete' record or a
    'done' load job: the next command reloads, it does not train on a graph without edges."""
    from api.cli import _ensure_loaded
    from api.settings import Settings

    store = open_neo4j_store(new_dataset_name("ft"))
    run_etl("filmtrust", store, shared_data_dir, tmp_path / "cache", KEY, tmp_path / "q", progress=False)
    full = store.counts()
    calls = {"n": 0}
    real_auto = type(store)._auto

    def dying_auto(self, query, **params):
        calls["n"] += 1
        if calls["n"] == 5:  # bookkeeping and the users' relationships are gone: the process dies
            raise KeyboardInterrupt
        return real_auto(self, query, **params)

    monkeypatch.setattr(type(store), "_auto", dying_auto)
    store.write_meta("etl", {"dataset": "filmtrust", "state": "loading"})
    try:
        store.clear()
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(type(store), "_auto", real_auto)
    assert store.counts()["rel:RATED"] < full["rel:RATED"]
    settings = Settings(home=tmp_path / "home", data_dir=shared_data_dir, mode="test", pseudonym_key=KEY.decode())
    assert _ensure_loaded(settings, "filmtrust", store, progress=False) is not None
    assert store.counts() == full
