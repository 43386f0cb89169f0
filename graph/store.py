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

import json
import os
import tempfile
import threading
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

    # ---------------------------------------------------------------- small documents
    @abstractmethod
    def write_meta(self, key: str, value: dict) -> None:
        """Store a small JSON document under ``key`` (e.g. the ETL's completion record), atomically."""

    @abstractmethod
    def read_meta(self, key: str) -> dict | None:
        """The document written under ``key``, or None."""

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
    resolve keys with "the later write wins". A process-local lock serialises writers.

    Args:
        root: directory of the store (``SOCIALREC_HOME/store``).
        dataset: namespace, e.g. ``"ciao"``; letters, digits, ``-``, ``_``, ``.``, ``:`` only.
    Raises:
        ValueError: bad dataset name.
    """

    _lock = threading.RLock()
    COMPACT_AFTER_PARTS = 16

    def __init__(self, root: str | os.PathLike, dataset: str):
        safe = dataset.replace(":", "_").replace("/", "_")
        if not safe or not all(ch.isalnum() or ch in "-_." for ch in safe):
            raise ValueError(f"bad dataset name {dataset!r}")
        self.dataset = dataset
        self.dir = Path(root) / safe
        self.dir.mkdir(parents=True, exist_ok=True)

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
        with self._lock:
            parts = self._parts(table)
            seq = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
            path = self._table_dir(table) / f"part-{seq:08d}.parquet"
            _atomic_write_bytes(path, lambda tmp: rows.to_parquet(tmp, index=False))
        return int(len(rows))

    def read_table(self, table: str) -> pd.DataFrame:
        if table not in TABLE_KEYS:
            raise KeyError(f"unknown table {table!r}")
        with self._lock:
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
        with self._lock:
            for table in TABLE_KEYS:
                for path in self._parts(table):
                    path.unlink()
            for path in (self.dir / "meta").glob("*.json"):
                path.unlink()

    # ---------------------------------------------------------------- write-back
    def write_vectors(self, label: str, ids: np.ndarray, vectors: np.ndarray, name: str, model_version: str) -> int:
        ids = np.asarray(ids).astype(str)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"vectors {vectors.shape} do not match ids {ids.shape}")
        path = self.dir / "vectors" / f"{label}.{name}.npz"
        with self._lock:
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
        with self._lock:
            current = self.read_scores(label)
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

    def read_scores(self, label: str) -> pd.DataFrame:
        path = self.dir / "scores" / f"{label}.parquet"
        if not path.exists():
            return pd.DataFrame({"id": pd.Series(dtype=object)})
        return pd.read_parquet(path)

    def write_meta(self, key: str, value: dict) -> None:
        """Store a small JSON document atomically under ``meta/<key>.json``."""
        path = self.dir / "meta" / f"{key}.json"
        _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2, sort_keys=True)))

    def read_meta(self, key: str) -> dict | None:
        path = self.dir / "meta" / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else None


def open_store(
    dataset: str,
    home: str | os.PathLike,
    neo4j_uri: str | None = None,
    neo4j_user: str = "neo4j",
    neo4j_password: str | None = None,
    kind: str | None = None,
) -> GraphStore:
    """Open the configured store for ``dataset``.

    Args:
        dataset: namespace.
        home: ``SOCIALREC_HOME``; the embedded store lives in ``home/store``.
        neo4j_uri, neo4j_user, neo4j_password: Neo4j connection; when the URI is unset the
            embedded store is used.
        kind: force ``"embedded"`` or ``"neo4j"``; None = Neo4j iff a URI is given.
    Returns:
        A :class:`GraphStore`.
    Raises:
        ValueError: ``kind="neo4j"`` without a URI, or an unknown kind.
    """
    kind = kind or ("neo4j" if neo4j_uri else "embedded")
    if kind == "embedded":
        return EmbeddedStore(Path(home) / "store", dataset)
    if kind == "neo4j":
        if not neo4j_uri:
            raise ValueError("store 'neo4j' needs SOCIALREC_NEO4J_URI")
        from graph.neo4j_store import Neo4jStore  # imported lazily: the driver is only needed here

        return Neo4jStore(neo4j_uri, neo4j_user, neo4j_password or "", dataset)
    raise ValueError(f"unknown store kind {kind!r}; expected 'embedded' or 'neo4j'")
