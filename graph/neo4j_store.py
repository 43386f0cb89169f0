"""Neo4j as the store: the canonical tables as a property graph analysts can query in Cypher.

Graph model (``docs/graph-schema.md`` has the diagram)::

    (:User)-[:FOLLOWS {ts}]->(:User)
    (:User)-[:RATED {value, ts}]->(:Item)                     # kind 'rating'
    (:User)-[:PURCHASED {value, ts}]->(:Item)                 # kind 'purchase'
    (:User)-[:INTERACTED {kind, value, ts}]->(:Item)          # play, view and any other kind
    (:User)-[:WROTE]->(:Review {rating, helpfulness, text, ts})-[:REVIEWS]->(:Item)
    (:Item {category, title, brand, text})-[:IN_CATEGORY]->(:Category {name})
    (:User)-[:IN_SEGMENT]->(:Segment)                          # write_segments
    (:Campaign {name, status, launched_at, ...})-[:ASSIGNED {arm, ...}]->(:User)   # write_campaign

One database holds several datasets: every node carries ``dataset`` and ``id``, and each label
has a composite uniqueness constraint on ``(dataset, id)``. A node that only exists because a
relationship referenced it (a user in ``follows`` missing from ``users``) carries ``stub: true``
and is not returned by ``read_table`` of its node table, exactly like the embedded store.

Safety: every value travels as a query parameter; labels, relationship types and property names
that must appear in query text come from the fixed whitelists below or are validated identifiers.

Loading: :meth:`Neo4jStore.upsert` is one transaction per call (atomic, MERGE on the constrained
keys, replace semantics). :meth:`Neo4jStore.load` is the bulk path: batches of ``batch_size`` rows,
one transaction each with a ``(:LoadCheckpoint)`` node written in the same transaction, so a
killed load rerun with the same input skips the committed batches and finishes the rest; tables
that were empty for this dataset when the load began are written with ``CREATE`` (the checkpoints
prove a batch is new and the load's keys are de-duplicated), the others with ``MERGE``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from graph.store import (SLOT_SEPARATOR, TABLE_COLUMNS, TABLE_KEYS, GraphStore, StoreError, check_finite_vectors,
                         normalise_campaign, normalise_rows, resolve_score_columns)

log = logging.getLogger("socialrec.graph.neo4j")

#: interaction kind -> relationship type; any other kind is INTERACTED with its ``kind`` property.
KIND_REL_TYPES: dict[str, str] = {"rating": "RATED", "purchase": "PURCHASED"}
DEFAULT_INTERACTION_REL = "INTERACTED"
INTERACTION_REL_TYPES = ("RATED", "PURCHASED", "INTERACTED")
#: labels with a (dataset, id) uniqueness constraint.
NODE_LABELS = ("User", "Item", "Review", "Category", "Segment", "Campaign")
#: labels write-back accepts.
WRITE_BACK_LABELS = ("User", "Item", "Segment", "Category")
#: property names the store manages itself; extra attribute columns may not use them.
RESERVED_PROPERTIES = frozenset({"dataset", "id", "stub", "key", "kind", "name"})
#: bookkeeping labels (not part of the analyst's graph).
CHECKPOINT_LABEL, JOB_LABEL, META_LABEL = "LoadCheckpoint", "LoadJob", "StoreMeta"
#: Relationship types and property keys of the graph model that :meth:`Neo4jStore.ensure_schema`
#: registers in the database's token store even before any data uses them, so that Cypher over a
#: dataset without, e.g., purchases (Ciao) or before the first write-back runs without
#: "... does not exist" notifications (Neo4j warns about unknown tokens, never about absent data).
SCHEMA_REL_TYPES = ("FOLLOWS", "RATED", "PURCHASED", "INTERACTED", "WROTE", "REVIEWS", "IN_CATEGORY", "IN_SEGMENT")
SCHEMA_PROPERTY_KEYS = ("value", "ts", "rating", "helpfulness", "text", "category", "title", "brand",
                        "clv", "influence", "pagerank", "weighted_value", "churn_risk", "p_alive",
                        "propensity", "rfm_segment", "popularity", "top_items", "label", "size",
                        "als_embedding")
#: load order: nodes before the relationships that reference them.
LOAD_ORDER = ("users", "items", "reviews", "follows", "interactions")
DEFAULT_BATCH_SIZE = 10_000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NUMERIC = ("value", "ts", "rating", "helpfulness")


def _check_ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ValueError(f"bad {what} {name!r}: letters, digits and _ only, not starting with a digit")
    return name


def _check_label(label: str, allowed: Iterable[str] = WRITE_BACK_LABELS) -> str:
    if label not in allowed:
        raise ValueError(f"unknown label {label!r}; expected one of {sorted(allowed)}")
    return label


def vector_index_name(label: str, name: str) -> str:
    """Name of the vector index over ``(:label).name``, e.g. ``vec_item_als_embedding``."""
    return f"vec_{label.lower()}_{name}"


# ============================================================================ column helpers
def _column(frame: pd.DataFrame, col: str) -> list:
    """A column as a list of Python values, None where missing (NaN/None/NA)."""
    s = frame[col]
    if col in _NUMERIC:
        arr = s.to_numpy(dtype=np.float64)
        out = arr.tolist()
        if np.isnan(arr).any():
            out = [None if v != v else v for v in out]
        return out
    obj = s.astype(object)
    return obj.where(obj.notna(), None).tolist()


def _props(frame: pd.DataFrame, cols: list[str]) -> list[dict]:
    """Rows as property maps (None values remove the property in ``SET n += map``)."""
    if not cols:
        return [{}] * len(frame)
    lists = [_column(frame, c) for c in cols]
    return [dict(zip(cols, vals)) for vals in zip(*lists)]


def _finite_or_none(v):
    """A score value as a property: NaN/inf floats become None (an absent property)."""
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _frame_hash(frame: pd.DataFrame) -> str:
    h = hashlib.sha256(json.dumps(list(map(str, frame.columns))).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame.astype(object), index=False).to_numpy().tobytes())
    return h.hexdigest()


# ============================================================================ the store
class Neo4jStore(GraphStore):
    """The :class:`~graph.store.GraphStore` on a Neo4j 5 server, one dataset namespace per instance.

    Args:
        uri: Bolt URI, e.g. ``bolt://127.0.0.1:7687``.
        user, password: credentials.
        dataset: namespace, e.g. ``"ciao"`` (any string; it only travels as a parameter).
        database: Neo4j database name.
        batch_size: rows per Cypher statement (and per transaction in :meth:`load`).
    Raises:
        StoreError: the server is unreachable or refused the credentials.
    """

    def __init__(
        self,
        uri: str,
        user: str,
        password: str,
        dataset: str,
        database: str = "neo4j",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        from neo4j import GraphDatabase

        if not dataset:
            raise ValueError("dataset must be a non-empty string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.uri = uri
        self.database = database
        self.batch_size = int(batch_size)
        self._driver = GraphDatabase.driver(uri, auth=(user, password), notifications_min_severity="OFF")
        self._closed = False
        self._eid_cache: dict[str, dict[str, str]] | None = None  # label -> id -> elementId, during load()
        self._local = threading.local()  # per loader thread: element ids merged by the open transaction
        self._cache_lock = threading.Lock()
        self.transient_retries = 0  # write transactions the driver retried on transient errors
        try:
            self._driver.verify_connectivity()
        except Exception as exc:  # neo4j raises several unrelated types here
            self._driver.close()
            raise StoreError(f"cannot reach Neo4j at {uri}: {exc}") from exc
        self.ensure_schema()

    # ---------------------------------------------------------------- plumbing
    def _session(self):
        return self._driver.session(database=self.database)

    def _write(self, work: Callable, what: str):
        """Run ``work(tx)`` in one managed write transaction (retried on transient errors; every
        retry is counted in ``transient_retries``, reported per load by ``socialrec etl``)."""
        calls = [0]

        def counted(tx):
            calls[0] += 1
            return work(tx)

        try:
            with self._session() as session:
                return session.execute_write(counted)
        except (KeyError, ValueError):
            raise
        except Exception as exc:
            raise StoreError(f"neo4j {what} failed for dataset {self.dataset!r}: {exc}") from exc
        finally:
            if calls[0] > 1:
                with self._cache_lock:
                    self.transient_retries += calls[0] - 1

    def _read(self, query: str, **params) -> list:
        try:
            with self._session() as session:
                return session.execute_read(lambda tx: list(tx.run(query, ds=self.dataset, **params)))
        except Exception as exc:
            raise StoreError(f"neo4j read failed for dataset {self.dataset!r}: {exc}") from exc

    def _read_columns(self, query: str, ncols: int, **params) -> list[list]:
        """Stream a query's rows into ``ncols`` column lists (one query, not one per node)."""

        def work(tx):
            cols: list[list] = [[] for _ in range(ncols)]
            appends = [c.append for c in cols]
            for record in tx.run(query, ds=self.dataset, **params):
                for append, value in zip(appends, record.values()):
                    append(value)
            return cols

        try:
            with self._session() as session:
                return session.execute_read(work)
        except Exception as exc:
            raise StoreError(f"neo4j read failed for dataset {self.dataset!r}: {exc}") from exc

    def _auto(self, query: str, **params) -> None:
        """An auto-commit query (needed for ``CALL {...} IN TRANSACTIONS`` and schema commands)."""
        try:
            with self._session() as session:
                session.run(query, ds=self.dataset, **params).consume()
        except Exception as exc:
            raise StoreError(f"neo4j statement failed for dataset {self.dataset!r}: {exc}") from exc

    def ensure_schema(self) -> None:
        """Create the uniqueness constraints and indexes (idempotent)."""
        from neo4j.exceptions import ClientError

        statements = [
            f"CREATE CONSTRAINT {label.lower()}_dataset_id IF NOT EXISTS "
            f"FOR (n:{label}) REQUIRE (n.dataset, n.id) IS UNIQUE"
            for label in NODE_LABELS
        ]
        statements += [
            f"CREATE CONSTRAINT {lbl.lower()}_dataset_key IF NOT EXISTS FOR (n:{lbl}) REQUIRE (n.dataset, n.key) IS UNIQUE"
            for lbl in (CHECKPOINT_LABEL, JOB_LABEL, META_LABEL)
        ]
        statements += [  # "all users of this dataset" without a label scan over every dataset
            f"CREATE INDEX {label.lower()}_dataset IF NOT EXISTS FOR (n:{label}) ON (n.dataset)"
            for label in ("User", "Item", "Category", "Segment", CHECKPOINT_LABEL)
        ]
        # one assignment per (campaign, user): ASSIGNED.key = "<campaign id>\x1f<user id>" is unique
        statements.append("CREATE CONSTRAINT assigned_key IF NOT EXISTS FOR ()-[r:ASSIGNED]-() REQUIRE r.key IS UNIQUE")
        with self._session() as session:
            for stmt in statements:
                try:
                    session.run(stmt).consume()
                except ClientError as exc:  # a concurrent creator won the race: fine
                    if "EquivalentSchemaRuleAlreadyExists" not in (exc.code or "") and "already exists" not in str(exc):
                        raise StoreError(f"neo4j schema statement failed: {stmt}: {exc}") from exc
            session.run("CALL db.awaitIndexes(300)").consume()
            # register the model's tokens: a throw-away node with every property and relationship
            # type, deleted in the same transaction (tokens outlive the data that created them)
            rels = ", ".join(f"(m)-[:{t}]->(m)" for t in SCHEMA_REL_TYPES)
            session.run(
                f"CREATE (m:{META_LABEL} {{dataset: '__schema__', key: randomUUID()}}) SET m += $props "
                f"CREATE {rels} WITH m DETACH DELETE m",
                props={k: 0 for k in SCHEMA_PROPERTY_KEYS},
            ).consume()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._driver.close()

    def __enter__(self) -> "Neo4jStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- metadata (extra columns)
    def _meta(self, key: str) -> dict:
        rows = self._read(f"MATCH (m:{META_LABEL} {{dataset: $ds, key: $key}}) RETURN m.doc AS doc", key=key)
        return json.loads(rows[0]["doc"]) if rows else {}

    @staticmethod
    def _set_meta(tx, dataset: str, key: str, doc: dict) -> None:
        tx.run(
            f"MERGE (m:{META_LABEL} {{dataset: $ds, key: $key}}) SET m.doc = $doc",
            ds=dataset, key=key, doc=json.dumps(doc, sort_keys=True),
        ).consume()

    def write_meta(self, key: str, value: dict) -> None:
        """Store a small JSON document under ``key`` (a ``(:StoreMeta)`` node of this dataset)."""
        self._write(lambda tx: self._set_meta(tx, self.dataset, f"doc:{key}", value), f"meta {key}")

    def read_meta(self, key: str) -> dict | None:
        """The document written by :meth:`write_meta` under ``key``, or None."""
        return self._meta(f"doc:{key}") or None

    def write_recommendations(self, frame: pd.DataFrame, model_version: str, batch_size: int = 50_000) -> int:
        """``(:User)-[:RECOMMENDED {rank, score, model_version}]->(:Item)`` for every row, in
        batches of ``batch_size``; the previous version's relationships are deleted (in batches)
        only after the new ones are all written, so a reader filtering on the newest
        ``model_version`` never sees a partial list."""
        users, items = frame["user_id"].astype(str).tolist(), frame["item_id"].astype(str).tolist()
        ranks, scores = frame["rank"].astype(int).tolist(), frame["score"].astype(float).tolist()
        written = 0
        for s in range(0, len(users), batch_size):
            sl = slice(s, s + batch_size)

            def work(tx, sl=sl):
                rec = tx.run(
                    "UNWIND range(0, size($u) - 1) AS k MATCH (u:User {dataset: $ds, id: $u[k]}) "
                    "MATCH (i:Item {dataset: $ds, id: $i[k]}) "
                    "CREATE (u)-[:RECOMMENDED {rank: $r[k], score: $s[k], model_version: $v}]->(i) RETURN count(*) AS n",
                    ds=self.dataset, u=users[sl], i=items[sl], r=ranks[sl], s=scores[sl], v=model_version,
                ).single()
                return int(rec["n"])

            written += self._write(work, "recommendations write-back")
        self._auto(
            "MATCH (u:User {dataset: $ds})-[r:RECOMMENDED]->() WHERE r.model_version <> $v "
            "CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS", v=model_version,
        )
        return written

    def read_recommendations(self) -> pd.DataFrame:
        rows = self._read_columns(
            "MATCH (u:User {dataset: $ds})-[r:RECOMMENDED]->(i:Item) "
            "RETURN u.id, r.rank, i.id, r.score, r.model_version ORDER BY u.id, r.rank", 5)
        return pd.DataFrame(dict(zip(["user_id", "rank", "item_id", "score", "model_version"], rows)))

    def record_columns(self, extras: Mapping[str, Mapping[str, str]]) -> None:
        """Record extra attribute columns per table (name -> pandas dtype string), as a load does;
        used after a load that did not go through this class (the offline bulk importer)."""
        def work(tx):
            for table, new in extras.items():
                if new:
                    merged = self._merged_extras(table, dict(new))
                    self._set_meta(tx, self.dataset, f"columns:{table}", {"extras": list(merged.items())})

        self._write(work, "column metadata")

    def bulk_import(self, tables: Mapping[str, pd.DataFrame], home, password: str, progress=None) -> dict:
        """First load of an EMPTY local database with ``neo4j-admin database import full``; see
        :func:`graph.neo4j_import.bulk_import` (it stops and restarts the server of ``home``)."""
        from graph.neo4j_import import bulk_import

        return bulk_import(self, tables, home, password, progress=progress)

    def _extras(self, table: str) -> dict[str, str]:
        """Extra attribute columns seen for ``table``: name -> pandas dtype string."""
        return dict(self._meta(f"columns:{table}").get("extras", []))

    # ---------------------------------------------------------------- loading
    def _prepare(self, table: str, rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        rows = normalise_rows(table, rows)
        keys = list(TABLE_KEYS[table])
        rows = rows.drop_duplicates(keys, keep="last").reset_index(drop=True)
        extras = [c for c in rows.columns if c not in TABLE_COLUMNS[table]]
        for col in extras:
            if col in RESERVED_PROPERTIES or col.startswith("_") or col in TABLE_COLUMNS[table]:
                raise ValueError(f"{table}: column {col!r} is reserved by the Neo4j store")
        return rows, {c: str(rows[c].dtype) for c in extras}

    def _merged_extras(self, table: str, new: dict[str, str]) -> dict[str, str]:
        known = self._extras(table)
        return {**known, **{k: v for k, v in new.items() if k not in known}}

    def upsert(self, table: str, rows: pd.DataFrame) -> int:
        """Insert or replace rows (one transaction; MERGE on the constrained keys).

        See :meth:`GraphStore.upsert`. Keep calls to ~100k rows: the whole call is one transaction.
        """
        rows, new_extras = self._prepare(table, rows)
        if rows.empty:
            return 0
        extras = self._merged_extras(table, new_extras)
        chunks = [rows.iloc[s : s + self.batch_size] for s in range(0, len(rows), self.batch_size)]

        def work(tx):
            # any write outside a bulk load invalidates the checkpoints of an unfinished load
            tx.run(f"MATCH (c:{CHECKPOINT_LABEL}|{JOB_LABEL} {{dataset: $ds}}) DETACH DELETE c", ds=self.dataset).consume()
            if new_extras:
                self._set_meta(tx, self.dataset, f"columns:{table}", {"extras": list(extras.items())})
            for chunk in chunks:
                self._write_chunk(tx, table, chunk, list(extras), create=False)

        self._write(work, f"upsert into {table}")
        return int(len(rows))

    def load(
        self,
        tables: Mapping[str, pd.DataFrame],
        batch_size: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        workers: int = 1,
    ) -> dict[str, int]:
        """Bulk-load several canonical tables, resumably.

        Batches of ``batch_size`` rows are written one transaction each, together with a
        ``(:LoadCheckpoint)``; rerunning the same load (same rows, same batch size) after a crash
        skips the committed batches. A completed load rerun with identical input is skipped
        whole; any other write to this dataset (``upsert``, ``clear``, another load) voids the
        checkpoints, so skipped work is always work whose result is still in place. Tables with
        no rows in this dataset when the load began are written with ``CREATE`` (much faster
        than ``MERGE``; safe because keys are de-duplicated first and committed batches are never
        rewritten); the others with ``MERGE``. Run one loader per dataset at a time.

        Args:
            tables: table -> rows (any subset of the canonical tables).
            batch_size: rows per transaction (default: the store's).
            progress: called as ``progress(table, rows_done, rows_total)`` after each batch.
            workers: concurrent transactions within a table (tables stay in order). Deadlocks
                between them are retried by the driver.
        Returns:
            table -> rows in the input (after de-duplicating keys, last wins).
        Raises:
            KeyError, ValueError: bad table or rows. StoreError: a write failed; committed batches
            stay and a rerun resumes after them.
        """
        batch_size = int(batch_size or self.batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        unknown = set(tables) - set(TABLE_KEYS)
        if unknown:
            raise KeyError(f"unknown table(s) {sorted(unknown)}; expected {sorted(TABLE_KEYS)}")
        prepared: dict[str, pd.DataFrame] = {}
        extras: dict[str, dict[str, str]] = {}
        digest = hashlib.sha256(f"{self.dataset}\0{batch_size}".encode())
        for table in LOAD_ORDER:
            if table in tables:
                prepared[table], new = self._prepare(table, tables[table])
                extras[table] = self._merged_extras(table, new)
                digest.update(f"\0{table}\0{_frame_hash(prepared[table])}".encode())
        job = digest.hexdigest()[:32]

        state = self._write(lambda tx: self._begin_job(tx, job, list(prepared), extras), "load start")
        if state["done"]:
            log.info("load %s of %s: identical load already complete; skipped", job, self.dataset)
            return {t: len(f) for t, f in prepared.items()}
        committed = set(state["committed"])
        fresh = set(state["fresh"])

        def run_batch(table: str, frame: pd.DataFrame, b: int) -> None:
            key = f"{job}:{table}:{b}"
            if key not in committed:
                chunk = frame.iloc[b * batch_size : (b + 1) * batch_size]
                self._local.pending = {}
                self._write(
                    lambda tx: self._load_batch(tx, table, chunk, list(extras[table]), table in fresh, job, key),
                    f"load of {table} batch {b}",
                )
                with self._cache_lock:
                    for label, found in self._local.pending.items():
                        self._eid_cache.setdefault(label, {}).update(found)
            if progress is not None:
                progress(table, min((b + 1) * batch_size, len(frame)), len(frame))

        self._eid_cache = {}
        try:
            with ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="neo4j-load") as pool:
                for table, frame in prepared.items():  # tables in order; a table's batches in parallel
                    n_batches = (len(frame) + batch_size - 1) // batch_size
                    for future in [pool.submit(run_batch, table, frame, b) for b in range(n_batches)]:
                        future.result()
        finally:
            self._eid_cache = None
        self._write(
            lambda tx: tx.run(f"MATCH (j:{JOB_LABEL} {{dataset: $ds, key: $job}}) SET j.done = true", ds=self.dataset, job=job).consume(),
            "load finish",
        )
        return {t: len(f) for t, f in prepared.items()}

    def _begin_job(self, tx, job: str, tables: list[str], extras: dict[str, dict[str, str]]) -> dict:
        ds = self.dataset
        # a different load (or upsert) since: its checkpoints no longer describe the data
        tx.run(f"MATCH (c:{CHECKPOINT_LABEL} {{dataset: $ds}}) WHERE c.job <> $job DETACH DELETE c", ds=ds, job=job).consume()
        tx.run(f"MATCH (j:{JOB_LABEL} {{dataset: $ds}}) WHERE j.key <> $job DETACH DELETE j", ds=ds, job=job).consume()
        rec = tx.run(f"MATCH (j:{JOB_LABEL} {{dataset: $ds, key: $job}}) RETURN j.fresh AS fresh, j.done AS done", ds=ds, job=job).single()
        if rec is None:
            fresh = [t for t in tables if self._table_is_empty(tx, t)]
            tx.run(
                f"CREATE (:{JOB_LABEL} {{dataset: $ds, key: $job, fresh: $fresh, done: false, started: datetime()}})",
                ds=ds, job=job, fresh=fresh,
            ).consume()
            done = False
        else:
            fresh, done = list(rec["fresh"] or []), bool(rec["done"])
        for table, cols in extras.items():
            if cols:
                self._set_meta(tx, ds, f"columns:{table}", {"extras": list(cols.items())})
        committed = [r["key"] for r in tx.run(f"MATCH (c:{CHECKPOINT_LABEL} {{dataset: $ds, job: $job}}) RETURN c.key AS key", ds=ds, job=job)]
        return {"fresh": fresh, "done": done, "committed": committed}

    def _table_is_empty(self, tx, table: str) -> bool:
        q = {
            "users": "MATCH (n:User {dataset: $ds}) RETURN count(n) = 0 AS empty",
            "items": "MATCH (n:Item {dataset: $ds}) RETURN count(n) = 0 AS empty",
            "reviews": "MATCH (n:Review {dataset: $ds}) RETURN count(n) = 0 AS empty",
            "follows": "RETURN NOT EXISTS { MATCH (u:User {dataset: $ds})-[:FOLLOWS]->() } AS empty",
            "interactions": "RETURN NOT EXISTS { MATCH (u:User {dataset: $ds})-[:RATED|PURCHASED|INTERACTED]->() } AS empty",
        }[table]
        return bool(tx.run(q, ds=self.dataset).single()["empty"])

    def _load_batch(self, tx, table: str, chunk: pd.DataFrame, extras: list[str], create: bool, job: str, key: str) -> None:
        if self._eid_cache is not None and table in ("users", "items"):
            self._eid_cache.pop("User" if table == "users" else "Item", None)  # new nodes: refill when needed
        self._write_chunk(tx, table, chunk, extras, create=create)
        tx.run(
            f"CREATE (:{CHECKPOINT_LABEL} {{dataset: $ds, key: $key, job: $job, table: $table, rows: $rows, at: datetime()}})",
            ds=self.dataset, key=key, job=job, table=table, rows=len(chunk),
        ).consume()

    # ---------------------------------------------------------------- Cypher per table
    # Rows travel as columns ($id, $u, $v, ...: one list per column, UNWIND over the row index):
    # cheaper to pack than one map per row. Relationship endpoints are resolved once per batch
    # (the stub MERGE returns their element ids) and then found by id, not by index seek.
    # Canonical properties are set explicitly (``SET n += map`` forces an Eager plan); extra
    # attribute columns, when a table has any, travel as one map per row in $x.
    def _write_chunk(self, tx, table: str, chunk: pd.DataFrame, extras: list[str], create: bool) -> None:
        {"users": self._w_users, "items": self._w_items, "reviews": self._w_reviews,
         "follows": self._w_follows, "interactions": self._w_interactions}[table](tx, chunk, extras, create)

    def _endpoints(self, tx, label: str, ids: Iterable[str | None]) -> dict[str, str]:
        """MERGE the nodes a relationship batch references (new ones get ``stub: true``) and
        return id -> element id. During :meth:`load` the ids already known come from a cache
        filled once per label, and only the others are merged."""
        wanted = sorted({i for i in ids if i is not None})
        cache = self._eid_cache.get(label) if self._eid_cache is not None else None
        if cache is None and self._eid_cache is not None:
            cache = self._eid_cache[label] = self._element_ids(tx, label)
        missing = wanted if cache is None else [i for i in wanted if i not in cache]
        found: dict[str, str] = {}
        if missing:
            result = tx.run(
                f"UNWIND $ids AS id MERGE (n:{label} {{dataset: $ds, id: id}}) ON CREATE SET n.stub = true "
                "RETURN id, elementId(n) AS eid",
                ds=self.dataset, ids=missing,
            )
            found = {r[0]: r[1] for r in result}
            if cache is not None:  # added to the cache only once this transaction commits
                self._local.pending.setdefault(label, {}).update(found)
        if cache is None:
            return found
        return {i: cache[i] if i in cache else found[i] for i in wanted}

    def _element_ids(self, tx, label: str) -> dict[str, str]:
        out: dict[str, str] = {}
        query = (f"MATCH (n:{label}) WHERE n.dataset = $ds AND n.id IS NOT NULL "
                 "WITH collect([n.id, elementId(n)]) AS pairs UNWIND range(0, size(pairs) - 1, 50000) AS s "
                 "RETURN pairs[s..s + 50000]")
        for record in tx.run(query, ds=self.dataset):
            out.update((a, b) for a, b in record[0])
        return out

    @staticmethod
    def _extra_clause(var: str, extras: list[str]) -> str:
        return f" SET {var} += $x[k]" if extras else ""

    def _w_users(self, tx, chunk, extras, create):
        params = {"id": _column(chunk, "user_id")}
        if extras:
            params["x"] = _props(chunk, extras)
        if create:
            q = "UNWIND range(0, size($id) - 1) AS k CREATE (n:User {dataset: $ds, id: $id[k]})"
        else:
            q = "UNWIND range(0, size($id) - 1) AS k MERGE (n:User {dataset: $ds, id: $id[k]}) REMOVE n.stub"
        tx.run(q + self._extra_clause("n", extras), ds=self.dataset, **params).consume()

    def _w_items(self, tx, chunk, extras, create):
        ids, cats = _column(chunk, "item_id"), _column(chunk, "category")
        names = sorted({c for c in cats if c is not None})
        ceid: dict[str, str] = {}
        if names:
            result = tx.run(
                "UNWIND $names AS name MERGE (c:Category {dataset: $ds, id: name}) ON CREATE SET c.name = name "
                "RETURN name, elementId(c) AS eid",
                ds=self.dataset, names=names,
            )
            ceid = {r[0]: r[1] for r in result}
        params = {"id": ids, "c": cats, "ce": [ceid.get(c) for c in cats], "ti": _column(chunk, "title"),
                  "b": _column(chunk, "brand"), "te": _column(chunk, "text")}
        if extras:
            params["x"] = _props(chunk, extras)
        link = " WITH n, k WHERE $ce[k] IS NOT NULL MATCH (c) WHERE elementId(c) = $ce[k] "
        if create:
            q = ("UNWIND range(0, size($id) - 1) AS k CREATE (n:Item {dataset: $ds, id: $id[k], category: $c[k], "
                 "title: $ti[k], brand: $b[k], text: $te[k]})" + self._extra_clause("n", extras)
                 + link + "CREATE (n)-[:IN_CATEGORY]->(c)")
            tx.run(q, ds=self.dataset, **params).consume()
            return
        tx.run(
            "UNWIND range(0, size($id) - 1) AS k MERGE (n:Item {dataset: $ds, id: $id[k]}) "
            "SET n.category = $c[k], n.title = $ti[k], n.brand = $b[k], n.text = $te[k] REMOVE n.stub"
            + self._extra_clause("n", extras),
            ds=self.dataset, **params,
        ).consume()
        tx.run(  # replace: drop a category link that no longer holds
            "UNWIND range(0, size($id) - 1) AS k MATCH (i:Item {dataset: $ds, id: $id[k]})-[r:IN_CATEGORY]->(c:Category) "
            "WHERE $c[k] IS NULL OR c.id <> $c[k] DELETE r",
            ds=self.dataset, id=ids, c=cats,
        ).consume()
        tx.run(
            "UNWIND range(0, size($id) - 1) AS k MATCH (n:Item {dataset: $ds, id: $id[k]})" + link
            + "MERGE (n)-[:IN_CATEGORY]->(c)",
            ds=self.dataset, id=ids, ce=params["ce"],
        ).consume()

    def _w_reviews(self, tx, chunk, extras, create):
        ids, users, items = _column(chunk, "review_id"), _column(chunk, "user_id"), _column(chunk, "item_id")
        ueid = self._endpoints(tx, "User", users)
        ieid = self._endpoints(tx, "Item", items)
        params = {"id": ids, "u": [ueid.get(u) for u in users], "i": [ieid.get(i) for i in items],
                  "ra": _column(chunk, "rating"), "h": _column(chunk, "helpfulness"),
                  "te": _column(chunk, "text"), "t": _column(chunk, "ts")}
        if extras:
            params["x"] = _props(chunk, extras)
        props = "rating: $ra[k], helpfulness: $h[k], text: $te[k], ts: $t[k]"
        if create:
            whole = [k for k in range(len(ids)) if params["u"][k] is not None and params["i"][k] is not None]
            part = [k for k in range(len(ids)) if params["u"][k] is None or params["i"][k] is None]
            if whole:  # the usual case, author and item known: one pattern
                sub = {key: [vals[k] for k in whole] for key, vals in params.items()}
                tx.run(
                    "UNWIND range(0, size($id) - 1) AS k MATCH (u) WHERE elementId(u) = $u[k] "
                    "MATCH (i) WHERE elementId(i) = $i[k] "
                    f"CREATE (u)-[:WROTE]->(r:Review {{dataset: $ds, id: $id[k], {props}}})-[:REVIEWS]->(i)"
                    + self._extra_clause("r", extras),
                    ds=self.dataset, **sub,
                ).consume()
            if part:
                sub = {key: [vals[k] for k in part] for key, vals in params.items()}
                tx.run(
                    f"UNWIND range(0, size($id) - 1) AS k CREATE (r:Review {{dataset: $ds, id: $id[k], {props}}})"
                    + self._extra_clause("r", extras) +
                    " WITH k, r CALL (k, r) { MATCH (u) WHERE elementId(u) = $u[k] CREATE (u)-[:WROTE]->(r) }"
                    " WITH k, r CALL (k, r) { MATCH (i) WHERE elementId(i) = $i[k] CREATE (r)-[:REVIEWS]->(i) }",
                    ds=self.dataset, **sub,
                ).consume()
            return
        q = ("UNWIND range(0, size($id) - 1) AS k MERGE (r:Review {dataset: $ds, id: $id[k]}) "
             "SET r.rating = $ra[k], r.helpfulness = $h[k], r.text = $te[k], r.ts = $t[k]" + self._extra_clause("r", extras))
        tx.run(q, ds=self.dataset, **params).consume()
        tx.run(  # replace the author / item links
            "UNWIND range(0, size($id) - 1) AS k MATCH (r:Review {dataset: $ds, id: $id[k]}) "
            "CALL (k, r) { MATCH (u)-[w:WROTE]->(r) WHERE $u[k] IS NULL OR elementId(u) <> $u[k] DELETE w } "
            "CALL (k, r) { MATCH (r)-[v:REVIEWS]->(i) WHERE $i[k] IS NULL OR elementId(i) <> $i[k] DELETE v }",
            ds=self.dataset, id=ids, u=params["u"], i=params["i"],
        ).consume()
        tx.run(
            "UNWIND range(0, size($id) - 1) AS k MATCH (r:Review {dataset: $ds, id: $id[k]}) "
            "CALL (k, r) { MATCH (u) WHERE elementId(u) = $u[k] MERGE (u)-[:WROTE]->(r) } "
            "CALL (k, r) { MATCH (i) WHERE elementId(i) = $i[k] MERGE (r)-[:REVIEWS]->(i) }",
            ds=self.dataset, id=ids, u=params["u"], i=params["i"],
        ).consume()

    def _w_follows(self, tx, chunk, extras, create):
        a, b = _column(chunk, "follower_id"), _column(chunk, "followee_id")
        eid = self._endpoints(tx, "User", a + b)
        params = {"a": [eid[x] for x in a], "b": [eid[y] for y in b], "t": _column(chunk, "ts")}
        if extras:
            params["x"] = _props(chunk, extras)
        head = ("UNWIND range(0, size($a) - 1) AS k MATCH (a) WHERE elementId(a) = $a[k] "
                "MATCH (b) WHERE elementId(b) = $b[k] ")
        body = "CREATE (a)-[f:FOLLOWS {ts: $t[k]}]->(b)" if create else "MERGE (a)-[f:FOLLOWS]->(b) SET f.ts = $t[k]"
        tx.run(head + body + self._extra_clause("f", extras), ds=self.dataset, **params).consume()

    def _w_interactions(self, tx, chunk, extras, create):
        users, items, kinds = _column(chunk, "user_id"), _column(chunk, "item_id"), _column(chunk, "kind")
        ueid = self._endpoints(tx, "User", users)
        ieid = self._endpoints(tx, "Item", items)
        values, ts = _column(chunk, "value"), _column(chunk, "ts")
        xs = _props(chunk, extras) if extras else None
        by_type: dict[str, list[int]] = {}
        for j, kind in enumerate(kinds):
            by_type.setdefault(KIND_REL_TYPES.get(kind, DEFAULT_INTERACTION_REL), []).append(j)
        for rel_type, rows in by_type.items():
            assert rel_type in INTERACTION_REL_TYPES  # whitelist: the only text spliced into Cypher
            params = {"u": [ueid[users[j]] for j in rows], "i": [ieid[items[j]] for j in rows],
                      "v": [values[j] for j in rows], "t": [ts[j] for j in rows]}
            if xs is not None:
                params["x"] = [xs[j] for j in rows]
            head = ("UNWIND range(0, size($u) - 1) AS k MATCH (u) WHERE elementId(u) = $u[k] "
                    "MATCH (i) WHERE elementId(i) = $i[k] ")
            if rel_type == DEFAULT_INTERACTION_REL:  # the kind is part of the key
                params["kd"] = [kinds[j] for j in rows]
                body = (f"CREATE (u)-[r:{rel_type} {{kind: $kd[k], value: $v[k], ts: $t[k]}}]->(i)" if create
                        else f"MERGE (u)-[r:{rel_type} {{kind: $kd[k]}}]->(i) SET r.value = $v[k], r.ts = $t[k]")
            else:  # the type says the kind
                body = (f"CREATE (u)-[r:{rel_type} {{value: $v[k], ts: $t[k]}}]->(i)" if create
                        else f"MERGE (u)-[r:{rel_type}]->(i) SET r.value = $v[k], r.ts = $t[k]")
            tx.run(head + body + self._extra_clause("r", extras), ds=self.dataset, **params).consume()

    # ---------------------------------------------------------------- reading
    #: table -> (anchor label, anchor filter, per-anchor pattern, row expression)
    _READ = {
        "users": ("User", "AND n.stub IS NULL", "", "[n.id] + [c IN $extras | n[c]]"),
        "items": ("Item", "AND n.stub IS NULL", "", "[n.id, n.category, n.title, n.brand, n.text] + [c IN $extras | n[c]]"),
        "interactions": ("User", "", "MATCH (n)-[r:RATED|PURCHASED|INTERACTED]->(i:Item)",
                         "[n.id, i.id, CASE type(r) WHEN 'RATED' THEN 'rating' WHEN 'PURCHASED' THEN 'purchase' "
                         "ELSE r.kind END, r.value, r.ts] + [c IN $extras | r[c]]"),
        "reviews": ("Review", "", "OPTIONAL MATCH (u:User)-[:WROTE]->(n) OPTIONAL MATCH (n)-[:REVIEWS]->(i:Item)",
                    "[n.id, u.id, i.id, n.rating, n.helpfulness, n.text, n.ts] + [c IN $extras | n[c]]"),
        "follows": ("User", "", "MATCH (n)-[f:FOLLOWS]->(b:User)", "[n.id, b.id, f.ts] + [c IN $extras | f[c]]"),
    }
    READ_CHUNK = 1000

    def _read_rows(self, table: str, extras: list[str]) -> list[list]:
        """All rows of ``table`` as lists, in one query that streams one record per
        ``READ_CHUNK`` anchor nodes (each record a list of rows: far fewer, larger messages than
        one record per row, which the Python driver decodes slowly)."""
        label, where, pattern, row = self._READ[table]
        query = (
            f"MATCH (n:{label}) WHERE n.dataset = $ds AND n.id IS NOT NULL {where} "
            "WITH collect(n) AS ns UNWIND range(0, size(ns) - 1, $chunk) AS s "
            f"CALL (ns, s) {{ UNWIND ns[s..s + $chunk] AS n {pattern} RETURN collect({row}) AS rows }} "
            "RETURN rows"
        )

        def work(tx):
            out: list[list] = []
            for record in tx.run(query, ds=self.dataset, extras=extras, chunk=self.READ_CHUNK):
                out.extend(record[0])
            return out

        try:
            with self._session() as session:
                return session.execute_read(work)
        except Exception as exc:
            raise StoreError(f"neo4j read of {table} failed for dataset {self.dataset!r}: {exc}") from exc

    def read_table(self, table: str) -> pd.DataFrame:
        """All rows of a canonical table, in key order, as the embedded store returns them
        (key and text columns ``object``, numeric columns ``float64``, NaN where missing)."""
        if table not in TABLE_KEYS:
            raise KeyError(f"unknown table {table!r}")
        extras = self._extras(table)
        canon = list(TABLE_COLUMNS[table])
        names = canon + list(extras)
        rows = self._read_rows(table, list(extras))
        frame = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame({c: [] for c in names}, dtype=object)
        for name in canon:
            if name in _NUMERIC:
                frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
            else:
                frame[name] = frame[name].where(frame[name].notna(), np.nan)
        for name, dtype in extras.items():
            col = frame[name]
            try:
                frame[name] = col.astype(dtype) if dtype not in ("object", "str") else col.where(col.notna(), np.nan)
            except (TypeError, ValueError):
                frame[name] = col.where(col.notna(), np.nan)
        keys = list(TABLE_KEYS[table])
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """Rows per canonical table, plus ``label:<Label>`` (stubs included) and ``rel:<TYPE>``."""
        q = """
        CALL () { MATCH (n:User) WHERE n.dataset = $ds AND n.stub IS NULL RETURN count(n) AS users }
        CALL () { MATCH (n:Item) WHERE n.dataset = $ds AND n.stub IS NULL RETURN count(n) AS items }
        CALL () { MATCH (n:Review) WHERE n.dataset = $ds RETURN count(n) AS reviews }
        CALL () { MATCH (n:User) WHERE n.dataset = $ds RETURN count(n) AS all_users,
                 sum(COUNT { (n)-[:FOLLOWS]->() }) AS follows,
                 sum(COUNT { (n)-[:RATED]->() }) AS rated,
                 sum(COUNT { (n)-[:PURCHASED]->() }) AS purchased,
                 sum(COUNT { (n)-[:INTERACTED]->() }) AS interacted,
                 sum(COUNT { (n)-[:WROTE]->() }) AS wrote,
                 sum(COUNT { (n)-[:IN_SEGMENT]->() }) AS in_segment }
        CALL () { MATCH (n:Item) WHERE n.dataset = $ds RETURN count(n) AS all_items,
                 sum(COUNT { (n)-[:IN_CATEGORY]->() }) AS in_category,
                 sum(COUNT { (n)<-[:REVIEWS]-() }) AS reviews_rel }
        CALL () { MATCH (n:Category) WHERE n.dataset = $ds RETURN count(n) AS categories }
        CALL () { MATCH (n:Segment) WHERE n.dataset = $ds RETURN count(n) AS segments }
        RETURN *
        """
        r = self._read(q)[0]
        return {
            "users": r["users"], "items": r["items"], "reviews": r["reviews"], "follows": r["follows"],
            "interactions": r["rated"] + r["purchased"] + r["interacted"],
            "label:User": r["all_users"], "label:Item": r["all_items"], "label:Review": r["reviews"],
            "label:Category": r["categories"], "label:Segment": r["segments"],
            "rel:FOLLOWS": r["follows"], "rel:RATED": r["rated"], "rel:PURCHASED": r["purchased"],
            "rel:INTERACTED": r["interacted"], "rel:WROTE": r["wrote"], "rel:REVIEWS": r["reviews_rel"],
            "rel:IN_CATEGORY": r["in_category"], "rel:IN_SEGMENT": r["in_segment"],
        }

    def clear(self) -> None:
        """Delete every node of this dataset (and so its relationships), in batches of 10k per
        transaction (``CALL {...} IN TRANSACTIONS``; an interrupted clear is finished by a rerun)."""
        # load bookkeeping first: an interrupted clear must not leave a "done" load job or a
        # completion record behind (a rerun of the same load would be skipped over missing data)
        for label in (CHECKPOINT_LABEL, JOB_LABEL, META_LABEL):
            self._auto(
                f"MATCH (n:{label}) WHERE n.dataset = $ds "
                "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
            )
        # relationships next, 10k per transaction: DETACH DELETE of 10k well-connected users
        # at once can exceed the transaction memory pool. Every relationship starts at a User,
        # an Item or a Review of this dataset.
        for label in ("User", "Item", "Review"):
            self._auto(
                f"MATCH (n:{label})-[r]->() WHERE n.dataset = $ds AND n.id IS NOT NULL "
                "CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
            )
        self._auto(
            "MATCH (c:Campaign)-[r:ASSIGNED]->() WHERE c.dataset = $ds "
            "CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
        )
        for label in ("Review", "User", "Item", "Category", "Segment", "Campaign"):
            self._auto(
                f"MATCH (n:{label}) WHERE n.dataset = $ds "
                "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
            )

    # ---------------------------------------------------------------- write-back
    def write_vectors(self, label: str, ids: np.ndarray, vectors: np.ndarray, name: str, model_version: str) -> int:
        """Write embeddings as node properties ``<name>`` (+ ``<name>_version``), and make sure
        the vector index ``vec_<label>_<name>`` (cosine) exists so ``db.index.vector.queryNodes``
        finds similar nodes. Nodes that do not exist are skipped.

        Memory-bounded: the previous vectors of this name are removed and the new ones written
        in transactions of ``batch_size`` nodes each (a 1 GB heap suffices for any catalogue),
        so one call is *not* atomic; the write-back keeps readers on one version by writing each
        version under its own slot name and flipping (:meth:`GraphStore.flip_write_back`).

        Returns:
            Number of nodes written.
        Raises:
            ValueError: shapes disagree, bad label or name, a NaN/inf vector (nothing written).
        """
        _check_label(label)
        _check_ident(name, "vector name")
        ids = np.asarray(ids).astype(str)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"vectors {vectors.shape} do not match ids {ids.shape}")
        check_finite_vectors(vectors, f"{label}.{name}")
        dim = int(vectors.shape[1])
        self._ensure_vector_index(label, name, dim)
        vkey, version_key = name, f"{name}_version"
        meta_key = f"vectors:{label}:{name}"
        # drop the previous write-back of this name first (batched), so a node missing from this
        # call does not keep a vector of another version
        self._remove_properties(label, [vkey, version_key])
        written = 0
        from graph.progress import progress

        for s in progress(range(0, len(ids), self.batch_size), f"write-back {label}.{name}", unit="rows",
                          weight=lambda start: min(self.batch_size, len(ids) - start), total=len(ids)):
            chunk_ids = ids[s : s + self.batch_size].tolist()
            chunk_vecs = vectors[s : s + self.batch_size].tolist()
            rows = [{"id": i, "p": {vkey: v, version_key: model_version}} for i, v in zip(chunk_ids, chunk_vecs)]
            written += self._write(lambda tx: tx.run(
                f"UNWIND $rows AS row MATCH (n:{label} {{dataset: $ds, id: row.id}}) SET n += row.p RETURN count(n) AS c",
                ds=self.dataset, rows=rows,
            ).single()["c"], f"write_vectors {label}.{name}")
        self._write(lambda tx: self._set_meta(tx, self.dataset, meta_key,
                                              {"version": model_version, "dim": dim, "label": label, "name": name}),
                    f"write_vectors {label}.{name}")
        return int(written)

    def _remove_properties(self, label: str, props: list[str]) -> None:
        """Remove properties from every ``label`` node of this dataset, 10k nodes per transaction."""
        _check_label(label)
        for p in props:
            _check_ident(p, "property name")
        self._auto(
            f"MATCH (n:{label}) WHERE n.dataset = $ds AND any(p IN $props WHERE n[p] IS NOT NULL) "
            "CALL (n) { SET n += $nulls } IN TRANSACTIONS OF 10000 ROWS",
            props=props, nulls={p: None for p in props},
        )

    def flip_write_back(self, slot: str) -> None:
        """See :meth:`GraphStore.flip_write_back`; also sets ``current`` as a plain property of the
        ``(:StoreMeta {key: 'doc:writeback'})`` node, so analysts' Cypher can build the slotted
        property and index names (``docs/cypher.md``)."""
        super().flip_write_back(slot)
        key = f"doc:{self.WRITE_BACK_META}"
        self._write(lambda tx: tx.run(f"MATCH (m:{META_LABEL} {{dataset: $ds, key: $key}}) SET m.current = $slot",
                                      ds=self.dataset, key=key, slot=slot).consume(), "flip write-back")

    def _drop_slot(self, slot: str) -> None:
        """Remove one write-back slot: its vectors (and their indexes) and its scores."""
        from graph.store import SLOT_SEPARATOR

        suffix = SLOT_SEPARATOR + slot
        metas = self._read(f"MATCH (m:{META_LABEL}) WHERE m.dataset = $ds AND m.key STARTS WITH 'vectors:' RETURN m.key AS key")
        for key in [r["key"] for r in metas]:
            _, label, name = key.split(":", 2)
            if name.endswith(suffix) and label in WRITE_BACK_LABELS:
                self._remove_properties(label, [name, f"{name}_version"])
                self._auto(f"MATCH (m:{META_LABEL} {{dataset: $ds, key: $key}}) DELETE m", key=key)
                others = self._read(f"MATCH (n:{label}) WHERE n.dataset <> $ds AND n[$p] IS NOT NULL RETURN count(n) AS n", p=name)[0]["n"]
                if not others:
                    self._auto(f"DROP INDEX {vector_index_name(label, name)} IF EXISTS")
        for label in WRITE_BACK_LABELS:
            names = self._meta(f"scores:{label}").get("names", [])
            mine = [n for n in names if n.endswith(suffix)]
            if mine:
                self._remove_properties(label, mine + [f"{n}_version" for n in mine])
                keep = [n for n in names if n not in mine]
                self._write(lambda tx: self._set_meta(tx, self.dataset, f"scores:{label}", {"names": keep}), "drop slot")

    def _ensure_vector_index(self, label: str, name: str, dim: int) -> None:
        index = vector_index_name(label, name)
        rows = self._read("SHOW VECTOR INDEXES YIELD name, options WHERE name = $index RETURN options", index=index)
        if rows:
            current = (rows[0]["options"] or {}).get("indexConfig", {}).get("vector.dimensions")
            if current == dim:
                return
            others = self._read(
                f"MATCH (n:{label}) WHERE n.dataset <> $ds AND n[$name] IS NOT NULL RETURN count(n) AS n", name=name
            )[0]["n"]
            if others:
                raise StoreError(
                    f"vector index {index} has dimension {current} and {others} {label} nodes of other datasets "
                    f"use it; write {dim}-dimensional vectors under another name"
                )
            log.warning("vector index %s has dimension %s; recreating it for %s", index, current, dim)
            self._auto(f"DROP INDEX {index} IF EXISTS")
        # identifiers validated above; the dimension is an int we computed
        self._auto(
            f"CREATE VECTOR INDEX {index} IF NOT EXISTS FOR (n:{label}) ON (n.{name}) "
            f"OPTIONS {{indexConfig: {{`vector.dimensions`: {int(dim)}, `vector.similarity_function`: 'cosine', "
            "`vector.quantization.enabled`: false}}"
        )

    def await_indexes(self, timeout_s: int = 300) -> None:
        """Block until every index (vector indexes included) is online and populated."""
        self._auto("CALL db.awaitIndexes($t)", t=int(timeout_s))

    def read_vectors(self, label: str, name: str) -> tuple[np.ndarray, np.ndarray, str | None]:
        """``(ids (n,), vectors (n, dim) float32, model_version)`` sorted by id; empty if none."""
        _check_label(label)
        _check_ident(name, "vector name")
        if SLOT_SEPARATOR not in name:
            name = self._resolve(name)
        meta = self._meta(f"vectors:{label}:{name}")
        if not meta:
            return np.array([], dtype=object), np.zeros((0, 0), np.float32), None
        ids, vecs = self._read_columns(
            f"MATCH (n:{label}) WHERE n.dataset = $ds AND n[$vkey] IS NOT NULL RETURN n.id, n[$vkey] ORDER BY n.id",
            2, vkey=name,
        )
        if not ids:
            return np.array([], dtype=object), np.zeros((0, meta.get("dim", 0)), np.float32), meta.get("version")
        return np.array(ids, dtype=object), np.asarray(vecs, dtype=np.float32), meta.get("version")

    def similar(self, label: str, name: str, node_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nodes of this dataset nearest to ``node_id`` by the vector index (cosine).

        Returns:
            ``[(id, score)]`` best first, the node itself excluded.
        """
        _check_label(label)
        _check_ident(name, "vector name")
        if SLOT_SEPARATOR not in name:
            name = self._resolve(name)
        index = vector_index_name(label, name)
        rows = self._read(
            f"MATCH (q:{label} {{dataset: $ds, id: $id}}) WHERE q[$vkey] IS NOT NULL "
            "CALL db.index.vector.queryNodes($index, $fetch, q[$vkey]) YIELD node, score "
            "WITH node, score WHERE node.dataset = $ds AND node <> q "
            "RETURN node.id AS id, score ORDER BY score DESC LIMIT $k",
            id=str(node_id), vkey=name, index=index, fetch=int(4 * k + 20), k=int(k),
        )
        return [(r["id"], float(r["score"])) for r in rows]

    def write_scores(self, label: str, ids: np.ndarray, scores: dict[str, np.ndarray], model_version: str) -> int:
        """Write per-node scores as properties ``<score>`` and ``<score>_version``, in
        transactions of ``batch_size`` nodes (memory-bounded; see :meth:`write_vectors` for how
        the write-back stays on one version). Nodes that do not exist are skipped. A missing
        value (NaN, None, inf) is an absent property, never a NaN one (docs/graph-schema.md).

        Returns:
            Number of nodes written.
        Raises:
            ValueError: a score array's length differs from ``ids``, bad label or score name.
        """
        _check_label(label)
        ids = np.asarray(ids).astype(str)
        names = list(scores)
        for key in names:
            _check_ident(key, "score name")
            if key in RESERVED_PROPERTIES:
                raise ValueError(f"score name {key!r} is reserved")
            if np.asarray(scores[key]).shape[0] != ids.shape[0]:
                raise ValueError(f"score {key!r} has {np.asarray(scores[key]).shape[0]} values for {ids.shape[0]} ids")
        columns = {k: [_finite_or_none(v) for v in np.asarray(vals).tolist()] for k, vals in scores.items()}
        meta_key = f"scores:{label}"

        def batch(s):
            def work(tx):
                rows = []
                for j, node_id in enumerate(ids[s : s + self.batch_size].tolist(), start=s):
                    props = {k: columns[k][j] for k in names}
                    props.update({f"{k}_version": model_version for k in names})
                    rows.append({"id": node_id, "p": props})
                return tx.run(
                    f"UNWIND $rows AS row MATCH (n:{label} {{dataset: $ds, id: row.id}}) SET n += row.p RETURN count(n) AS c",
                    ds=self.dataset, rows=rows,
                ).single()["c"]
            return work

        written = 0
        from graph.progress import progress

        for s in progress(range(0, len(ids), self.batch_size), f"write-back {label} scores", unit="rows",
                          weight=lambda start: min(self.batch_size, len(ids) - start), total=len(ids)):
            written += self._write(batch(s), f"write_scores {label}")

        def meta(tx):
            rec = tx.run(f"MATCH (m:{META_LABEL} {{dataset: $ds, key: $key}}) RETURN m.doc AS doc", ds=self.dataset, key=meta_key).single()
            known = json.loads(rec["doc"])["names"] if rec else []
            self._set_meta(tx, self.dataset, meta_key, {"names": known + [k for k in names if k not in known]})

        self._write(meta, f"write_scores {label}")
        return int(written)

    def read_scores(self, label: str, raw: bool = False) -> pd.DataFrame:
        """Frame with ``id``, one column per score and ``<score>_version``; one row per node with
        any score, sorted by id. Slotted scores of the current write-back slot appear under their
        plain names and other slots are hidden (``raw=True``: every property as written)."""
        _check_label(label)
        names = self._meta(f"scores:{label}").get("names", [])
        if not raw:
            slot = self.write_back_slot()
            names = [n for n in names if SLOT_SEPARATOR not in n or (slot and n.endswith(SLOT_SEPARATOR + slot))]
        if not names:
            return pd.DataFrame({"id": pd.Series(dtype=object)})
        props = [p for k in names for p in (k, f"{k}_version")]
        ids, values = self._read_columns(
            f"MATCH (n:{label}) WHERE n.dataset = $ds AND any(p IN $props WHERE n[p] IS NOT NULL) "
            "RETURN n.id, [p IN $props | n[p]] ORDER BY n.id",
            2, props=props,
        )
        frame = pd.DataFrame({"id": pd.Series(ids, dtype=object)})
        for j, p in enumerate(props):
            col = pd.Series([row[j] for row in values], dtype=object)
            numeric = pd.to_numeric(col, errors="coerce")
            if col.notna().sum() == numeric.notna().sum() and not p.endswith("_version"):
                col = numeric
            frame[p] = col.to_numpy() if len(col) else pd.Series(dtype=object)
        return frame if raw else resolve_score_columns(frame, self.write_back_slot())

    # ---------------------------------------------------------------- segments
    def write_segments(self, assignments: pd.DataFrame, segments: pd.DataFrame | None = None) -> int:
        """Replace this dataset's segments: ``(:Segment)`` nodes and ``(:User)-[:IN_SEGMENT]->``.

        Args:
            assignments: columns ``user_id``, ``segment_id`` (one segment per user).
            segments: optional columns ``segment_id`` plus any properties (name, size, mean_clv,
                ...); segments only named in ``assignments`` get no extra properties.
        Returns:
            Number of users linked (assignments to unknown users are skipped).
        Raises:
            ValueError: a required column is missing or a property name is reserved.
        """
        for col in ("user_id", "segment_id"):
            if col not in assignments.columns:
                raise ValueError(f"assignments: missing column {col!r}")
        assign = assignments[["user_id", "segment_id"]].astype(str).drop_duplicates("user_id", keep="last")
        seg = segments.copy() if segments is not None else pd.DataFrame({"segment_id": []})
        if "segment_id" not in seg.columns:
            raise ValueError("segments: missing column 'segment_id'")
        seg["segment_id"] = seg["segment_id"].astype(str)
        seg = seg.drop_duplicates("segment_id", keep="last")
        prop_cols = [c for c in seg.columns if c != "segment_id"]
        for c in prop_cols:
            if c in ("dataset", "id"):
                raise ValueError(f"segments: column {c!r} is reserved")
        all_ids = sorted(set(assign["segment_id"]) | set(seg["segment_id"]))
        seg_props = dict(zip(seg["segment_id"], _props(seg, prop_cols)))
        seg_rows = [{"id": s, "p": seg_props.get(s, {})} for s in all_ids]
        links = [{"u": u, "s": s} for u, s in zip(assign["user_id"], assign["segment_id"])]

        def work(tx):
            tx.run("MATCH (s:Segment) WHERE s.dataset = $ds AND NOT s.id IN $ids DETACH DELETE s", ds=self.dataset, ids=all_ids).consume()
            tx.run("MATCH (:Segment {dataset: $ds})<-[r:IN_SEGMENT]-() DELETE r", ds=self.dataset).consume()
            tx.run("UNWIND $rows AS row MERGE (s:Segment {dataset: $ds, id: row.id}) SET s += row.p", ds=self.dataset, rows=seg_rows).consume()
            linked = 0
            for s in range(0, len(links), self.batch_size):
                linked += tx.run(
                    "UNWIND $rows AS row MATCH (u:User {dataset: $ds, id: row.u}) MATCH (s:Segment {dataset: $ds, id: row.s}) "
                    "CREATE (u)-[:IN_SEGMENT]->(s) RETURN count(*) AS c",
                    ds=self.dataset, rows=links[s : s + self.batch_size],
                ).single()["c"]
            return linked

        return int(self._write(work, "write_segments"))

    def read_segments(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(assignments[user_id, segment_id], segments[segment_id, ...properties])``, sorted."""
        users, segs = self._read_columns(
            "MATCH (u:User)-[:IN_SEGMENT]->(s:Segment) WHERE s.dataset = $ds RETURN u.id, s.id", 2
        )
        assignments = pd.DataFrame({"user_id": pd.Series(users, dtype=object), "segment_id": pd.Series(segs, dtype=object)})
        rows = self._read("MATCH (s:Segment) WHERE s.dataset = $ds RETURN properties(s) AS p ORDER BY s.id")
        segments = pd.DataFrame([{k: v for k, v in r["p"].items() if k not in ("dataset",)} for r in rows])
        if len(segments):
            segments = segments.rename(columns={"id": "segment_id"})
            segments = segments[["segment_id", *[c for c in segments.columns if c != "segment_id"]]]
        else:
            segments = pd.DataFrame({"segment_id": pd.Series(dtype=object)})
        return assignments.sort_values(["user_id"]).reset_index(drop=True), segments

    # ---------------------------------------------------------------- campaigns
    #: campaign document fields also kept as plain node properties, for analysts' Cypher.
    CAMPAIGN_PROPERTIES = ("name", "status", "created_at", "launched_at", "treatment_share", "control_arm", "treatment_arm",
                           "arms", "salt", "source", "n_assigned", "stratify", "cost_per_contact", "margin")

    def write_campaign(self, campaign: dict, assignments: pd.DataFrame) -> int:
        """Create ``(:Campaign {dataset, id, doc, name, ...})`` and one
        ``(:Campaign)-[:ASSIGNED {key, arm, ...extra columns}]->(:User)`` per row, in one
        transaction. Users not in the graph are created as ``stub: true`` nodes (as for follows).
        The ``(dataset, id)`` constraint refuses a second campaign with the same id, and the
        ``ASSIGNED.key`` constraint a second assignment of a user. See :meth:`GraphStore.write_campaign`.
        """
        campaign, rows = normalise_campaign(campaign, assignments)
        cid = campaign["id"]
        extras = [c for c in rows.columns if c not in ("user_id", "arm")]
        props = {k: campaign[k] for k in self.CAMPAIGN_PROPERTIES if k in campaign and campaign[k] is not None}
        props = {k: (v if isinstance(v, (str, int, float, bool)) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
                     else json.dumps(v, default=str)) for k, v in props.items()}
        users, arms = rows["user_id"].tolist(), rows["arm"].tolist()
        # extra columns travel as one list per column (names were checked to be identifiers);
        # None (missing) leaves the property absent
        extra_cols = []
        for col in extras:
            series = rows[col]
            if pd.api.types.is_numeric_dtype(series):
                arr = series.to_numpy(dtype=np.float64)
                values = [None if v != v else v for v in arr.tolist()]
                if pd.api.types.is_integer_dtype(series) or pd.api.types.is_bool_dtype(series):
                    values = [None if v is None else (bool(v) if pd.api.types.is_bool_dtype(series) else int(v)) for v in values]
            else:
                obj = series.astype(object)
                values = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in obj.tolist()]
            extra_cols.append(values)
        set_extra = "".join(f", r.`{col}` = $x{j}[k]" for j, col in enumerate(extras))

        def work(tx):
            if tx.run("MATCH (c:Campaign {dataset: $ds, id: $id}) RETURN count(c) AS n", ds=self.dataset, id=cid).single()["n"]:
                raise ValueError(f"campaign {cid!r} already exists in {self.dataset!r}")
            ce = tx.run("CREATE (c:Campaign {dataset: $ds, id: $id}) SET c += $p, c.doc = $doc, c.columns = $cols "
                        "RETURN elementId(c) AS e", ds=self.dataset, id=cid, p=props, cols=[str(c) for c in rows.columns],
                        doc=json.dumps(campaign, sort_keys=True, default=str)).single()["e"]
            written = 0
            for s in range(0, len(users), self.batch_size):
                u = users[s : s + self.batch_size]
                eids = self._endpoints(tx, "User", u)
                params = {"ue": [eids[x] for x in u], "u": u, "a": arms[s : s + self.batch_size]}
                q = ("MATCH (c) WHERE elementId(c) = $ce UNWIND range(0, size($ue) - 1) AS k "
                     "MATCH (n) WHERE elementId(n) = $ue[k] "
                     "CREATE (c)-[r:ASSIGNED {key: $cid + '\u001f' + $u[k], arm: $a[k]}]->(n)")
                for j, values in enumerate(extra_cols):
                    params[f"x{j}"] = values[s : s + self.batch_size]
                if extra_cols:
                    q += " SET " + set_extra[2:]
                tx.run(q, ce=ce, cid=cid, **params).consume()
                written += len(u)
            return written

        return int(self._write(work, f"write_campaign {cid}"))

    def read_campaign(self, campaign_id: str) -> dict | None:
        rows = self._read("MATCH (c:Campaign {dataset: $ds, id: $id}) RETURN c.doc AS doc", id=str(campaign_id))
        return json.loads(rows[0]["doc"]) if rows else None

    def read_assignments(self, campaign_id: str) -> pd.DataFrame:
        found = self._read("MATCH (c:Campaign {dataset: $ds, id: $id}) RETURN c.columns AS cols", id=str(campaign_id))
        if not found:
            raise KeyError(f"no campaign {campaign_id!r} in {self.dataset!r}")
        order = [c for c in (found[0]["cols"] or []) if c not in ("user_id", "arm")]
        # one record per chunk of rows, each row [user id, arm, [extra values]]: decoding a
        # record per relationship (or a properties map) costs far more on 64k assignments
        query = ("MATCH (c:Campaign {dataset: $ds, id: $id})-[r:ASSIGNED]->(u:User) "
                 "WITH u.id AS uid, r.arm AS arm, [p IN $cols | r[p]] AS vals ORDER BY uid "
                 "WITH collect([uid, arm, vals]) AS rows UNWIND range(0, size(rows) - 1, $chunk) AS s "
                 "RETURN rows[s..s + $chunk]")

        def work(tx):
            out: list[list] = []
            for record in tx.run(query, ds=self.dataset, id=str(campaign_id), cols=order, chunk=self.READ_CHUNK):
                out.extend(record[0])
            return out

        try:
            with self._session() as session:
                rows = session.execute_read(work)
        except Exception as exc:
            raise StoreError(f"neo4j read of campaign {campaign_id!r} failed for dataset {self.dataset!r}: {exc}") from exc
        frame = pd.DataFrame({"user_id": pd.Series([r[0] for r in rows], dtype=object),
                              "arm": pd.Series([r[1] for r in rows], dtype=object)})
        for j, name in enumerate(order):
            col = pd.Series([r[2][j] for r in rows], dtype=object)
            numeric = pd.to_numeric(col, errors="coerce")
            frame[name] = numeric if col.notna().sum() == numeric.notna().sum() else col.where(col.notna(), np.nan)
        return frame

    def list_campaigns(self) -> list[dict]:
        rows = self._read("MATCH (c:Campaign {dataset: $ds}) RETURN c.doc AS doc ORDER BY c.id")
        return [json.loads(r["doc"]) for r in rows]

    def delete_campaign(self, campaign_id: str) -> bool:
        def work(tx):
            n = tx.run("MATCH (c:Campaign {dataset: $ds, id: $id}) RETURN count(c) AS n", ds=self.dataset, id=str(campaign_id)).single()["n"]
            tx.run("MATCH (c:Campaign {dataset: $ds, id: $id}) DETACH DELETE c", ds=self.dataset, id=str(campaign_id)).consume()
            return bool(n)

        return bool(self._write(work, f"delete_campaign {campaign_id}"))

    # ---------------------------------------------------------------- misc
    def run(self, query: str, **params) -> list[dict]:
        """Run a read-only analyst query with ``$ds`` bound to this dataset; rows as dicts."""
        return [r.data() for r in self._read(query, **params)]


__all__ = ["Neo4jStore", "vector_index_name", "KIND_REL_TYPES", "INTERACTION_REL_TYPES", "NODE_LABELS"]
