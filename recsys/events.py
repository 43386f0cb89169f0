"""Real-time events: a durable local queue in front of the store, and its replayer.

``POST /v1/events`` appends each batch to an append-only SQLite journal (WAL mode,
``synchronous=FULL``) under ``SOCIALREC_HOME/queue/`` *before* it answers, keyed by the client's
``Idempotency-Key``; a background :class:`EventReplayer` writes pending rows to the store
(Neo4j or embedded) and marks them delivered. A store outage therefore loses nothing: rows wait
in the journal and are retried with back-off until the store answers.

Exactly once, end to end:

* a batch whose ``Idempotency-Key`` is already journalled is not journalled again (a retry with
  the same body is acknowledged as a duplicate; a different body under the same key is a
  conflict);
* a row is marked delivered only after the store's upsert returned; a crash in between replays
  it, and the store's upserts are keyed (``MERGE`` on ``(user_id, item_id, kind)`` /
  ``(follower_id, followee_id)``), so a replayed row replaces itself instead of adding a copy;
* one replayer at a time per queue folder (an ``fcntl`` lock), so two server workers never race.

Rows are canonical-table rows (``interactions``, ``follows``, ``users``, ``items``) whose user
ids are already pseudonymised; the journal never holds a raw user id.

Registrations (``POST /v1/users``, ``POST /v1/items``) go through the same journal: one batch
per registration (:func:`user_registration_rows` / :func:`item_registration_rows`, keyed by
:func:`registration_key`, a hash of the pseudonymised body, so a retry is a duplicate), durable
before the 201, replayed to the store exactly once like events (``User`` / ``Item`` nodes and
``FOLLOWS`` edges, so the next retrain learns them). A server that loads a model version —
at start, or on a hot swap — re-applies the registrations that version does not know yet
(:func:`restore_registrations`), so a new user keeps ``cold_start_social`` and a new item keeps
its similar items across swaps and restarts. Registration batches are kept by :meth:`EventQueue.prune`
(they are what a restart restores from); their count is small.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TABLES = ("users", "items", "interactions", "follows")
#: ``Idempotency-Key`` prefixes of registration batches (see :func:`registration_key`).
USER_REGISTRATION_PREFIX, ITEM_REGISTRATION_PREFIX = "reg-user:", "reg-item:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    idem_key     TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    received_at  REAL NOT NULL,
    n_rows       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rows (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key     TEXT NOT NULL REFERENCES batches(idem_key),
    pos          INTEGER NOT NULL,
    table_name   TEXT NOT NULL,
    row_json     TEXT NOT NULL,
    delivered_at REAL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    UNIQUE (idem_key, pos)
);
CREATE INDEX IF NOT EXISTS rows_pending ON rows (seq) WHERE delivered_at IS NULL;
"""


class IdempotencyConflict(ValueError):
    """The ``Idempotency-Key`` was used before with a different body."""


@dataclass(frozen=True)
class EnqueueResult:
    """What :meth:`EventQueue.enqueue` did.

    Attributes:
        duplicate: the key was journalled before with the same body (nothing new was written).
        rows: rows of the batch.
    """

    duplicate: bool
    rows: int


def batch_fingerprint(rows: list[tuple[str, dict]]) -> str:
    """SHA-256 of a batch's canonical JSON (detects a reused key with a different body)."""
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class EventQueue:
    """The append-only journal of event batches (SQLite, WAL, one file).

    Args:
        folder: where ``events.sqlite3`` and ``replay.lock`` live (created).
    Thread-safe: one connection guarded by a lock; other processes use their own connections
    (SQLite's WAL allows concurrent readers and one writer at a time).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "events.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._db.executescript(_SCHEMA)
        #: callbacks run after a new batch is committed (``api.follower`` bumps the shared head)
        self.on_enqueued: list[Callable[[], None]] = []

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def enqueue(self, idem_key: str, rows: list[tuple[str, dict]], fingerprint: str | None = None) -> EnqueueResult:
        """Journal a batch durably (committed with ``synchronous=FULL`` before returning).

        Args:
            idem_key: the client's ``Idempotency-Key``.
            rows: ``[(table, row), ...]``; ``table`` in :data:`TABLES`, ``row`` a canonical row
                with pseudonymised user ids.
            fingerprint: what identifies the batch's content for the idempotency check (the
                request body's hash, before server-side defaults); default: a hash of ``rows``.
        Returns:
            :class:`EnqueueResult`; ``duplicate=True`` when the key was journalled with the same rows.
        Raises:
            IdempotencyConflict: the key was journalled with different rows.
            ValueError: an unknown table.
        """
        for table, _ in rows:
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r}")
        fp = fingerprint or batch_fingerprint(rows)
        with self._tx() as db:
            found = db.execute("SELECT fingerprint, n_rows FROM batches WHERE idem_key = ?", (idem_key,)).fetchone()
            if found is not None:
                if found[0] != fp:
                    raise IdempotencyConflict("this Idempotency-Key was already used with a different body")
                return EnqueueResult(duplicate=True, rows=int(found[1]))
            db.execute(
                "INSERT INTO batches (idem_key, fingerprint, received_at, n_rows) VALUES (?, ?, ?, ?)",
                (idem_key, fp, time.time(), len(rows)),
            )
            db.executemany(
                "INSERT INTO rows (idem_key, pos, table_name, row_json) VALUES (?, ?, ?, ?)",
                [(idem_key, i, t, json.dumps(r, sort_keys=True, default=str)) for i, (t, r) in enumerate(rows)],
            )
        for callback in self.on_enqueued:
            callback()
        return EnqueueResult(duplicate=False, rows=len(rows))

    def rows_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, str, str, dict]]:
        """Journal rows after ``seq`` (delivered or not), oldest first: ``[(seq, idem_key, table, row)]``.
        What a server worker follows to apply the batches other workers received."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, idem_key, table_name, row_json FROM rows WHERE seq > ? ORDER BY seq LIMIT ?", (int(seq), int(limit)))
            return [(int(s), k, t, json.loads(j)) for s, k, t, j in cur.fetchall()]

    def last_seq(self) -> int:
        """The newest row's ``seq`` (0 for an empty journal)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM rows").fetchone()[0])

    def pending(self, limit: int = 1000) -> list[tuple[int, str, dict]]:
        """Undelivered rows, oldest first: ``[(seq, table, row), ...]``."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, table_name, row_json FROM rows WHERE delivered_at IS NULL ORDER BY seq LIMIT ?", (int(limit),)
            )
            return [(int(s), t, json.loads(j)) for s, t, j in cur.fetchall()]

    def mark_delivered(self, seqs: list[int]) -> None:
        """Mark rows as written to the store."""
        if not seqs:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany("UPDATE rows SET delivered_at = ?, last_error = NULL WHERE seq = ?", [(now, s) for s in seqs])

    def mark_failed(self, seqs: list[int], error: str) -> None:
        """Count a failed delivery attempt (the rows stay pending)."""
        if not seqs:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE rows SET attempts = attempts + 1, last_error = ? WHERE seq = ?", [(error[:500], s) for s in seqs]
            )

    def stats(self) -> dict:
        """``{"pending", "delivered", "batches", "oldest_pending_age_s"}``."""
        with self._lock:
            pending, delivered = self._db.execute(
                "SELECT SUM(delivered_at IS NULL), SUM(delivered_at IS NOT NULL) FROM rows"
            ).fetchone()
            batches = self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            oldest = self._db.execute(
                "SELECT MIN(b.received_at) FROM rows r JOIN batches b USING (idem_key) WHERE r.delivered_at IS NULL"
            ).fetchone()[0]
        return {
            "pending": int(pending or 0),
            "delivered": int(delivered or 0),
            "batches": int(batches),
            "oldest_pending_age_s": round(time.time() - oldest, 3) if oldest else 0.0,
        }

    def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Delete delivered event rows older than ``older_than_s``; their batch keys stay
        (idempotency), and registration batches stay whole (a restart restores from them).

        Args:
            older_than_s: age of delivery in seconds, >= 0.
        Returns:
            Rows deleted.
        Raises:
            ValueError: negative age.
        """
        if older_than_s < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
        cutoff = time.time() - older_than_s
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM rows WHERE delivered_at IS NOT NULL AND delivered_at < ? "
                "AND idem_key NOT LIKE 'reg-%'", (cutoff,))
            return int(cur.rowcount or 0)

    def registrations(self) -> list[tuple[int, str, str, dict]]:
        """Every journalled registration row, oldest first: ``[(seq, idem_key, table, row), ...]``
        (delivered or not)."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, idem_key, table_name, row_json FROM rows WHERE idem_key LIKE 'reg-%' ORDER BY seq")
            return [(int(s), k, t, json.loads(j)) for s, k, t, j in cur.fetchall()]


# ============================================================================ registrations
def registration_key(prefix: str, rows: list[tuple[str, dict]]) -> str:
    """The ``Idempotency-Key`` of a registration batch: ``prefix`` + SHA-256 of its rows (which
    carry pseudonyms only), so the same registration sent twice is one batch."""
    return prefix + batch_fingerprint(rows)[:48]


def user_registration_rows(user_pseudo: str, followee_pseudos: list[str], attributes: dict | None,
                           ts: float | None = None) -> list[tuple[str, dict]]:
    """Journal rows of ``POST /v1/users``: the ``users`` row (attributes as one JSON text
    property ``attributes``, absent when none) and one ``follows`` row per followee.

    Args:
        user_pseudo: the user's pseudonym.
        followee_pseudos: pseudonyms of the users followed (order kept, duplicates dropped).
        attributes: the request's attributes (JSON types) or None.
        ts: follow time, Unix seconds (None = unknown).
    """
    user: dict = {"user_id": user_pseudo}
    if attributes:
        user["attributes"] = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
    rows: list[tuple[str, dict]] = [("users", user)]
    for f in dict.fromkeys(followee_pseudos):
        if f != user_pseudo:
            rows.append(("follows", {"follower_id": user_pseudo, "followee_id": f, "ts": ts}))
    return rows


def item_registration_rows(item_id: str, category: str | None, title: str | None, text: str | None) -> list[tuple[str, dict]]:
    """Journal rows of ``POST /v1/items``: one ``items`` row (``brand`` is folded into ``text``
    by the route, as the service sees it)."""
    return [("items", {"item_id": item_id, "category": category, "title": title, "text": text})]


def restore_registrations(service, queue: EventQueue) -> dict:
    """Re-apply journalled registrations the service's version does not know yet.

    A user is restored into the service's cold-start overlay unless the version's snapshot
    already has history for them (their events then made them a regular user); an item unless
    it is in the version's catalogue. Later registrations of the same id replace earlier ones,
    as in the live API. Called when a version is loaded (start-up, hot swap), never per request.

    Args:
        service: a :class:`recsys.serving.RecommendationService` (its ``snapshot``, ``overlay``,
            ``register_item``).
        queue: the journal.
    Returns:
        ``{"users": n_restored, "items": n_restored}``.
    """
    users: dict[str, tuple[list[str], dict | None]] = {}
    items: dict[str, dict] = {}
    for _, key, table, row in queue.registrations():
        if key.startswith(USER_REGISTRATION_PREFIX):
            if table == "users":
                attrs = row.get("attributes")
                users[row["user_id"]] = ([], json.loads(attrs) if isinstance(attrs, str) else None)
            elif table == "follows" and row.get("follower_id") in users:
                users[row["follower_id"]][0].append(row["followee_id"])
        elif key.startswith(ITEM_REGISTRATION_PREFIX) and table == "items":
            items[row["item_id"]] = row
    snap = service.snapshot
    n_users = n_items = 0
    for item_id, row in items.items():
        if snap.item_index(item_id) is not None:
            continue
        try:
            service.register_item(item_id, row.get("category"), row.get("title"), row.get("text"))
            n_items += 1
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop a swap
            log.warning("could not restore a registered item (%s)", type(exc).__name__)
    for pseudo, (followees, attrs) in users.items():
        u = snap.user_index(pseudo)
        if u is not None and snap.interactions[u].nnz > 0:
            continue
        idx = [snap.user_index(f) for f in followees]
        service.overlay.put_user(pseudo, np.array([j for j in idx if j is not None], np.int64), attrs)
        n_users += 1
    if n_users or n_items:
        log.info("restored %d registered user(s) and %d registered item(s) the served version does not know", n_users, n_items)
    return {"users": n_users, "items": n_items}


def deliver(store, rows: list[tuple[int, str, dict]]) -> list[int]:
    """Write journal rows to the store, one upsert per table, in ``seq`` order.

    Args:
        store: a :class:`graph.store.GraphStore`.
        rows: ``[(seq, table, row), ...]`` from :meth:`EventQueue.pending`.
    Returns:
        The ``seq`` of every row written.
    Raises:
        Exception: whatever the store raises; nothing is marked delivered then.
    """
    by_table: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for seq, table, row in rows:
        by_table[table].append((seq, row))
    done: list[int] = []
    # node tables first, so relationships find their nodes
    for table in sorted(by_table, key=lambda t: TABLES.index(t)):
        items = by_table[table]
        frame = pd.DataFrame([r for _, r in items])
        store.upsert(table, frame)
        done.extend(s for s, _ in items)
    return done


class EventReplayer:
    """Background thread that writes the queue's pending rows to the store, with back-off.

    Args:
        queue: the journal.
        open_store: () -> a :class:`graph.store.GraphStore`; called again after a failure (a
            fresh connection once the store is back).
        interval_s: seconds between passes when idle.
        batch: rows per pass.
        max_backoff_s: longest wait after repeated failures.
        on_pending: optional callback with the pending count after each pass (metrics).
    """

    def __init__(
        self,
        queue: EventQueue,
        open_store: Callable[[], object],
        interval_s: float = 2.0,
        batch: int = 1000,
        max_backoff_s: float = 30.0,
        on_pending: Callable[[int], None] | None = None,
    ):
        self.queue = queue
        self._open_store = open_store
        self.interval_s = interval_s
        self.batch = batch
        self.max_backoff_s = max_backoff_s
        self.on_pending = on_pending
        self._store = None
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.last_error: str | None = None
        self._lock_path = queue.folder / "replay.lock"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "EventReplayer":
        """Start the background thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="socialrec-event-replayer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the store connection."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_store()

    def kick(self) -> None:
        """Ask for a pass now (after an enqueue)."""
        self._kick.set()

    # ------------------------------------------------------------------ work
    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def replay_once(self) -> int:
        """One pass: deliver up to ``batch`` pending rows.

        Returns:
            Rows delivered (0 when none were pending or another process holds the replay lock).
        Raises:
            Exception: the store's error; the rows stay pending.
        """
        with open(self._lock_path, "a+") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process's replayer is on it
            rows = self.queue.pending(self.batch)
            if not rows:
                return 0
            try:
                if self._store is None:
                    self._store = self._open_store()
                done = deliver(self._store, rows)
            except Exception as exc:
                self.queue.mark_failed([s for s, _, _ in rows], f"{type(exc).__name__}: {exc}")
                self._close_store()
                raise
            self.queue.mark_delivered(done)
            return len(done)

    def drain(self, timeout: float = 30.0) -> bool:
        """Deliver until nothing is pending (in the caller's thread). True when drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.replay_once() == 0 and self.queue.stats()["pending"] == 0:
                    return True
            except Exception:  # noqa: BLE001 - store down: retry until the deadline
                time.sleep(0.2)
        return self.queue.stats()["pending"] == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.interval_s
            try:
                while self.replay_once() > 0 and not self._stop.is_set():
                    pass
                if self._failures:
                    log.info("event store reachable again; the queue is flushed")
                self._failures, self.last_error = 0, None
            except Exception as exc:  # noqa: BLE001 - keep the thread alive through outages
                self._failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self.max_backoff_s, 0.5 * 2 ** min(self._failures, 10))
                log.warning("event store write failed (%s); %d attempt(s), retrying in %.1fs", type(exc).__name__, self._failures, delay)
            if self.on_pending is not None:
                try:
                    self.on_pending(self.queue.stats()["pending"])
                except Exception:  # noqa: BLE001 - metrics must not stop delivery
                    pass
            # after a failure wait out the back-off (new events must not hammer a store that is
            # down); otherwise wake up early when an enqueue kicks
            (self._stop if self._failures else self._kick).wait(delay)
            self._kick.clear()
