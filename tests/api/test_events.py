"""POST /v1/events: durable, idempotent, folded into the next recommendation, exactly once in the store
even across a store outage."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pandas as pd
import pytest

from etl.pseudonymise import Pseudonymiser
from graph.store import EmbeddedStore
from recsys.events import EventQueue, EventReplayer
from tests.api.conftest import TEST_KEY, auth

RECS = "/v1/users/{}/recommendations"


def _post(client, events, key=None):
    return client.post("/v1/events", json={"events": events},
                       headers={**auth("events"), "Idempotency-Key": key or f"k-{uuid.uuid4().hex}"})


def _raw_user_with_history(shared_data_dir) -> str:
    ratings = pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    return str(ratings["u"].value_counts().index[5])


def test_events_are_reflected_in_the_very_next_recommendation(client, shared_data_dir):
    user = _raw_user_with_history(shared_data_dir)
    before = [it["item_id"] for it in client.get(RECS.format(user), params={"k": 5}).json()["items"]]
    r = _post(client, [{"user_id": user, "item_id": before[0], "kind": "purchase", "value": 1},
                       {"user_id": user, "item_id": before[1], "kind": "view"}])
    assert r.status_code == 202 and r.json() == {"accepted": 2, "duplicate": False, "status": "queued"}
    after = [it["item_id"] for it in client.get(RECS.format(user), params={"k": 5}).json()["items"]]
    assert not {before[0], before[1]} & set(after) and len(after) == 5
    assert before[2:] == after[:3]  # the rest of the ranking is unchanged by the overlay


def test_idempotency_key_duplicate_and_conflict(client):
    events = [{"user_id": "idem-user", "item_id": "1", "kind": "view", "ts": 1.7e9}]
    key = f"idem-{uuid.uuid4().hex}"
    assert _post(client, events, key).json()["duplicate"] is False
    again = _post(client, events, key)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    other = _post(client, [{**events[0], "item_id": "2"}], key)
    assert other.status_code == 409 and other.headers["content-type"].startswith("application/problem+json")
    missing = client.post("/v1/events", json={"events": events}, headers=auth("events"))
    assert missing.status_code == 422 and "Idempotency-Key" in missing.json()["detail"]


def test_events_reach_the_store_pseudonymised(client, api_settings):
    user = f"store-user-{uuid.uuid4().hex[:8]}"
    assert _post(client, [{"user_id": user, "item_id": "17", "kind": "rating", "value": 3.5, "ts": 1.7e9},
                          {"user_id": user, "followee_id": "1", "kind": "follow"}]).status_code == 202
    ctx = client.app.state.socialrec.events
    assert ctx.replayer.drain(timeout=30)
    pseudo = Pseudonymiser(TEST_KEY.encode()).user(user)
    store = EmbeddedStore(api_settings.home / "store", "filmtrust")
    inter = store.read_table("interactions")
    row = inter[(inter["user_id"] == pseudo) & (inter["item_id"] == "17")]
    assert len(row) == 1 and row.iloc[0]["kind"] == "rating" and row.iloc[0]["value"] == 3.5
    follows = store.read_table("follows")
    assert ((follows["follower_id"] == pseudo) & (follows["followee_id"] == Pseudonymiser(TEST_KEY.encode()).user("1"))).sum() == 1
    assert user.encode() not in (ctx.queue.path).read_bytes() + ctx.queue.path.with_name("events.sqlite3-wal").read_bytes()
    health = client.get("/v1/admin/events", headers=auth("admin")).json()
    assert health["pending"] == 0 and health["store"] == "ok"


class FlakyStore:
    """An embedded store whose writes fail while ``down`` is set (a store outage)."""

    def __init__(self, inner: EmbeddedStore, down: threading.Event):
        self.inner, self.down, self.calls = inner, down, 0

    def upsert(self, table, rows):
        self.calls += 1
        if self.down.is_set():
            raise ConnectionError("store unavailable")
        return self.inner.upsert(table, rows)

    def close(self):
        pass


def _stream(queue: EventQueue, replayer: EventReplayer, n_batches: int, outage: threading.Event, outage_at: range):
    for b in range(n_batches):
        if b == outage_at.start:
            outage.set()
        if b == outage_at.stop:
            outage.clear()
        rows = [("interactions", {"user_id": f"u{b:03d}", "item_id": f"i{j}", "kind": "view", "value": 1.0, "ts": 1e9 + b})
                for j in range(5)]
        assert not queue.enqueue(f"batch-{b:04d}", rows).duplicate
        assert queue.enqueue(f"batch-{b:04d}", rows).duplicate  # a client retry adds nothing
        replayer.kick()
        time.sleep(0.005)


def test_store_outage_loses_nothing_and_delivers_exactly_once(tmp_path):
    store = EmbeddedStore(tmp_path / "store", "events-test")
    outage = threading.Event()
    flaky = FlakyStore(store, outage)
    queue = EventQueue(tmp_path / "queue")
    replayer = EventReplayer(queue, lambda: flaky, interval_s=0.05, max_backoff_s=0.2).start()
    try:
        _stream(queue, replayer, 60, outage, range(15, 40))
        assert replayer.drain(timeout=30)
    finally:
        replayer.stop()
    stats = queue.stats()
    assert (stats["pending"], stats["delivered"], stats["batches"]) == (0, 300, 60)
    with queue._tx() as db:
        failed_attempts = db.execute("SELECT MAX(attempts) FROM rows").fetchone()[0]
    assert failed_attempts >= 1, "the outage must have made deliveries fail and wait in the queue"
    inter = store.read_table("interactions")
    assert len(inter) == 300 and not inter.duplicated(["user_id", "item_id", "kind"]).any()
    # a crash after the store write but before "delivered" replays the rows: the keyed upsert keeps one copy
    rows = queue.pending(10)
    assert rows == []
    with queue._tx() as db:
        db.execute("UPDATE rows SET delivered_at = NULL WHERE idem_key = 'batch-0007'")
    assert EventReplayer(queue, lambda: store).drain(timeout=10)
    assert len(store.read_table("interactions")) == 300
    queue.close()


def test_queue_survives_a_process_restart(tmp_path):
    queue = EventQueue(tmp_path / "queue")
    queue.enqueue("restart-0001", [("interactions", {"user_id": "u1", "item_id": "i1", "kind": "view", "value": 1.0, "ts": 1.0})])
    queue.close()  # the process dies before the store was reachable
    reopened = EventQueue(tmp_path / "queue")
    assert reopened.stats()["pending"] == 1
    store = EmbeddedStore(tmp_path / "store", "restart")
    assert EventReplayer(reopened, lambda: store).drain(timeout=10)
    assert len(store.read_table("interactions")) == 1
    assert reopened.enqueue("restart-0001", [("interactions", {"user_id": "u1", "item_id": "i1", "kind": "view",
                                                               "value": 1.0, "ts": 1.0})]).duplicate


# ---------------------------------------------------------------------------- real Neo4j
class _BoltProxy:
    """A loopback TCP proxy in front of the real Neo4j: ``stop()`` takes the database away from
    the client (existing connections are cut, new ones refused) and ``start()`` brings it back."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.neo4j
def test_neo4j_outage_mid_stream_every_event_arrives_exactly_once(tmp_path):
    uri = os.environ.get("SOCIALREC_NEO4J_URI")
    if not uri:
        pytest.skip("SOCIALREC_NEO4J_URI is not set (CI starts a real Neo4j)")
    try:
        from graph.neo4j_store import Neo4jStore
    except ImportError:
        pytest.skip("graph.neo4j_store is not available yet")
    from urllib.parse import urlparse

    target = urlparse(uri)
    proxy = _BoltProxy((target.hostname or "127.0.0.1", target.port or 7687))
    proxy.start()
    dataset = f"events-outage-{uuid.uuid4().hex[:8]}"
    user, password = os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"), os.environ.get("SOCIALREC_NEO4J_PASSWORD", "")
    open_store = lambda: Neo4jStore(f"bolt://127.0.0.1:{proxy.port}", user, password, dataset)  # noqa: E731
    queue = EventQueue(tmp_path / "queue")
    replayer = EventReplayer(queue, open_store, interval_s=0.1, max_backoff_s=0.5).start()
    try:
        for b in range(40):
            if b == 10:
                proxy.stop()  # Neo4j goes away mid-stream
            if b == 30:
                proxy.start()
            rows = [("interactions", {"user_id": f"u{b:03d}", "item_id": f"i{j}", "kind": "view", "value": 1.0, "ts": 1e9 + b})
                    for j in range(3)]
            queue.enqueue(f"neo-{b:04d}", rows)
            queue.enqueue(f"neo-{b:04d}", rows)
            replayer.kick()
            time.sleep(0.05)
        assert replayer.drain(timeout=120), replayer.last_error
    finally:
        replayer.stop()
    check = Neo4jStore(uri, user, password, dataset)
    try:
        inter = check.read_table("interactions")
        assert len(inter) == 120 and not inter.duplicated(["user_id", "item_id", "kind"]).any()
        check.clear()
    finally:
        check.close()
        proxy.stop()
        queue.close()


def test_events_the_etl_would_quarantine_are_rejected_whole(client):
    """An unknown item or an out-of-range rating is a 422 naming the event; nothing is queued."""
    key = f"etl-rules-{uuid.uuid4().hex}"
    r = _post(client, [{"user_id": "1", "item_id": "no-such-item-xyz", "kind": "purchase"},
                       {"user_id": "1", "item_id": "17", "kind": "rating", "value": 99}], key)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    assert "events[0]: unknown item" in detail and "events[1]: rating value 99" in detail
    ok = _post(client, [{"user_id": "1", "item_id": "17", "kind": "rating", "value": 3.5}], key)
    assert ok.status_code == 202 and ok.json()["duplicate"] is False  # the rejected batch left no trace
