"""Every server worker sees every event and registration: workers follow the shared journal.

``socialrec serve --workers N`` runs N processes, each with its own in-memory served state (the
fold-in overlay, the live "seen" items, users and items registered online). A request reaches
one worker; the others learn of it from the durable journal they all share
(:class:`recsys.events.EventQueue`, SQLite WAL under ``SOCIALREC_HOME/queue/``):

* after a batch is committed, the worker that journalled it increments a shared **head counter**
  (8 bytes in ``queue/head.seq``, memory-mapped by every worker, updated under an ``fcntl`` lock);
* before a worker answers a recommendation or similar-items request it compares the head with
  the one it last applied (a memory read, ~1 µs) and, when they differ, first applies the new
  journal rows (:meth:`JournalFollower.catch_up`): interactions are folded in
  (:meth:`recsys.serving.RecommendationService.fold_in_of`, ``note_interactions_of``) and
  registrations re-applied (:func:`recsys.events.restore_registrations`, idempotent);
* ``POST /v1/events`` applies its own batch the same way (journal first, then catch up), so each
  worker applies each batch exactly once, in journal order.

The documented delay is therefore zero: a request that starts after another worker answered
202/201 already sees the event or registration (read-your-writes across workers). A background
poll (``interval_s``) also applies rows journalled by other processes sharing the queue folder.

Rows carry pseudonymised ids only (the journal never holds a raw user id).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

HEAD_FILE = "head.seq"


class SharedHead:
    """A 64-bit counter in a small file every worker maps: bumped per journalled batch."""

    def __init__(self, folder: str | os.PathLike):
        path = Path(folder) / HEAD_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._lock_path = path.with_suffix(".lock")

    def read(self) -> int:
        return int.from_bytes(self._map[:8], "little")

    def bump(self) -> None:
        """Increment under an exclusive file lock (workers of one host)."""
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._map[:8] = (self.read() + 1).to_bytes(8, "little")

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass


class JournalFollower:
    """Applies journal rows to this process's served state, exactly once each, in order.

    Args:
        queue: the shared :class:`recsys.events.EventQueue`.
        state: the :class:`api.app.AppState` whose ``service`` receives the rows.
        interval_s: background poll for rows from processes that do not bump the head (0 = none).
    """

    def __init__(self, queue, state, interval_s: float = 1.0):
        self.queue = queue
        self.state = state
        self.head = SharedHead(queue.folder)
        self.cursor = queue.last_seq()  # rows before this process started belong to the snapshot/store
        self._seen_head = self.head.read()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.applied = 0
        queue.on_enqueued.append(self.head.bump)
        self._thread = None
        if interval_s > 0:
            self._thread = threading.Thread(target=self._run, args=(interval_s,), name="socialrec-journal-follower", daemon=True)
            self._thread.start()

    def behind(self) -> bool:
        """True when another worker journalled a batch this one has not applied (a memory read)."""
        return self.head.read() != self._seen_head

    def catch_up(self) -> int:
        """Apply every journal row after the cursor. Returns rows applied."""
        from recsys.events import restore_registrations

        with self._lock:
            head = self.head.read()
            rows = self.queue.rows_since(self.cursor)
            if not rows:
                self._seen_head = head
                return 0
            service = self.state.service
            per_user: dict[str, tuple[list[str], list[float]]] = {}
            registrations = False
            for _, key, table, row in rows:
                if key.startswith("reg-"):
                    registrations = True
                elif table == "interactions":
                    items, values = per_user.setdefault(row["user_id"], ([], []))
                    items.append(str(row["item_id"]))
                    values.append(float(row.get("value") or 1.0))
            if service is not None:
                for pseudo, (items, values) in per_user.items():
                    try:
                        service.fold_in_of(pseudo, items, values)
                    except Exception as exc:  # noqa: BLE001 - folding is best effort; the events are durable
                        log.warning("fold_in failed (%s); the event is stored and the next retrain learns it", type(exc).__name__)
                    service.note_interactions_of(pseudo, items)
                if registrations:
                    restore_registrations(service, self.queue)
            self.cursor = rows[-1][0]
            self._seen_head = head
            self.applied += len(rows)
            return len(rows)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                if self.queue.last_seq() > self.cursor:
                    self.catch_up()
            except Exception as exc:  # noqa: BLE001 - keep following
                log.warning("journal follower: %s", type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.queue.on_enqueued.remove(self.head.bump)
        except ValueError:
            pass
        self.head.close()
