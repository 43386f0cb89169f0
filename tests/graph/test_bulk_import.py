"""The offline bulk import (``socialrec etl --bulk``) against real Neo4j servers.

The graph the importer writes must be the graph the incremental path writes for the same tables:
same labels, relationship types, endpoints and properties (FilmTrust and Ciao). The bulk path
needs an empty database and stops/starts its server, so these tests start a second local server
of their own (a fresh home on a free port); the incremental side loads into the shared server
of ``.ci/run`` (``SOCIALREC_NEO4J_URI``) in its own namespace.
"""

from __future__ import annotations

import math
import secrets
import socket

import pandas as pd
import pytest

from etl.datasets import read_dataset
from etl.pseudonymise import Pseudonymiser
from graph import neo4j_server
from graph.neo4j_import import BulkImportError, empty_database, run_import, write_import_files
from graph.neo4j_store import Neo4jStore
from tests.graph.conftest import TEST_PSEUDONYM_KEY, new_dataset_name

pytestmark = pytest.mark.neo4j
TABLES = ("users", "items", "follows", "interactions", "reviews")
ANALYST_LABELS = ("User", "Item", "Category", "Review")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bulk_server(neo4j_conn, tmp_path_factory):
    """A second local server (its own home and port, small memory) the bulk path may stop,
    import into and start again; stopped at the end."""
    home = tmp_path_factory.mktemp("bulk-neo4j")
    password = "bulk-" + secrets.token_hex(8)
    uri = neo4j_server.start(home, password, bolt_port=_free_port(), heap="768m", pagecache="256m")
    try:
        yield home, uri, password
    finally:
        neo4j_server.stop(home)


def _wipe(uri: str, password: str) -> None:
    store = Neo4jStore(uri, "neo4j", password, dataset="wipe")
    try:
        empty_database(store)
    finally:
        store.close()


def _tables(name: str, shared_data_dir, tmp_path) -> dict[str, pd.DataFrame]:
    loaded = read_dataset(name, shared_data_dir, Pseudonymiser(TEST_PSEUDONYM_KEY), tmp_path / "cache")
    return {t: loaded.tables[t] for t in TABLES}


def _norm(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return tuple(v)
    return v


def graph_contents(store: Neo4jStore) -> dict[str, list]:
    """Every analyst-visible node and relationship of the store's namespace, order-free:
    label -> sorted (id, properties) and type -> sorted (start id, end id, properties)."""
    out: dict[str, list] = {}
    for label in ANALYST_LABELS:
        rows = store._read(f"MATCH (n:{label}) WHERE n.dataset = $ds RETURN n.id AS id, properties(n) AS p")
        out[label] = sorted(
            (r["id"], tuple(sorted((k, _norm(v)) for k, v in r["p"].items() if k != "dataset"))) for r in rows
        )
    rows = store._read(
        "MATCH (a:User|Item|Review) WHERE a.dataset = $ds MATCH (a)-[r]->(b) "
        "RETURN type(r) AS t, a.id AS a, b.id AS b, properties(r) AS p"
    )
    for r in rows:
        out.setdefault(f"rel:{r['t']}", []).append((r["a"], r["b"], tuple(sorted((k, _norm(v)) for k, v in r["p"].items()))))
    for key in out:
        out[key].sort(key=repr)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["filmtrust", "ciao"])
def test_bulk_import_writes_the_graph_of_the_incremental_path(dataset, bulk_server, open_neo4j_store, shared_data_dir, tmp_path):
    home, uri, password = bulk_server
    _wipe(uri, password)
    tables = _tables(dataset, shared_data_dir, tmp_path)
    name = new_dataset_name(dataset)

    incremental = open_neo4j_store(name)
    incremental.load(tables)
    bulk = Neo4jStore(uri, "neo4j", password, dataset=name)
    try:
        report = bulk.bulk_import(tables, home, password)
        assert report["relationships"] == sum(v for k, v in incremental.counts().items() if k.startswith("rel:"))
        assert bulk.counts() == incremental.counts()
        a, b = graph_contents(incremental), graph_contents(bulk)
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key] == b[key], key
        # the same constraints as the incremental path: a duplicate user is refused
        with pytest.raises(Exception, match="already exists|ConstraintValidationFailed"):
            bulk._auto("CREATE (:User {dataset: $ds, id: $id})", id=tables["users"]["user_id"].iloc[0])
        # and the snapshot models train on is the same
        sa, sb = incremental.snapshot(), bulk.snapshot()
        assert sa.fingerprint() == sb.fingerprint()
    finally:
        bulk.close()
        _wipe(uri, password)


def _tiny_tables() -> dict[str, pd.DataFrame]:
    return {
        "users": pd.DataFrame({"user_id": ["u,1", 'u"2', "u3"]}),
        "items": pd.DataFrame({"item_id": ["i1", "i,2"], "category": ["Books", None], "title": ["", "Two\nlines"],
                               "brand": [None, "b"], "text": [None, None]}),
        "interactions": pd.DataFrame({"user_id": ["u,1", 'u"2', "ghost"], "item_id": ["i1", "i,2", "i9"],
                                      "kind": ["rating", "view", "purchase"], "value": [4.0, 1.0, float("nan")],
                                      "ts": [1.5e9, float("nan"), 1.25e9]}),
        "follows": pd.DataFrame({"follower_id": ["u,1"], "followee_id": ["u3"], "ts": [float("nan")]}),
        "reviews": pd.DataFrame(columns=["review_id", "user_id", "item_id"]),
    }


def test_ids_with_the_delimiter_or_quotes_and_texts_with_line_breaks_round_trip(bulk_server, open_neo4j_store, tmp_path):
    home, uri, password = bulk_server
    _wipe(uri, password)
    tables = _tiny_tables()
    name = new_dataset_name("tiny")
    incremental = open_neo4j_store(name)
    incremental.load(tables)
    bulk = Neo4jStore(uri, "neo4j", password, dataset=name)
    try:
        bulk.bulk_import(tables, home, password)
        assert graph_contents(bulk) == graph_contents(incremental)
        stub = bulk._read("MATCH (u:User {dataset: $ds, id: 'ghost'}) RETURN u.stub AS s")
        assert stub[0]["s"] is True
        title = bulk._read("MATCH (i:Item {dataset: $ds, id: 'i1'}) RETURN i.title AS t, i.brand AS b")
        assert title[0]["t"] == "" and title[0]["b"] is None
    finally:
        bulk.close()
        _wipe(uri, password)


def test_a_non_empty_database_is_refused_and_left_as_it_was(bulk_server, tmp_path):
    home, uri, password = bulk_server
    _wipe(uri, password)
    other = Neo4jStore(uri, "neo4j", password, dataset="someone-else")
    other.upsert("users", pd.DataFrame({"user_id": ["a", "b"]}))
    pid = neo4j_server.status(home)["pid"]
    target = Neo4jStore(uri, "neo4j", password, dataset="new")
    try:
        with pytest.raises(BulkImportError, match="not empty.*incremental path") as info:
            target.bulk_import(_tiny_tables(), home, password)
        assert info.value.bad_input
        assert neo4j_server.status(home)["pid"] == pid  # never stopped
        assert other.counts()["users"] == 2 and target.counts()["users"] == 0
    finally:
        target.close()
        other.close()
        _wipe(uri, password)


def test_ids_with_line_breaks_are_refused_before_the_server_is_touched(bulk_server, tmp_path):
    home, uri, password = bulk_server
    _wipe(uri, password)
    tables = _tiny_tables()
    tables["users"] = pd.DataFrame({"user_id": ["ok", "bad\nid"]})
    pid = neo4j_server.status(home)["pid"]
    store = Neo4jStore(uri, "neo4j", password, dataset="nl")
    try:
        with pytest.raises(BulkImportError, match=r"users: row 1: user_id: .*line break"):
            store.bulk_import(tables, home, password)
        assert neo4j_server.status(home)["pid"] == pid
        assert store._read("MATCH (n) RETURN count(n) AS c")[0]["c"] == 0
    finally:
        store.close()


def test_the_importer_refuses_a_running_server(bulk_server, tmp_path):
    home, _, _ = bulk_server
    files = write_import_files(_tiny_tables(), "x", tmp_path / "files")
    with pytest.raises(BulkImportError, match="is running"):
        run_import(home, files)


def test_the_import_files_have_header_files_with_id_groups(tmp_path):
    files = write_import_files(_tiny_tables(), "ds", tmp_path)
    head, data = files.nodes["User"]
    assert head.read_text().strip() == "id:ID(User),dataset,stub:boolean"
    assert files.relationships["FOLLOWS"][0].read_text().strip() == ":START_ID(User),:END_ID(User),ts:double"
    assert files.relationships["INTERACTED"][0].read_text().startswith(":START_ID(User),:END_ID(Item),kind,")
    assert files.counts == {"User": 4, "Item": 3, "Category": 1, "RATED": 1, "PURCHASED": 1, "INTERACTED": 1,
                            "FOLLOWS": 1, "IN_CATEGORY": 1}
    assert files.multiline == [files.nodes["Item"][1]]
    assert '"u,1","ds",' in data.read_text()


def test_the_cli_refuses_bulk_with_replace(tmp_path, monkeypatch):
    from api.cli import main

    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path))
    assert main(["etl", "--dataset", "filmtrust", "--bulk", "--replace", "--store", "neo4j", "--no-progress"]) == 2

