"""``run_etl``: read a dataset, validate it, write it into a store, write the quarantine file.

This is what ``socialrec etl --dataset NAME`` calls. The flow (one way, see STYLE.md)::

    ensure_dataset ─► reader (etl/datasets/<name>.py or etl/shop.py) ─► validate + pseudonymise
        ─► store.upsert(table, batch) for users, items, follows, interactions, reviews
        ─► quarantine_dir/<dataset>/quarantine.csv      ─► report dict

Idempotent: the same input and key give the same rows and the store upserts by key, so a
second run leaves identical store contents. With ``replace=True`` the namespace is cleared
first (use it after changing the pseudonym key or when the source dropped rows).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from etl.datasets import read_dataset
from etl.pseudonymise import Pseudonymiser
from etl.schema import QUARANTINE_COLUMNS, LoadedDataset
from graph.store import GraphStore

log = logging.getLogger("socialrec.etl")

#: Rows per ``store.upsert`` call.
DEFAULT_BATCH_SIZE = 50_000
#: Tables in write order: nodes before the edges that reference them.
WRITE_ORDER = ("users", "items", "follows", "interactions", "reviews")


def quarantine_path(quarantine_dir: Path, dataset: str) -> Path:
    """Where :func:`run_etl` writes the quarantine of ``dataset``:
    ``quarantine_dir/<safe dataset name>/quarantine.csv`` (``:`` and ``/`` become ``_``)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset)
    return Path(quarantine_dir) / safe / "quarantine.csv"


def write_quarantine(quarantine: pd.DataFrame, path: Path) -> None:
    """Write the quarantine frame as CSV (atomically; header only when nothing was quarantined).

    Args:
        quarantine: columns ``table, source, reason, raw`` (user ids already pseudonymised).
        path: destination file; parent directories are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quarantine.", suffix=".csv", dir=path.parent)
    os.close(fd)
    try:
        quarantine.reindex(columns=list(QUARANTINE_COLUMNS)).to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_tables(
    loaded: LoadedDataset,
    store: GraphStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> int:
    """Upsert every table of ``loaded`` into ``store`` in batches.

    Args:
        loaded: the validated dataset.
        store: target store (its namespace should be ``loaded.name``).
        batch_size: rows per ``upsert`` call, >= 1.
        progress: show a tqdm bar (rows, rows/s) on stderr.
    Returns:
        Total rows written.
    Raises:
        ValueError: batch_size < 1. StoreError: a write failed (earlier batches stay written;
            rerunning is safe because writes are upserts).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = sum(len(loaded.tables[t]) for t in WRITE_ORDER)
    written = 0
    with tqdm(
        total=total, unit="rows", unit_scale=True, file=sys.stderr, disable=not progress, desc=f"etl {loaded.name}"
    ) as bar:
        bulk_load = getattr(store, "load", None)
        if callable(bulk_load):
            # Stores with a resumable bulk path (Neo4j: a checkpoint per batch, so a killed load
            # rerun skips what was committed) get the whole dataset at once, in write order.
            done = {t: 0 for t in WRITE_ORDER}

            def on_batch(table: str, rows_done: int, rows_total: int) -> None:
                bar.set_postfix_str(table)
                bar.update(rows_done - done[table])
                done[table] = rows_done

            counts = bulk_load({t: loaded.tables[t] for t in WRITE_ORDER}, progress=on_batch)
            return int(sum(counts.values()))
        for table in WRITE_ORDER:
            frame = loaded.tables[table]
            bar.set_postfix_str(table)
            for start in range(0, len(frame), batch_size):
                batch = frame.iloc[start : start + batch_size]
                written += store.upsert(table, batch)
                bar.update(len(batch))
    return written


def run_etl(
    dataset: str,
    store: GraphStore,
    data_dir: Path | None,
    cache_dir: Path,
    pseudonym_key: bytes,
    quarantine_dir: Path,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    replace: bool = False,
    bulk: dict | None = None,
) -> dict:
    """Load one dataset into a store.

    Args:
        dataset: a known dataset name (``etl.datasets.DATASETS``) or ``csv:PATH`` / ``parquet:PATH``.
        store: the store of this dataset's namespace.
        data_dir: ``SOCIALREC_DATA_DIR`` (read-only) or None to download into ``cache_dir``.
        cache_dir: writable download cache.
        pseudonym_key: secret for :class:`~etl.pseudonymise.Pseudonymiser`.
        quarantine_dir: quarantined rows go to ``quarantine_dir/<dataset>/quarantine.csv``.
        progress: tqdm progress bar on stderr.
        batch_size: rows per upsert.
        replace: clear the store namespace before writing.
        bulk: ``{"home": SOCIALREC_HOME of the local Neo4j, "password": ...}`` to write a first load
            into an EMPTY Neo4j database with the offline importer (:meth:`GraphStore.bulk_import`;
            it stops and restarts that server) instead of batched transactions.
    Returns:
        ``{"dataset": name, "tables": {table: {"read", "loaded", "quarantined"}}}`` — the
        ``socialrec etl --json`` shape; ``"quarantine_file"`` and ``"seconds"`` are added.
    Raises:
        KeyError: unknown dataset. EtlInputError: structurally bad input (CLI exit 2).
        DownloadError, StoreError: download or store failure (CLI exit 1).
    """
    started = time.monotonic()
    loaded = read_dataset(dataset, data_dir, Pseudonymiser(pseudonym_key), Path(cache_dir))
    if bulk is not None:
        if replace:
            raise ValueError("--bulk writes an empty database; it cannot be combined with --replace")
        # nothing is written before the importer (it refuses a non-empty database); a crash after
        # it leaves no completion record, so the next command reruns this load incrementally.
        bulk_report = store.bulk_import({t: loaded.tables[t] for t in WRITE_ORDER}, bulk["home"], bulk["password"],
                                        progress=(lambda msg: log.info("etl %s --bulk: %s", dataset, msg)) if progress else None)
        return _finish(dataset, store, loaded, quarantine_dir, started, extra={"bulk": bulk_report})
    # the completion record goes last: a store whose record does not say "complete" holds a
    # load that was interrupted, and callers (train, evaluate) run the ETL again (idempotent).
    # It is marked "loading" before anything destructive, so an interrupted --replace is redone.
    store.write_meta("etl", {"dataset": dataset, "state": "loading"})
    if replace:
        store.clear()
        store.write_meta("etl", {"dataset": dataset, "state": "loading"})
    write_tables(loaded, store, batch_size=batch_size, progress=progress)
    return _finish(dataset, store, loaded, quarantine_dir, started)


def _finish(dataset: str, store: GraphStore, loaded: LoadedDataset, quarantine_dir: Path, started: float,
            extra: dict | None = None) -> dict:
    """Write the quarantine file and the completion record; return the report."""
    qpath = quarantine_path(quarantine_dir, dataset)
    write_quarantine(loaded.quarantine, qpath)
    result = {
        "dataset": dataset,
        "tables": {t: dict(line) for t, line in loaded.report.items()},
        "quarantine_file": str(qpath),
        "seconds": round(time.monotonic() - started, 3),
        **(extra or {}),
    }
    store.write_meta("etl", {"dataset": dataset, "state": "complete", "tables": result["tables"]})
    n_q = len(loaded.quarantine)
    log.info("etl %s: %d rows quarantined (%s), %.1f s", dataset, n_q, qpath, result["seconds"])
    return result
