"""Read a shop's own export in the canonical schema (``csv:PATH`` / ``parquet:PATH``).

``PATH`` is a directory holding one file per table, named after the table: ``users``,
``items``, ``interactions``, ``reviews``, ``follows``, each as ``.csv``, ``.jsonl`` or
``.parquet`` (``.csv.gz``/``.jsonl.gz`` too). The prefix only names the usual format; any of the
three is accepted per table. ``interactions`` is required, the other tables are optional. The
schema, with an example, is in ``docs/shop-export.md``.

Required columns (more are optional, see the doc):

=============  ======================================
users          user_id
items          item_id  (+ category, title, brand, text, any attribute columns)
interactions   user_id, item_id, kind  (+ value, ts)
reviews        review_id, user_id, item_id  (+ rating, helpfulness, text, ts)
follows        follower_id, followee_id  (+ ts)
=============  ======================================

Structural problems raise :class:`~etl.errors.EtlInputError` with file, line and field (CLI
exit 2); row problems are quarantined like any dataset's (:mod:`etl.validate`). If a
``users``/``items`` file is given, edges pointing at ids missing from it are quarantined
``unknown_user``/``unknown_item``; otherwise the node tables are derived from the edges.
Columns outside the canonical schema are ignored, except attribute columns of ``items`` (kept):
a ``users`` file never carries anything but the id into the store (no personal data).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from etl.errors import EtlInputError
from etl.pseudonymise import Pseudonymiser
from etl.schema import TABLE_COLUMNS, TABLES, LoadedDataset, SourceTable
from etl.validate import ValidationRules, validate_tables

log = logging.getLogger("socialrec.etl.shop")

#: Columns a shop export must provide per table.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id", "kind"),
    "reviews": ("review_id", "user_id", "item_id"),
    "follows": ("follower_id", "followee_id"),
}
#: File suffixes recognised, in lookup order.
SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".parquet")


def parse_shop_name(name: str) -> Path:
    """The directory of ``csv:PATH`` / ``parquet:PATH``.

    Raises:
        EtlInputError: no prefix, empty path, or the path is not a directory.
    """
    prefix, sep, rest = name.partition(":")
    if not sep or prefix not in ("csv", "parquet") or not rest:
        raise EtlInputError(name, 0, "", "expected csv:PATH or parquet:PATH")
    path = Path(rest).expanduser()
    if not path.is_dir():
        raise EtlInputError(str(path), 0, "", "shop export PATH must be a directory holding <table>.csv/.jsonl/.parquet")
    return path


def find_table_file(folder: Path, table: str) -> Path | None:
    """The file holding ``table`` in ``folder``, or None.

    Raises:
        EtlInputError: more than one file for the same table (ambiguous).
    """
    found = [folder / f"{table}{suffix}" for suffix in SUFFIXES if (folder / f"{table}{suffix}").is_file()]
    if len(found) > 1:
        raise EtlInputError(str(found[0]), 0, "", f"several files for table {table!r}: {[p.name for p in found]}")
    return found[0] if found else None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False, encoding="utf-8"
        )
    except pd.errors.EmptyDataError as exc:
        raise EtlInputError(str(path), 1, "", "empty file: expected a header line") from exc
    except UnicodeDecodeError as exc:
        raise EtlInputError(str(path), 0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.ParserError as exc:
        line = _line_from_parser_error(str(exc))
        raise EtlInputError(str(path), line, "", f"malformed CSV: {exc}") from exc
    except OSError as exc:
        raise EtlInputError(str(path), 0, "", f"cannot read: {exc}") from exc
    frame["_line"] = np.arange(2, len(frame) + 2, dtype=np.int64)
    return frame


def _line_from_parser_error(message: str) -> int:
    import re

    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else 0


def _read_jsonl(path: Path) -> pd.DataFrame:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    rows: list[dict] = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EtlInputError(str(path), number, "", f"not valid JSON: {exc.msg} (column {exc.colno})") from exc
                if not isinstance(obj, dict):
                    raise EtlInputError(str(path), number, "", "expected one JSON object per line")
                obj["_line"] = number
                rows.append(obj)
    except UnicodeDecodeError as exc:
        raise EtlInputError(str(path), 0, "", f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise EtlInputError(str(path), 0, "", f"cannot read: {exc}") from exc
    frame = pd.DataFrame(rows)
    if "_line" not in frame.columns:
        frame["_line"] = pd.Series(dtype="int64")
    return frame.astype({"_line": "int64"})


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise EtlInputError(str(path), 0, "", f"cannot read Parquet: {exc}") from exc
    frame["_line"] = np.arange(1, len(frame) + 1, dtype=np.int64)  # row number
    return frame


def read_table_file(path: Path, table: str) -> pd.DataFrame:
    """Read one table file of a shop export and check its columns.

    Args:
        path: ``<table>.csv``, ``.csv.gz``, ``.jsonl``, ``.jsonl.gz`` or ``.parquet``.
        table: canonical table name.
    Returns:
        Frame with the canonical columns present in the file (plus item attribute columns for
        ``items``) and ``_line`` (CSV: physical line, header = 1; JSONL: line; Parquet: row
        number from 1). A CSV field with an embedded newline shifts later line numbers.
    Raises:
        EtlInputError: unreadable file, malformed line, or a required column missing
            (line 1, field = the column).
    """
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        frame = _read_csv(path)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        frame = _read_jsonl(path)
    else:
        frame = _read_parquet(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in REQUIRED_COLUMNS[table]:
        if col not in frame.columns:
            raise EtlInputError(str(path), 1, col, f"missing required column {col!r} for table {table!r}")
    keep = [c for c in frame.columns if c in TABLE_COLUMNS[table] or c == "_line"]
    if table == "items":
        keep = [c for c in frame.columns if c == "_line" or not c.startswith("_")]
    dropped = [c for c in frame.columns if c not in keep]
    if dropped:
        log.info("%s: ignoring column(s) outside the canonical schema: %s", name, dropped)
    return frame[keep]


def read_shop_export(name: str, pseudonymiser: Pseudonymiser, rules: ValidationRules | None = None) -> LoadedDataset:
    """Read, validate and pseudonymise a shop export.

    Args:
        name: ``csv:PATH`` or ``parquet:PATH`` (PATH a directory, see the module docstring).
        pseudonymiser: maps the shop's user ids to pseudonyms (the API uses the same key).
        rules: validation rules; default :class:`ValidationRules` (ratings 1–5, purchase/play/view
            values > 0, missing purchase/view value = 1).
    Returns:
        The :class:`LoadedDataset` (named ``name``).
    Raises:
        EtlInputError: bad path, no interactions file, or a structurally bad file.
    """
    folder = parse_shop_name(name)
    sources: dict[str, SourceTable] = {}
    for table in TABLES:
        path = find_table_file(folder, table)
        if path is None:
            continue
        sources[table] = SourceTable(read_table_file(path, table), path.name)
    if "interactions" not in sources:
        raise EtlInputError(str(folder / "interactions.csv"), 0, "", "a shop export needs an interactions file")
    return validate_tables(name, sources, rules or ValidationRules(), pseudonymiser)
