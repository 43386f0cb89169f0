"""First loads at the importer's speed: canonical tables -> ``neo4j-admin database import full``.

The incremental path (:meth:`graph.neo4j_store.Neo4jStore.load`, batched ``UNWIND … CREATE/MERGE``
over Bolt) is resumable and works on a live, shared database; Neo4j's offline importer is an
order of magnitude faster but only writes a *new or empty* database with the server stopped (the
Community edition holds one user database). This module does the second::

    write_import_files(tables, dataset, dir)    # header + data CSVs, one pair per label / type
    run_import(home, files)                     # the importer, on the stopped local server of ``home``
    bulk_import(store, tables, home, password)  # check empty -> files -> stop -> import -> start -> schema

The graph it writes is the one the incremental path writes for the same tables (same labels,
relationship types, properties and ``stub`` markers; ``tests/graph/test_bulk_import.py`` compares
them on FilmTrust and Ciao), except for the incremental path's own bookkeeping nodes
(``LoadCheckpoint``/``LoadJob``). Properties: ids are strings; ``ts``, ``value``, ``rating`` and
``helpfulness`` are floats (as the incremental path stores them); a missing value is an absent
property; extra attribute columns keep their type (float, integer, boolean or string).

CSV dialect: comma-delimited, RFC 4180 quoting (every string field quoted, so ids and texts may
hold commas and quotes; an empty quoted string stays an empty string, an empty unquoted field is
an absent property); ``--multiline-fields`` names only the files where some text holds a line break.
Ids may not hold line breaks or other control characters (the ETL's id rule already forbids
them): such input is refused before anything is stopped or written.

Source: Neo4j Operations Manual 5, "Import" (``neo4j-admin database import full``, CSV header
format with ``:ID(group)``, ``:START_ID(group)``, ``:END_ID(group)``).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graph.store import TABLE_COLUMNS, TABLE_KEYS, StoreError, normalise_rows

log = logging.getLogger("socialrec.graph.import")

#: interaction kind -> relationship type (the incremental path's rule).
KIND_REL_TYPES = {"rating": "RATED", "purchase": "PURCHASED"}
_FLOAT_COLS = ("value", "ts", "rating", "helpfulness")
_BAD_ID = re.compile(r"[\x00-\x1f\x7f]")


class BulkImportError(StoreError):
    """The bulk import was refused or failed; the message says why and what to do instead.

    Raised before anything is stopped or written for bad input (a non-empty database, a server
    that is not the local one, ids with line breaks); when the importer itself fails the database
    is put back as it was (empty) and the server restarted.

    Attributes:
        bad_input: True when the input or the database's state was refused (CLI exit 2), False
            when the importer failed (exit 1).
    """

    def __init__(self, message: str, bad_input: bool = True):
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class ImportFiles:
    """The files of one import: ``nodes``/``relationships`` map a label / type to
    ``(header, data)`` paths; ``counts`` to the number of rows written; ``multiline`` lists the data
    files where some field holds a line break (only those are parsed in the importer's slower
    multi-line mode)."""

    directory: Path
    nodes: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    relationships: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    multiline: list[Path] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return sum(self.counts[k] for k in self.nodes)

    @property
    def n_relationships(self) -> int:
        return sum(self.counts[k] for k in self.relationships)


# ============================================================================ CSV files
def _type_of(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "long"
    if pd.api.types.is_float_dtype(series):
        return "double"
    return ""  # string


def _check_ids(table: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    for col in columns:
        bad = frame[col].astype(str).str.contains(_BAD_ID)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise BulkImportError(
                f"{table}: row {row}: {col}: the id holds a line break or another control character, which "
                "the bulk importer cannot take; fix the input (the ETL quarantines such ids) or use the "
                "incremental path (socialrec etl --store neo4j without --bulk)"
            )


def _write(directory: Path, name: str, header: list[str], frame: pd.DataFrame) -> tuple[Path, Path, bool]:
    """Write ``name.header.csv`` (one line) and ``name.csv`` (no header); strings quoted, floats
    exactly (repr), missing values as empty unquoted fields. Returns the paths and whether a
    string field holds a line break."""
    head, data = directory / f"{name}.header.csv", directory / f"{name}.csv"
    with open(head, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(header)
    multiline = False
    cols = []
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            cols.append(s.astype(object).where(s.notna(), None).tolist())
        else:
            obj = s.astype(object)
            vals = obj.where(obj.notna(), None).tolist()
            if any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in vals):
                multiline = True
            cols.append(vals)
    with open(data, "w", newline="", encoding="utf-8") as fh:
        w = fh.write
        for row in zip(*cols):
            w(",".join(_field(v) for v in row))
            w("\n")
    return head, data, multiline


def _field(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if v != v else repr(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    s = str(v)
    return '"' + s.replace('"', '""') + '"'


def write_import_files(tables: Mapping[str, pd.DataFrame], dataset: str, directory: Path) -> ImportFiles:
    """Write the importer's CSVs for one dataset's canonical tables.

    Args:
        tables: table -> rows (any subset of ``users, items, interactions, reviews, follows``);
            keys are de-duplicated (last wins), as the incremental path does.
        dataset: the namespace, written as every node's ``dataset`` property.
        directory: where to write (created; existing files of the same names are replaced).
    Returns:
        :class:`ImportFiles` with one header/data pair per label (``User``, ``Item``,
        ``Category``, ``Review``) and relationship type (``FOLLOWS``, ``RATED``, ``PURCHASED``,
        ``INTERACTED``, ``WROTE``, ``REVIEWS``, ``IN_CATEGORY``) that has rows.
    Raises:
        KeyError, ValueError: a bad table (as :func:`graph.store.normalise_rows`).
        BulkImportError: an id holds a line break or control character.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    t = {}
    for table in TABLE_KEYS:
        rows = tables.get(table)
        frame = normalise_rows(table, rows if rows is not None else pd.DataFrame(columns=list(TABLE_KEYS[table])))
        t[table] = frame.drop_duplicates(list(TABLE_KEYS[table]), keep="last").reset_index(drop=True)
    _check_ids("users", t["users"], ("user_id",))
    _check_ids("items", t["items"], ("item_id",))
    _check_ids("follows", t["follows"], ("follower_id", "followee_id"))
    _check_ids("interactions", t["interactions"], ("user_id", "item_id"))
    _check_ids("reviews", t["reviews"], ("review_id",))
    for col in ("user_id", "item_id"):
        _check_ids("reviews", t["reviews"].dropna(subset=[col]), (col,))
    out = ImportFiles(directory)

    def extras(table: str) -> list[str]:
        return [c for c in t[table].columns if c not in TABLE_COLUMNS[table]]

    def typed(table: str, cols: list[str]) -> list[str]:
        return [f"{c}:{_type_of(t[table][c])}" if _type_of(t[table][c]) else c for c in cols]

    def emit(kind: str, name: str, header: list[str], frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        head, data, multi = _write(directory, name, header, frame)
        (out.nodes if kind == "node" else out.relationships)[name] = (head, data)
        out.counts[name] = len(frame)
        if multi:
            out.multiline.append(data)

    # ---- nodes: the tables' own rows, then stubs for ids only relationships reference
    users, items = t["users"], t["items"]
    known_users = set(users["user_id"])
    ref_users = pd.concat([t["follows"]["follower_id"], t["follows"]["followee_id"], t["interactions"]["user_id"],
                           t["reviews"]["user_id"].dropna()]).astype(str)
    stub_users = sorted(set(ref_users) - known_users)
    ux = extras("users")
    user_rows = users[["user_id"] + ux].copy()
    user_rows.insert(1, "dataset", dataset)
    user_rows.insert(2, "stub", pd.array([None] * len(user_rows), dtype="boolean"))
    if stub_users:
        stubs = pd.DataFrame({"user_id": stub_users, "dataset": dataset,
                              "stub": pd.array([True] * len(stub_users), dtype="boolean")})
        user_rows = pd.concat([user_rows, stubs], ignore_index=True)
    emit("node", "User", ["id:ID(User)", "dataset", "stub:boolean"] + typed("users", ux), user_rows)

    known_items = set(items["item_id"])
    ref_items = pd.concat([t["interactions"]["item_id"], t["reviews"]["item_id"].dropna()]).astype(str)
    stub_items = sorted(set(ref_items) - known_items)
    ix = extras("items")
    item_rows = items[["item_id", "category", "title", "brand", "text"] + ix].copy()
    item_rows.insert(1, "dataset", dataset)
    item_rows.insert(6, "stub", pd.array([None] * len(item_rows), dtype="boolean"))
    if stub_items:
        stubs = pd.DataFrame({"item_id": stub_items, "dataset": dataset,
                              "stub": pd.array([True] * len(stub_items), dtype="boolean")})
        item_rows = pd.concat([item_rows, stubs], ignore_index=True)
    emit("node", "Item", ["id:ID(Item)", "dataset", "category", "title", "brand", "text", "stub:boolean"] + typed("items", ix),
         item_rows)

    cats = sorted(set(items["category"].dropna().astype(str)))
    emit("node", "Category", ["id:ID(Category)", "dataset", "name"],
         pd.DataFrame({"id": cats, "dataset": dataset, "name": cats}))

    reviews = t["reviews"]
    rx = extras("reviews")
    review_rows = reviews[["review_id", "rating", "helpfulness", "text", "ts"] + rx].copy()
    review_rows.insert(1, "dataset", dataset)
    emit("node", "Review", ["id:ID(Review)", "dataset", "rating:double", "helpfulness:double", "text", "ts:double"]
         + typed("reviews", rx), review_rows)

    # ---- relationships
    fx = extras("follows")
    emit("rel", "FOLLOWS", [":START_ID(User)", ":END_ID(User)", "ts:double"] + typed("follows", fx),
         t["follows"][["follower_id", "followee_id", "ts"] + fx])
    inter = t["interactions"]
    nx_ = extras("interactions")
    rel_type = inter["kind"].map(lambda k: KIND_REL_TYPES.get(k, "INTERACTED"))
    for rtype in ("RATED", "PURCHASED"):
        part = inter[rel_type == rtype]
        emit("rel", rtype, [":START_ID(User)", ":END_ID(Item)", "value:double", "ts:double"] + typed("interactions", nx_),
             part[["user_id", "item_id", "value", "ts"] + nx_])
    part = inter[rel_type == "INTERACTED"]
    emit("rel", "INTERACTED", [":START_ID(User)", ":END_ID(Item)", "kind", "value:double", "ts:double"]
         + typed("interactions", nx_), part[["user_id", "item_id", "kind", "value", "ts"] + nx_])
    wrote = reviews.dropna(subset=["user_id"])
    emit("rel", "WROTE", [":START_ID(User)", ":END_ID(Review)"], wrote[["user_id", "review_id"]])
    about = reviews.dropna(subset=["item_id"])
    emit("rel", "REVIEWS", [":START_ID(Review)", ":END_ID(Item)"], about[["review_id", "item_id"]])
    in_cat = items.dropna(subset=["category"])
    emit("rel", "IN_CATEGORY", [":START_ID(Item)", ":END_ID(Category)"], in_cat[["item_id", "category"]].astype(str))
    return out


# ============================================================================ the importer
def import_command(files: ImportFiles, database: str = "neo4j", threads: int | None = None,
                   max_off_heap: str = "1g") -> list[str]:
    """The ``neo4j-admin database import full`` arguments for ``files`` (without the java prefix)."""
    args = ["database", "import", "full", database, "--overwrite-destination=true", "--id-type=string",
            f"--max-off-heap-memory={max_off_heap}",
            "--skip-duplicate-nodes=false", "--skip-bad-relationships=false", "--bad-tolerance=0",
            f"--report-file={Path(files.directory) / 'import.report'}"]
    if files.multiline:
        args += ["--multiline-fields-format=v2", "--multiline-fields=" + ",".join(str(p) for p in files.multiline)]
    if threads:
        args.append(f"--threads={int(threads)}")
    for label, (head, data) in files.nodes.items():
        args.append(f"--nodes={label}={head},{data}")
    for rtype, (head, data) in files.relationships.items():
        args.append(f"--relationships={rtype}={head},{data}")
    return args


def run_import(home: Path, files: ImportFiles, database: str = "neo4j", timeout_s: float = 3600,
               max_off_heap: str = "1g", threads: int | None = None) -> tuple[float, float | None]:
    """Run the importer on the STOPPED local server of ``home`` (``graph.neo4j_server``).

    Returns:
        ``(wall seconds including the JVM's start, the importer's own reported seconds or None)``.
    Raises:
        BulkImportError: the server of ``home`` is running, or the importer failed (its output
        tail is in the message; the database it was writing is then removed, so the server
        starts with an empty one).
    """
    from graph import neo4j_server

    home = Path(home)
    if neo4j_server.status(home)["running"]:
        raise BulkImportError(f"the Neo4j server of {home} is running: the importer needs it stopped "
                              "(`socialrec neo4j stop`), or use `socialrec etl --bulk`, which stops and restarts it")
    started = time.monotonic()
    try:
        out = neo4j_server.admin_tool(home, import_command(files, database, threads, max_off_heap), timeout_s=timeout_s,
                                heap="512m")
    except neo4j_server.Neo4jServerError as exc:
        _remove_database(home, database)
        raise BulkImportError(f"neo4j-admin import failed; the database was left empty: {exc}", bad_input=False) from exc
    log.debug("neo4j-admin import output:\n%s", out[-4000:])
    return time.monotonic() - started, _reported_seconds(out)


def _reported_seconds(output: str) -> float | None:
    """The importer's own run time from its ``IMPORT DONE in 1m 2s 345ms`` line (None if absent)."""
    m = re.search(r"IMPORT DONE in ([^.\n]*?)(?:\.|\n|$)", output)
    if not m:
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|h|m|s)\b", m.group(1))
    return sum(int(n) * units[u] for n, u in parts) if parts else None


def _remove_database(home: Path, database: str) -> None:
    base = Path(home).resolve() / "neo4j" / "data"
    for sub in ("databases", "transactions"):
        shutil.rmtree(base / sub / database, ignore_errors=True)


def empty_database(store, batch: int = 5000) -> None:
    """Delete EVERY relationship and node of the store's database (all datasets), in batches:
    relationships first, so no transaction holds a node with all its relationships (a 768 MB heap
    ran out of transaction memory deleting ciao's nodes 10,000 at a time). Only for a private
    server that a bulk import is about to fill (tests, benchmarks); never a shared one."""
    store._auto(f"MATCH ()-[r]->() CALL (r) {{ DELETE r }} IN TRANSACTIONS OF {int(batch)} ROWS")  # noqa: SLF001
    store._auto(f"MATCH (n) CALL (n) {{ DELETE n }} IN TRANSACTIONS OF {int(batch)} ROWS")  # noqa: SLF001


def database_is_empty(store) -> bool:
    """True when the store's database holds no node at all (any dataset, any label)."""
    rows = store._read("MATCH (n) RETURN count(n) = 0 AS empty")  # noqa: SLF001 - same package
    return bool(rows[0]["empty"])


def bulk_import(
    store,
    tables: Mapping[str, pd.DataFrame],
    home: Path,
    password: str,
    work_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Load a first dataset into an EMPTY local Neo4j with the offline importer.

    Steps: refuse unless the database is empty and ``store`` talks to the local server of
    ``home``; write the CSVs; stop the server; import; start it again (same port and memory);
    create the constraints and indexes of the incremental path (:meth:`Neo4jStore.ensure_schema`)
    and its column metadata. Afterwards the dataset is an ordinary namespace: later loads use the
    incremental path.

    Args:
        store: a :class:`graph.neo4j_store.Neo4jStore` of the dataset's namespace.
        tables: the canonical tables.
        home: ``SOCIALREC_HOME`` of the local server (``socialrec neo4j start``).
        password: its ``neo4j`` password (needed to start it again).
        work_dir: where the CSVs go (default ``home/import/<dataset>``; removed afterwards).
        progress: called with a short message before each step.
    Returns:
        ``{"nodes", "relationships", "counts", "seconds": {"files", "import", "importer_reported", "restart",
        "schema", "total"}, "nodes_per_s", "relationships_per_s"}`` (rates over the importer's wall time,
        JVM start included).
    Raises:
        BulkImportError: as the class says; nothing is changed then, except that a failed import
        leaves the (previously empty) database empty and the server running again.
    """
    from graph import neo4j_server

    say = progress or (lambda msg: log.info("bulk import: %s", msg))
    home = Path(home)
    info = neo4j_server.status(home)
    if not info["running"]:
        raise BulkImportError(f"no local Neo4j server of {home} is running (start it: `socialrec neo4j start`); "
                              "the bulk path imports into that server's database")
    if _port_of(info["uri"]) != _port_of(store.uri):
        raise BulkImportError(f"the store's server {store.uri} is not the local server of {home} ({info['uri']}); "
                              "the bulk importer only writes a local database: use the incremental path")
    if not database_is_empty(store):
        raise BulkImportError(
            "the Neo4j database is not empty: the bulk importer (neo4j-admin database import full) only writes an "
            "empty database, and the Community edition holds one. Load this dataset with the incremental path "
            "(`socialrec etl --dataset NAME --store neo4j`, no --bulk), or start from an empty server")
    t0 = time.monotonic()
    work = Path(work_dir) if work_dir else home / "import" / _safe(store.dataset)
    say(f"writing importer CSVs to {work}")
    files = write_import_files(tables, store.dataset, work)
    t1 = time.monotonic()
    record = neo4j_server.read_pidfile(home) or {}
    port, heap, pagecache = int(record.get("bolt_port") or _port_of(info["uri"])), record.get("heap", "2g"), record.get("pagecache", "512m")
    say("stopping the server for the importer")
    neo4j_server.stop(home)
    try:
        say(f"importing {files.n_nodes:,} nodes and {files.n_relationships:,} relationships")
        import_s, reported_s = run_import(home, files)
    finally:
        t2 = time.monotonic()
        say("starting the server again")
        neo4j_server.start(home, password, bolt_port=port, heap=heap, pagecache=pagecache)
    t3 = time.monotonic()
    say("creating constraints and indexes")
    store.ensure_schema()
    store.record_columns({tbl: {c: str(f[c].dtype) for c in f.columns if c not in TABLE_COLUMNS[tbl]}
                          for tbl, f in tables.items() if f is not None})
    t4 = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "nodes": files.n_nodes,
        "relationships": files.n_relationships,
        "counts": dict(files.counts),
        "seconds": {"files": round(t1 - t0, 3), "import": round(import_s, 3), "importer_reported": reported_s,
                    "restart": round(t3 - t2, 3), "schema": round(t4 - t3, 3), "total": round(t4 - t0, 3)},
        "nodes_per_s": round(files.n_nodes / import_s, 1) if import_s > 0 else None,
        "relationships_per_s": round(files.n_relationships / import_s, 1) if import_s > 0 else None,
    }


def _port_of(uri: str | None) -> int | None:
    m = re.search(r":(\d+)/?$", uri or "")
    return int(m.group(1)) if m else None


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100] or "dataset"
