"""``socialrec backup`` / ``restore`` against a real local Neo4j server of the test's own.

The test starts its own server (a free Bolt port in 7690..7699, no HTTP), because a dump/load
needs the server stopped; the shared test server is never touched. Back up (stopping and
restarting the server), wipe everything (graph, model files, event journal), restore, and check:
the same counts and vectors, and the events that were still undelivered at backup time are
delivered exactly once after the restore.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

from tests.conftest import synthetic_snapshot

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def _free_port() -> int:
    for port in range(7699, 7689, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 7690..7699 for the test's own Neo4j server")


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    from graph import neo4j_server

    if shutil.which("java") is None or shutil.which("mvn") is None:
        if os.environ.get("SOCIALREC_CI"):
            pytest.fail("CI needs java and mvn for the local Neo4j server")
        pytest.skip("java/mvn not available")
    home = tmp_path_factory.mktemp("backup-home")
    password = "bk-" + uuid.uuid4().hex[:12]
    uri = neo4j_server.start(home, password, bolt_port=_free_port(), heap="512m", pagecache="64m",
                             http_port=None, progress=False, timeout_s=600)
    try:
        yield home, uri, password
    finally:
        neo4j_server.stop(home)


def _cli(args, home, uri, password):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update(SOCIALREC_HOME=str(home), SOCIALREC_NEO4J_URI=uri, SOCIALREC_NEO4J_PASSWORD=password,
               SOCIALREC_MODE="test")
    r = subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _state(store):
    counts = store.counts()
    ids, vecs, tag = store.read_vectors("Item", "als_embedding")
    order = np.argsort(ids)
    return counts, np.asarray(ids)[order], vecs[order], tag


def test_backup_wipe_restore_gives_back_graph_files_and_undelivered_events(own_server, tmp_path):
    from graph.neo4j_store import Neo4jStore
    from recsys.events import EventQueue, EventReplayer

    home, uri, password = own_server
    snap = synthetic_snapshot()
    tables = {
        "users": pd.DataFrame({"user_id": snap.user_ids}),
        "items": pd.DataFrame({"item_id": snap.item_ids, "category": "c"}),
    }
    coo = snap.interactions.tocoo()
    tables["interactions"] = pd.DataFrame({"user_id": snap.user_ids[coo.row], "item_id": snap.item_ids[coo.col],
                                           "kind": "play", "value": coo.data.astype(float), "ts": 1.6e9})
    store = Neo4jStore(uri, "neo4j", password, dataset="bk")
    store.load(tables)
    rng = np.random.default_rng(3)
    store.write_vectors("Item", snap.item_ids, rng.normal(size=(snap.n_items, 8)).astype(np.float32), "als_embedding", "v-bk")
    (home / "models" / "bk" / "v1").mkdir(parents=True)
    (home / "models" / "bk" / "v1" / "manifest.json").write_text('{"version": "v1"}')
    queue = EventQueue(home / "queue")
    new_rows = [("interactions", {"user_id": str(snap.user_ids[0]), "item_id": str(snap.item_ids[k]), "kind": "view",
                                  "value": 1.0, "ts": 1.7e9}) for k in range(3)]
    queue.enqueue("pending-0001", new_rows)  # journalled, not yet delivered
    queue.close()
    before = _state(store)
    store.close()

    made = _cli(["backup", "--to", str(tmp_path / "backups"), "--stop-neo4j", "--json"], home, uri, password)
    assert made["neo4j"]["file"] == "neo4j/neo4j.dump" and "queue/events.sqlite3" in made["sqlite"]

    # wipe: the graph, the model files, the journal
    store = Neo4jStore(uri, "neo4j", password, dataset="bk")
    store.clear()
    assert store.counts().get("label:User", 0) == 0
    store.close()
    shutil.rmtree(home / "models")
    shutil.rmtree(home / "queue")

    out = _cli(["restore", "--from", made["path"], "--stop-neo4j", "--json"], home, uri, password)
    assert out["neo4j_loaded"] is True
    assert json.loads((home / "models" / "bk" / "v1" / "manifest.json").read_text()) == {"version": "v1"}

    store = Neo4jStore(uri, "neo4j", password, dataset="bk")
    after = _state(store)
    assert after[0] == before[0]
    assert np.array_equal(after[1], before[1]) and np.array_equal(after[2], before[2]) and after[3] == before[3]

    queue = EventQueue(home / "queue")
    assert len(queue.pending()) == 3
    replayer = EventReplayer(queue, lambda: Neo4jStore(uri, "neo4j", password, dataset="bk"))
    assert replayer.drain(timeout=120)
    assert replayer.replay_once() == 0 and not queue.pending()
    inter = store.read_table("interactions")
    views = inter[(inter["user_id"] == str(snap.user_ids[0])) & (inter["kind"] == "view")]
    assert len(views) == 3  # delivered once each
    replayer.stop()
    queue.close()
    store.close()


def test_backup_refuses_a_running_server_without_stop_flag(own_server, tmp_path):
    home, uri, password = own_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update(SOCIALREC_HOME=str(home), SOCIALREC_NEO4J_URI=uri, SOCIALREC_NEO4J_PASSWORD=password, SOCIALREC_MODE="test")
    r = subprocess.run([sys.executable, "-m", "api.cli", "backup", "--to", str(tmp_path), "--json"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 1 and "--stop-neo4j" in r.stderr
    assert not list(tmp_path.glob("socialrec-backup-*"))
