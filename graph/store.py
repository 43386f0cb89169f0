"""One store interface for the rest of socialrec, and the embedded (file-based) store.

The store holds the canonical tables of one dataset (its *namespace*) and the model outputs
written back to it. Two implementations share this interface:

* :class:`EmbeddedStore` — Parquet/NumPy files under ``SOCIALREC_HOME/store/<dataset>/``; the
  default, so the main job runs on a laptop with no server.
* ``graph.neo4j_store.Neo4jStore`` — Neo4j, the system of record for analysts (Cypher).

Canonical tables and their keys (a second upsert of the same key replaces the row, so loads are
idempotent)::

    users         user_id                         (+ attributes)
    items         item_id                         category, title, brand, text
    interactions  (user_id, item_id, kind)        value, ts
    reviews       review_id                       user_id, item_id, rating, helpfulness, text, ts
    follows       (follower_id, followee_id)      ts

``ts`` is Unix time in seconds (float64, NaN when unknown).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from graph.snapshot import Snapshot, build_snapshot

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id", "kind"),
    "reviews": ("review_id",),
    "follows": ("follower_id", "followee_id"),
}
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id", "category", "title", "brand", "text"),
    "interactions": ("user_id", "item_id", "kind", "value", "ts"),
    "reviews": ("review_id", "user_id", "item_id", "rating", "helpfulness", "text", "ts"),
    "follows": ("follower_id", "followee_id", "ts"),
}
NODE_LABELS = ("User", "Item", "Category", "Review", "Segment")


SLOT_SEPARATOR = "__"


def version_slot(version: str) -> str:
    """The write-back slot of a model version id: ``v`` + the id with non-alphanumerics as ``_``
    (``20261130T071502Z-3f9a`` -> ``v20261130T071502Z_3f9a``), a valid property-name suffix."""
    return "v" + "".join(c if c.isalnum() else "_" for c in str(version))[:40]


def slot_name(name: str, slot: str) -> str:
    """The property name of ``name`` in write-back ``slot``: ``<name>__<slot>``."""
    return f"{name}{SLOT_SEPARATOR}{slot}"


def check_finite_vectors(vectors: np.ndarray, what: str) -> None:
    """Refuse vectors holding NaN or infinity (a NaN property must never reach the graph).

    Raises:
        ValueError: naming how many rows are not finite.
    """
    bad = ~np.isfinite(vectors).all(axis=1) if vectors.ndim == 2 and vectors.size else np.zeros(0, bool)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} of {len(bad)} vectors hold NaN/inf; nothing was written")


class StoreError(RuntimeError):
    """A store operation failed (I/O, server unreachable, inconsistent write)."""


def empty_table(table: str) -> pd.DataFrame:
    """An empty canonical table with the right columns. Raises KeyError for an unknown table."""
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TABLE_COLUMNS[table]})


def _dtype(column: str) -> str:
    return "float64" if column in ("value", "ts", "rating", "helpfulness") else "object"


def normalise_rows(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Validate and order the columns of a batch for ``table``.

    Args:
        table: one of ``TABLE_KEYS``.
        rows: a batch; must hold the key columns; missing optional columns are filled with NaN.
    Returns:
        A copy with the canonical columns first (extra attribute columns kept after them), keys as str.
    Raises:
        KeyError: unknown table. ValueError: a key column is missing or null.
    """
    if table not in TABLE_KEYS:
        raise KeyError(f"unknown table {table!r}; expected one of {sorted(TABLE_KEYS)}")
    missing = [k for k in TABLE_KEYS[table] if k not in rows.columns]
    if missing:
        raise ValueError(f"{table}: missing key column(s) {missing}")
    out = rows.copy()
    for col in TABLE_COLUMNS[table]:
        if col not in out.columns:
            out[col] = pd.Series(np.nan, index=out.index, dtype=_dtype(col))
    for k in TABLE_KEYS[table]:
        if out[k].isna().any():
            raise ValueError(f"{table}: null key in column {k!r}")
        out[k] = out[k].astype(str)
    for col in ("value", "ts", "rating", "helpfulness"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    extra = [c for c in out.columns if c not in TABLE_COLUMNS[table]]
    return out[list(TABLE_COLUMNS[table]) + extra].reset_index(drop=True)


CAMPAIGN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
#: assignment columns the stores manage; extra columns must be plain identifiers.
ASSIGNMENT_KEYS = ("user_id", "arm")


def normalise_campaign(campaign: dict, assignments: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Check a campaign document and its assignment rows before any store writes them.

    Args:
        campaign: dict with ``id`` (letters, digits, ``_.-``; at most 64) and ``arms`` (list of
            str); other JSON-able fields are kept as they are.
        assignments: ``user_id``, ``arm`` (+ extra columns named like identifiers).
    Returns:
        ``(campaign, rows)``: rows with ``user_id``/``arm`` as str, sorted by ``user_id``.
    Raises:
        ValueError: bad id, no arms, a missing/null key column, a user assigned twice, an arm
            not in ``arms``, or a bad extra column name.
    """
    import re

    cid = campaign.get("id")
    if not isinstance(cid, str) or not re.fullmatch(CAMPAIGN_ID_PATTERN, cid):
        raise ValueError(f"campaign id {cid!r}: 1-64 letters, digits, '_', '.', '-' (not starting with one of the last three)")
    arms = campaign.get("arms")
    if not arms or not all(isinstance(a, str) and a for a in arms) or len(set(arms)) != len(arms):
        raise ValueError(f"campaign {cid}: 'arms' must be a list of distinct non-empty names, got {arms!r}")
    for col in ASSIGNMENT_KEYS:
        if col not in assignments.columns:
            raise ValueError(f"campaign {cid}: assignments lack column {col!r}")
        if assignments[col].isna().any():
            raise ValueError(f"campaign {cid}: null {col} in assignments")
    rows = assignments.copy()
    rows["user_id"] = rows["user_id"].astype(str)
    rows["arm"] = rows["arm"].astype(str)
    dup = rows["user_id"].duplicated(keep=False)
    if dup.any():
        raise ValueError(f"campaign {cid}: user {rows.loc[dup, 'user_id'].iloc[0]!r} is assigned more than once")
    unknown = sorted(set(rows["arm"]) - set(arms))
    if unknown:
        raise ValueError(f"campaign {cid}: unknown arm(s) {unknown}; arms are {list(arms)}")
    for col in rows.columns:
        if col not in ASSIGNMENT_KEYS and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(col)):
            raise ValueError(f"campaign {cid}: bad assignment column name {col!r}")
        if col in ("dataset", "id", "key", "campaign"):
            raise ValueError(f"campaign {cid}: assignment column {col!r} is reserved")
    rows = rows.sort_values("user_id", kind="stable").reset_index(drop=True)
    return dict(campaign), rows


class GraphStore(ABC):
    """The store interface every caller uses; one instance serves one dataset namespace.

    Implementations must make each call atomic: after an exception nothing of that call is
    visible, and what was stored before is intact.
    """

    dataset: str

    # ---------------------------------------------------------------- loading
    @abstractmethod
    def upsert(self, table: str, rows: pd.DataFrame) -> int:
        """Insert or replace rows of a canonical table, keyed by ``TABLE_KEYS[table]``.

        Args:
            table: ``users``, ``items``, ``interactions``, ``reviews`` or ``follows``.
            rows: the batch (see :func:`normalise_rows`).
        Returns:
            Number of rows written.
        Raises:
            KeyError, ValueError: bad table or rows. StoreError: the write failed (nothing written).
        """

    @abstractmethod
    def read_table(self, table: str) -> pd.DataFrame:
        """All rows of a canonical table (columns of ``TABLE_COLUMNS``), in key order."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts per canonical table (and per node label / relationship type for Neo4j)."""

    @abstractmethod
    def clear(self) -> None:
        """Delete everything stored for this dataset namespace."""

    # ---------------------------------------------------------------- reading
    def snapshot(self) -> Snapshot:
        """The training snapshot of this dataset, built by :func:`graph.snapshot.build_snapshot`."""
        return build_snapshot(
            self.dataset,
            self.read_table("users"),
            self.read_table("items"),
            self.read_table("interactions"),
            self.read_table("follows"),
            kind_weights=getattr(self, "kind_weights", None),
        )

    # ---------------------------------------------------------------- write-back
    @abstractmethod
    def write_vectors(self, label: str, ids: np.ndarray, vectors: np.ndarray, name: str, model_version: str) -> int:
        """Write per-node embeddings back.

        Args:
            label: ``User`` or ``Item``.
            ids: (n,) node ids (pseudonymised user ids / item ids).
            vectors: (n, dim) float32.
            name: property name, e.g. ``als_embedding``.
            model_version: version tag stored beside the vectors.
        Returns:
            Number of nodes written.
        Raises:
            ValueError: if shapes disagree.
        """

    @abstractmethod
    def read_vectors(self, label: str, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Read back ``(ids (n,), vectors (n, dim) float32, model_version)``; empty arrays if none."""

    @abstractmethod
    def write_scores(self, label: str, ids: np.ndarray, scores: dict[str, np.ndarray], model_version: str) -> int:
        """Write per-node scalar scores (e.g. ``clv``, ``influence``, ``segment``) back.

        Args:
            label: node label (``User``, ``Item``).
            ids: (n,) node ids.
            scores: name -> (n,) array (float, int or str).
            model_version: version tag.
        Returns:
            Number of nodes written.
        """

    @abstractmethod
    def read_scores(self, label: str) -> pd.DataFrame:
        """All scores written for ``label``: a frame with column ``id``, one column per score and
        ``<score>_version``."""

    # ---------------------------------------------------------------- write-back slots
    # A model version's write-back goes under its own *slot*: properties ``<name>__<slot>``
    # (``slot_name``), written in batches while the version is a candidate. Readers resolve a
    # plain ``name`` through the store's current slot (``write_back_slot``), which one tiny write
    # (``flip_write_back``) moves after promotion; ``drop_write_back_slots`` then removes the
    # losers. So whatever an analyst or the API reads comes from exactly one version, however
    # large the catalogue and wherever a run is killed.
    WRITE_BACK_META = "writeback"

    def write_back_slot(self) -> str | None:
        """The slot readers resolve to (None before the first flip)."""
        doc = self.read_meta(self.WRITE_BACK_META)
        return doc.get("current") if doc else None

    def write_back_state(self) -> dict:
        """``{"current", "version", "staged": {slot: {"version", "complete"}}}`` ({} when none)."""
        return self.read_meta(self.WRITE_BACK_META) or {}

    def stage_write_back(self, slot: str, version: str, complete: bool) -> None:
        """Record that ``slot`` (of model ``version``) is being written (``complete=False``) or is
        fully written (``complete=True``); only complete slots may be flipped to."""
        doc = self.write_back_state()
        doc.setdefault("staged", {})[slot] = {"version": version, "complete": bool(complete)}
        self.write_meta(self.WRITE_BACK_META, doc)

    def flip_write_back(self, slot: str) -> None:
        """Make ``slot`` the one readers see (one small atomic write).

        Raises:
            ValueError: the slot was never completely written.
        """
        doc = self.write_back_state()
        staged = doc.get("staged", {}).get(slot)
        if not staged or not staged.get("complete"):
            raise ValueError(f"write-back slot {slot!r} is not completely written; refusing to flip to it")
        doc.update(current=slot, version=staged["version"])
        self.write_meta(self.WRITE_BACK_META, doc)

    def drop_write_back_slots(self, keep: set[str] | None = None) -> list[str]:
        """Delete every slot's properties except ``keep`` (default: the current slot).

        Returns:
            The slots removed.
        """
        doc = self.write_back_state()
        keep = set(keep) if keep is not None else {doc.get("current")}
        losers = [s for s in doc.get("staged", {}) if s not in keep]
        for slot in losers:
            self._drop_slot(slot)
            doc["staged"].pop(slot, None)
        if losers:
            self.write_meta(self.WRITE_BACK_META, doc)
        return losers

    def _drop_slot(self, slot: str) -> None:
        """Remove the properties/vectors of one slot (implemented by each store)."""
        raise NotImplementedError

    def _resolve(self, name: str) -> str:
        """``name`` -> ``name__<current slot>`` once a slot is current."""
        slot = self.write_back_slot()
        return slot_name(name, slot) if slot else name

    # ---------------------------------------------------------------- small documents
    @abstractmethod
    def write_meta(self, key: str, value: dict) -> None:
        """Store a small JSON document under ``key`` (e.g. the ETL's completion record), atomically."""

    @abstractmethod
    def read_meta(self, key: str) -> dict | None:
        """The document written under ``key``, or None."""

    # ---------------------------------------------------------------- campaigns
    # Randomised campaigns (``recsys.campaigns``): one document per campaign plus one assignment
    # row per user. Stores that keep none raise NotImplementedError.
    def write_campaign(self, campaign: dict, assignments: pd.DataFrame) -> int:
        """Store a new campaign and all its assignments in one atomic write.

        Args:
            campaign: JSON-able document with at least ``id`` (see :func:`normalise_campaign`).
            assignments: one row per user: ``user_id``, ``arm`` and optional extra columns
                (``stratum``, imported outcomes/covariates; numbers or text).
        Returns:
            Number of assignments written.
        Raises:
            ValueError: bad document/rows, a user twice, an arm not in ``campaign["arms"]``, or
                a campaign with this id already exists (nothing is written).
            StoreError: the write failed (nothing is written).
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no campaigns")

    def read_campaign(self, campaign_id: str) -> dict | None:
        """The campaign document, or None when there is no such campaign."""
        raise NotImplementedError(f"{type(self).__name__} keeps no campaigns")

    def read_assignments(self, campaign_id: str) -> pd.DataFrame:
        """The campaign's assignments (``user_id``, ``arm``, extra columns), sorted by user_id.

        Raises:
            KeyError: no such campaign.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no campaigns")

    def list_campaigns(self) -> list[dict]:
        """Every campaign document of this dataset, sorted by id."""
        raise NotImplementedError(f"{type(self).__name__} keeps no campaigns")

    def delete_campaign(self, campaign_id: str) -> bool:
        """Delete a campaign and its assignments; True when it existed."""
        raise NotImplementedError(f"{type(self).__name__} keeps no campaigns")
    # ---------------------------------------------------------------- precomputed lists
    def write_recommendations(self, frame: pd.DataFrame, model_version: str, batch_size: int = 50_000) -> int:
        """Replace the stored top-K lists (batch scoring) with ``frame``.

        Args:
            frame: columns ``user_id, rank, item_id, score`` (one row per user and rank).
            model_version: version tag stored with every row.
            batch_size: rows per write (stores that write in transactions).
        Returns:
            Rows written. Readers see the previous lists until the new ones are complete.
        """
        raise StoreError(f"{type(self).__name__} does not store precomputed recommendations")

    def read_recommendations(self) -> pd.DataFrame:
        """The stored lists: ``user_id, rank, item_id, score, model_version`` (empty if none)."""
        raise StoreError(f"{type(self).__name__} does not store precomputed recommendations")

    def bulk_import(self, tables: dict[str, pd.DataFrame], home: Path, password: str, progress=None) -> dict:
        """First load of an empty database with the store's offline importer (Neo4j only).

        Raises:
            StoreError: this store has none (the embedded store's ordinary load is already its fastest).
        """
        raise StoreError(f"{type(self).__name__} has no offline bulk importer: load without --bulk")

    def close(self) -> None:
        """Release connections. Safe to call twice."""


# ============================================================================ embedded store
def _atomic_write_bytes(path: Path, writer) -> None:
    """Write a file atomically: ``writer(tmp_path)`` then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class EmbeddedStore(GraphStore):
    """The default store: Parquet part files per canonical table under ``root/<dataset>/<table>/``.

    Every write goes to a temporary file and is renamed into place (POSIX-atomic), so a killed
    process never leaves a half-written table; an upsert appends one part (O(batch)), and reads
    resolve keys with "the later write wins". A thread lock plus an ``fcntl`` file lock (``<dataset>/store.lock``)
    serialise writers and compactions across threads and processes.

    Args:
        root: directory of the store (``SOCIALREC_HOME/store``).
        dataset: namespace, e.g. ``"ciao"``; letters, digits, ``-``, ``_``, ``.``, ``:`` only.
    Raises:
        ValueError: bad dataset name.
    """

    _lock = threading.RLock()
    _held: dict = {}  # folder -> this process holds its file lock (guarded by _lock)
    COMPACT_AFTER_PARTS = 16

    def __init__(self, root: str | os.PathLike, dataset: str):
        safe = dataset.replace(":", "_").replace("/", "_")
        if not safe or not all(ch.isalnum() or ch in "-_." for ch in safe):
            raise ValueError(f"bad dataset name {dataset!r}")
        self.dataset = dataset
        self.dir = Path(root) / safe
        self.dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self):
        """This process's writers (a thread lock) AND other processes (an ``fcntl`` lock on
        ``<dataset>/store.lock``): a server's event replayer appending a part while a ``train`` in
        another process compacts the table must not lose the part (both would pick one seq)."""
        with self._lock:
            if self._held.get(self.dir):  # re-entered by this thread (the RLock is ours): already locked
                yield
                return
            with open(self.dir / "store.lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                self._held[self.dir] = True
                try:
                    yield
                finally:
                    self._held[self.dir] = False
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _table_dir(self, table: str) -> Path:
        return self.dir / table

    def _parts(self, table: str) -> list[Path]:
        """Part files of a table in write order (names carry a zero-padded sequence number)."""
        d = self._table_dir(table)
        return sorted(d.glob("part-*.parquet")) if d.is_dir() else []

    def upsert(self, table: str, rows: pd.DataFrame) -> int:
        """Append the batch as a new part file (O(batch), atomic rename); reads resolve keys.

        Later parts win over earlier ones for the same key, so re-loading the same rows is
        idempotent; :meth:`read_table` compacts the parts once there are many of them.
        """
        rows = normalise_rows(table, rows)
        if rows.empty:
            return 0
        keys = list(TABLE_KEYS[table])
        rows = rows.drop_duplicates(keys, keep="last")
        with self._locked():
            parts = self._parts(table)
            seq = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
            path = self._table_dir(table) / f"part-{seq:08d}.parquet"
            _atomic_write_bytes(path, lambda tmp: rows.to_parquet(tmp, index=False))
        return int(len(rows))

    def read_table(self, table: str) -> pd.DataFrame:
        if table not in TABLE_KEYS:
            raise KeyError(f"unknown table {table!r}")
        with self._locked():
            parts = self._parts(table)
            if not parts:
                return empty_table(table)
            frames = [pd.read_parquet(p) for p in parts]
            keys = list(TABLE_KEYS[table])
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            if len(frames) > 1:
                merged = merged.drop_duplicates(keys, keep="last")
            merged = merged.sort_values(keys, kind="stable").reset_index(drop=True)
            if len(parts) > self.COMPACT_AFTER_PARTS:
                # compact: one new part holding the resolved table, then drop the old parts;
                # a crash in between leaves duplicates that the keep-last rule resolves.
                seq = int(parts[-1].stem.split("-")[1]) + 1
                path = self._table_dir(table) / f"part-{seq:08d}.parquet"
                _atomic_write_bytes(path, lambda tmp: merged.to_parquet(tmp, index=False))
                for old in parts:
                    old.unlink()
            return merged

    def counts(self) -> dict[str, int]:
        return {table: int(len(self.read_table(table))) for table in TABLE_KEYS}

    def clear(self) -> None:
        with self._locked():
            for table in TABLE_KEYS:
                for path in self._parts(table):
                    path.unlink()
            for path in (self.dir / "meta").glob("*.json"):
                path.unlink()
            # written-back vectors and scores belong to the namespace too (as in Neo4j, where
            # they are node properties): a cleared store has no write-back left
            for path in [*(self.dir / "vectors").glob("*.npz"), *(self.dir / "scores").glob("*.parquet")]:
                path.unlink()
            shutil.rmtree(self.dir / "campaigns", ignore_errors=True)

    # ---------------------------------------------------------------- write-back
    def write_vectors(self, label: str, ids: np.ndarray, vectors: np.ndarray, name: str, model_version: str) -> int:
        ids = np.asarray(ids).astype(str)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"vectors {vectors.shape} do not match ids {ids.shape}")
        check_finite_vectors(vectors, f"{label}.{name}")
        path = self.dir / "vectors" / f"{label}.{name}.npz"
        with self._locked():
            _atomic_write_bytes(
                path,
                lambda tmp: np.savez(open(tmp, "wb"), ids=ids, vectors=vectors, version=np.array(model_version)),
            )
        return int(ids.shape[0])

    def write_recommendations(self, frame: pd.DataFrame, model_version: str, batch_size: int = 50_000) -> int:
        out = frame.loc[:, ["user_id", "rank", "item_id", "score"]].copy()
        out["model_version"] = model_version
        with self._lock:
            _atomic_write_bytes(self.dir / "recommendations.parquet", lambda tmp: out.to_parquet(tmp, index=False))
        return int(len(out))

    def read_recommendations(self) -> pd.DataFrame:
        path = self.dir / "recommendations.parquet"
        if not path.exists():
            return pd.DataFrame(columns=["user_id", "rank", "item_id", "score", "model_version"])
        return pd.read_parquet(path)

    def read_vectors(self, label: str, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
        """See :meth:`GraphStore.read_vectors`; a plain name resolves through the current slot."""
        if SLOT_SEPARATOR not in name:
            name = self._resolve(name)
        path = self.dir / "vectors" / f"{label}.{name}.npz"
        if not path.exists():
            return np.array([], dtype=object), np.zeros((0, 0), np.float32), None
        with np.load(path, allow_pickle=False) as z:
            return z["ids"].astype(object), z["vectors"], str(z["version"])

    def write_scores(self, label: str, ids: np.ndarray, scores: dict[str, np.ndarray], model_version: str) -> int:
        ids = np.asarray(ids).astype(str)
        frame = pd.DataFrame({"id": ids})
        for key, values in scores.items():
            values = np.asarray(values)
            if values.shape[0] != ids.shape[0]:
                raise ValueError(f"score {key!r} has {values.shape[0]} values for {ids.shape[0]} ids")
            frame[key] = values
            frame[f"{key}_version"] = model_version
        path = self.dir / "scores" / f"{label}.parquet"
        with self._locked():
            current = self.read_scores(label, raw=True)
            if len(current):
                merged = current.set_index("id")
                update = frame.set_index("id")
                merged = merged.reindex(merged.index.union(update.index))
                for col in update.columns:
                    if col not in merged.columns:
                        merged[col] = pd.Series(index=merged.index, dtype=update[col].dtype)
                    merged.loc[update.index, col] = update[col]
                frame = merged.reset_index().rename(columns={"index": "id"})
            _atomic_write_bytes(path, lambda tmp: frame.to_parquet(tmp, index=False))
        return int(ids.shape[0])

    def read_scores(self, label: str, raw: bool = False) -> pd.DataFrame:
        """See :meth:`GraphStore.read_scores`: slotted columns of the current slot appear under
        their plain names, other slots' columns are hidden (``raw=True``: every column)."""
        path = self.dir / "scores" / f"{label}.parquet"
        if not path.exists():
            return pd.DataFrame({"id": pd.Series(dtype=object)})
        frame = pd.read_parquet(path)
        return frame if raw else resolve_score_columns(frame, self.write_back_slot())

    def _drop_slot(self, slot: str) -> None:
        suffix = SLOT_SEPARATOR + slot
        with self._locked():
            for path in (self.dir / "vectors").glob(f"*{suffix}.npz"):
                path.unlink()
            for path in (self.dir / "scores").glob("*.parquet"):
                frame = pd.read_parquet(path)
                cols = [c for c in frame.columns if c.endswith(suffix) or c.endswith(suffix + "_version")]
                if cols:
                    kept = frame.drop(columns=cols)
                    _atomic_write_bytes(path, lambda tmp: kept.to_parquet(tmp, index=False))

    def write_meta(self, key: str, value: dict) -> None:
        """Store a small JSON document atomically under ``meta/<key>.json``."""
        path = self.dir / "meta" / f"{key}.json"
        _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2, sort_keys=True)))

    def read_meta(self, key: str) -> dict | None:
        path = self.dir / "meta" / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    # ---------------------------------------------------------------- campaigns
    # campaigns/<id>/campaign.json + assignments.parquet, written in a temporary folder and
    # renamed into place (one atomic rename: a campaign is there whole or not at all).
    def _campaign_dir(self, campaign_id: str) -> Path:
        import re

        if not isinstance(campaign_id, str) or not re.fullmatch(CAMPAIGN_ID_PATTERN, campaign_id):
            raise KeyError(f"no campaign {campaign_id!r}")
        return self.dir / "campaigns" / campaign_id

    def write_campaign(self, campaign: dict, assignments: pd.DataFrame) -> int:
        campaign, rows = normalise_campaign(campaign, assignments)
        final = self._campaign_dir(campaign["id"])
        with self._lock:
            if final.exists():
                raise ValueError(f"campaign {campaign['id']!r} already exists in {self.dataset!r}")
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            try:
                rows.to_parquet(tmp / "assignments.parquet", index=False)
                (tmp / "campaign.json").write_text(json.dumps(campaign, indent=2, sort_keys=True, default=str))
                os.rename(tmp, final)
            except BaseException:
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return int(len(rows))

    def read_campaign(self, campaign_id: str) -> dict | None:
        try:
            path = self._campaign_dir(campaign_id) / "campaign.json"
        except KeyError:
            return None
        return json.loads(path.read_text()) if path.exists() else None

    def read_assignments(self, campaign_id: str) -> pd.DataFrame:
        path = self._campaign_dir(campaign_id) / "assignments.parquet"
        if not path.exists():
            raise KeyError(f"no campaign {campaign_id!r} in {self.dataset!r}")
        return pd.read_parquet(path)

    def list_campaigns(self) -> list[dict]:
        root = self.dir / "campaigns"
        if not root.is_dir():
            return []
        docs = [json.loads((d / "campaign.json").read_text()) for d in sorted(root.iterdir())
                if not d.name.startswith(".") and (d / "campaign.json").exists()]
        return sorted(docs, key=lambda d: d["id"])

    def delete_campaign(self, campaign_id: str) -> bool:
        import shutil

        try:
            final = self._campaign_dir(campaign_id)
        except KeyError:
            return False
        with self._lock:
            if not final.exists():
                return False
            # rename first (atomic: the campaign disappears at once), then remove the files
            gone = final.parent / f".deleted-{final.name}-{os.getpid()}"
            os.rename(final, gone)
            shutil.rmtree(gone, ignore_errors=True)
        return True


def resolve_score_columns(frame: pd.DataFrame, slot: str | None) -> pd.DataFrame:
    """Score columns as readers see them: ``<name>__<slot>`` of the current slot renamed to
    ``<name>`` (replacing an unslotted column of that name), columns of other slots dropped."""
    if not any(SLOT_SEPARATOR in c for c in frame.columns):
        return frame
    out = frame.copy()
    keep_suffix = SLOT_SEPARATOR + slot if slot else None
    for col in list(out.columns):
        if SLOT_SEPARATOR not in col:
            continue
        base, _, rest = col.partition(SLOT_SEPARATOR)
        own = keep_suffix is not None and (rest == slot or rest == slot + "_version")
        if own:
            plain = base + ("_version" if rest.endswith("_version") else "")
            out[plain] = out.pop(col)
        else:
            out.pop(col)
    return out


def open_store(
    dataset: str,
    home: str | os.PathLike,
    neo4j_uri: str | None = None,
    neo4j_user: str = "neo4j",
    neo4j_password: str | None = None,
    kind: str | None = None,
    kind_weights: dict[str, float] | None = None,
) -> GraphStore:
    """Open the configured store for ``dataset``.

    Args:
        dataset: namespace.
        home: ``SOCIALREC_HOME``; the embedded store lives in ``home/store``.
        neo4j_uri, neo4j_user, neo4j_password: Neo4j connection; when the URI is unset the
            embedded store is used.
        kind: force ``"embedded"`` or ``"neo4j"``; None = Neo4j iff a URI is given.
        kind_weights: per-kind confidence weights its snapshots use for mixed-kind tables
            (``SOCIALREC_KIND_WEIGHTS``; None = :data:`graph.snapshot.DEFAULT_KIND_WEIGHTS`).
    Returns:
        A :class:`GraphStore`.
    Raises:
        ValueError: ``kind="neo4j"`` without a URI, or an unknown kind.
    """
    kind = kind or ("neo4j" if neo4j_uri else "embedded")
    if kind == "embedded":
        store: GraphStore = EmbeddedStore(Path(home) / "store", dataset)
    elif kind == "neo4j":
        if not neo4j_uri:
            raise ValueError("store 'neo4j' needs SOCIALREC_NEO4J_URI")
        from graph.neo4j_store import Neo4jStore  # imported lazily: the driver is only needed here

        store = Neo4jStore(neo4j_uri, neo4j_user, neo4j_password or "", dataset)
    else:
        raise ValueError(f"unknown store kind {kind!r}; expected 'embedded' or 'neo4j'")
    store.kind_weights = kind_weights  # snapshot(): per-kind confidence weights of mixed tables
    return store
