"""Row validation: every row read is either loaded or quarantined with a reason.

:func:`validate_tables` takes the :class:`~etl.schema.SourceTable` frames a dataset reader
produced (raw user ids, source line numbers) and returns a :class:`~etl.schema.LoadedDataset`.
All checks are vectorised (pandas/NumPy); a row gets the FIRST reason that applies, in this order:

============== ==================================================================================
reason         rule
============== ==================================================================================
bad_id         an id column (user, item, review, follower, followee) is missing, empty after
               stripping whitespace, longer than 256 characters, holds a control character, or
               is one of the literal missing-value spellings ``NaN``/``nan``/``None``/``null``
               (any case: what pandas and JSON tools write for a missing id; see
               :data:`MISSING_ID_TOKENS`)
bad_kind       ``interactions.kind`` not one of rating, purchase, play, view
unknown_user   a user id not in the users table — only when the dataset HAS a users source table
unknown_item   an item id not in the items table — only when the dataset HAS an items source table
bad_value      ``value``/``rating``/``helpfulness`` present but not a number, or ``value``
               missing (blank) where the kind requires one (rating, play)
out_of_range   ``value`` outside the dataset's range for its kind (e.g. a ciao rating 0 on the 1–5
               scale); a review
               ``rating`` outside the rating scale; a negative ``helpfulness``
bad_timestamp  ``ts`` present but unparseable, non-finite, before 1990-01-01 or more than one day
               in the future (seconds; ISO-8601 strings are accepted from shop exports)
self_follow    ``follower_id == followee_id``
duplicate      a second row with the same key — interactions (user, item, kind), reviews
               review_id, follows (follower, followee), users user_id, items item_id. Rule: keep
               the row with the LATEST ``ts`` (a known ts beats NaN); ties → the LAST row in
               file order; the others are quarantined.
============== ==================================================================================

Only rows that passed every earlier check compete in the duplicate rule, so a bad row never
wins over a good one. User ids are pseudonymised before any check, so the quarantine ``raw``
JSON never carries a raw user id (an unusable id is written as null).

Node tables the reader did not supply (or marked ``derived``) are built from the loaded edges:
users = every user id in loaded interactions/reviews/follows, items = every item id in loaded
interactions/reviews (plus the reader's derived attribute rows); for those, read == loaded.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from etl.pseudonymise import Pseudonymiser
from etl.schema import (
    KINDS,
    QUARANTINE_COLUMNS,
    TABLE_COLUMNS,
    TABLES,
    USER_COLUMNS,
    LoadedDataset,
    SourceTable,
    empty_quarantine,
    empty_table,
)

log = logging.getLogger("socialrec.etl.validate")

# Reason codes written to the quarantine file.
BAD_ID = "bad_id"
BAD_KIND = "bad_kind"
BAD_VALUE = "bad_value"
OUT_OF_RANGE = "out_of_range"
BAD_TIMESTAMP = "bad_timestamp"
UNKNOWN_USER = "unknown_user"
UNKNOWN_ITEM = "unknown_item"
SELF_FOLLOW = "self_follow"
DUPLICATE = "duplicate"
REASONS = (BAD_ID, BAD_KIND, UNKNOWN_USER, UNKNOWN_ITEM, BAD_VALUE, OUT_OF_RANGE, BAD_TIMESTAMP, SELF_FOLLOW, DUPLICATE)

#: Longest accepted id, in characters.
MAX_ID_LENGTH = 256
#: What a valid raw id looks like (after stripping): 1..256 characters, no control character.
#: The API validates ids with the same rule, so whatever the ETL loads can be served.
ID_PATTERN = rf"^[^\x00-\x1f\x7f]{{1,{MAX_ID_LENGTH}}}$"
#: Cell texts that mean "missing" rather than an id (compared case-insensitively, after stripping).
MISSING_ID_TOKENS = frozenset({"nan", "none", "null"})


def canonical_id(raw: object) -> str:
    """The one id rule of the ETL and the API: ``str()``, surrounding whitespace stripped, Unicode
    NFC (so ``"caf\u00e9"`` and ``"cafe\u0301"`` are one id).

    Args:
        raw: an id (str or number).
    Returns:
        The canonical text (not validated: see :func:`clean_ids` / :data:`ID_PATTERN`).
    """
    import unicodedata

    return unicodedata.normalize("NFC", str(raw).strip())


#: Earliest plausible timestamp: 1990-01-01T00:00:00Z (before any e-commerce / social data set).
MIN_TS = 631_152_000.0
_ID_COLUMNS = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id"),
    "reviews": ("review_id", "user_id", "item_id"),
    "follows": ("follower_id", "followee_id"),
}
_KEYS = {
    "users": ("user_id",),
    "items": ("item_id",),
    "interactions": ("user_id", "item_id", "kind"),
    "reviews": ("review_id",),
    "follows": ("follower_id", "followee_id"),
}


@dataclass(frozen=True)
class ValueRange:
    """An accepted numeric range: ``low <= v <= high`` (``low < v`` when ``low_inclusive`` is False)."""

    low: float
    high: float = math.inf
    low_inclusive: bool = True

    def outside(self, values: np.ndarray) -> np.ndarray:
        """(n,) bool: True where a finite value falls outside the range (NaN → False)."""
        with np.errstate(invalid="ignore"):
            below = values < self.low if self.low_inclusive else values <= self.low
            return np.isfinite(values) & (below | (values > self.high))

    def describe(self) -> str:
        """Human-readable form, e.g. ``[1, 5]`` or ``(0, inf]``."""
        return f"{'[' if self.low_inclusive else '('}{self.low:g}, {self.high:g}]"


#: Default value ranges per interaction kind (a shop export uses these).
DEFAULT_VALUE_RANGES: dict[str, ValueRange] = {
    "rating": ValueRange(1.0, 5.0),
    "purchase": ValueRange(0.0, low_inclusive=False),
    "play": ValueRange(0.0, low_inclusive=False),
    "view": ValueRange(0.0, low_inclusive=False),
}
#: Kinds whose missing ``value`` is filled with 1.0 (one view, one unit purchased) instead of
#: being quarantined.
DEFAULT_VALUE_OPTIONAL = ("purchase", "view")


@dataclass(frozen=True)
class ValidationRules:
    """Per-dataset validation parameters.

    Attributes:
        value_ranges: kind -> accepted ``interactions.value`` range.
        value_optional: kinds whose missing value becomes 1.0.
        rating_range: accepted ``reviews.rating`` (NaN is allowed: a review without a rating).
        review_key: when a reader's reviews frame has no ``review_id`` column, it is derived as
            ``"r_" + sha256("\\x1f".join(columns))[:24]`` over these columns, AFTER user ids
            are pseudonymised (so the id reveals nothing); e.g. ciao uses (user_id, item_id).
        max_ts: latest accepted timestamp in seconds; None = now + 1 day at validation time.
    """

    value_ranges: Mapping[str, ValueRange] = field(default_factory=lambda: dict(DEFAULT_VALUE_RANGES))
    value_optional: tuple[str, ...] = DEFAULT_VALUE_OPTIONAL
    rating_range: ValueRange = ValueRange(1.0, 5.0)
    review_key: tuple[str, ...] = ("user_id", "item_id")
    max_ts: float | None = None


# ---------------------------------------------------------------------------- column parsing
def clean_ids(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Normalise an id column and flag unusable ids.

    Args:
        values: (n,) raw ids (str, int, or float — integral floats such as ``7.0``, which a
            Parquet/JSON id column with nulls produces, become ``"7"``); nulls allowed.
    Returns:
        ``(ids, bad)``: (n,) object Series of canonical strings (:func:`canonical_id`; None
        where bad) and (n,) bool.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(numbers)
        if np.all(np.mod(numbers[finite], 1) == 0):
            values = pd.Series(pd.array(np.where(finite, numbers, np.nan), dtype="Int64"), index=values.index)
    text = values.astype("str") if not pd.api.types.is_string_dtype(values.dtype) else values
    text = text.where(values.notna()).str.strip().str.normalize("NFC")
    lengths = text.str.len().fillna(0).to_numpy()
    ctrl = text.str.contains(r"[\x00-\x1f\x7f]", regex=True, na=False).to_numpy(bool)
    token = text.str.lower().isin(MISSING_ID_TOKENS).to_numpy(bool)
    bad = values.isna().to_numpy() | (lengths == 0) | (lengths > MAX_ID_LENGTH) | ctrl | token
    out = pd.Series(text.to_numpy(dtype=object, na_value=None), index=values.index, dtype=object)
    out[bad] = None
    return out, bad


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a numeric column.

    Args:
        values: (n,) numbers or strings; null / empty string = missing.
    Returns:
        ``(numbers, bad)``: (n,) float64 (NaN where missing or bad) and (n,) bool True where a
        non-empty value is not a number.
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), bool)
    missing = values.isna() | (values.astype(str).str.strip() == "")
    numbers = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~missing.to_numpy() & np.isnan(numbers)
    return numbers, bad


def parse_timestamps(values: pd.Series, max_ts: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``ts``: Unix seconds (numbers or numeric strings) or ISO-8601 strings.

    Args:
        values: (n,) raw timestamps; null / empty string = unknown.
        max_ts: latest accepted value in seconds; None = now + 86,400 s.
    Returns:
        ``(seconds, bad)``: (n,) float64 Unix seconds (NaN unknown or bad) and (n,) bool True
        where a value was given but is unparseable, non-finite, before :data:`MIN_TS` or after
        ``max_ts``.
    """
    if max_ts is None:
        max_ts = time.time() + 86_400.0
    n = len(values)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        secs = values.to_numpy(dtype=np.float64, na_value=np.nan)
        given = ~np.isnan(secs)
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        dt = pd.to_datetime(values, utc=True)
        secs = ((dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
        given = ~np.isnan(secs)
    else:
        text = values.astype("str").where(values.notna()).str.strip()
        given = (text.notna() & (text != "")).to_numpy()
        secs = np.full(n, np.nan)
        numeric = pd.to_numeric(text.where(given), errors="coerce").to_numpy(np.float64, na_value=np.nan)
        secs[~np.isnan(numeric)] = numeric[~np.isnan(numeric)]
        rest = given & np.isnan(numeric)
        if rest.any():
            dt = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
            secs[rest] = ((dt - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = given & (~np.isfinite(secs) | (secs < MIN_TS) | (secs > max_ts))
    secs = np.where(bad, np.nan, secs)
    return secs.astype(np.float64), bad


# ---------------------------------------------------------------------------- per-table checking
class _Checker:
    """Holds one table's rows, the parsed columns and the first reason per rejected row."""

    def __init__(self, table: str, source: SourceTable):
        self.table = table
        self.file = source.file
        self.raw = source.frame.reset_index(drop=True)
        self.n = len(self.raw)
        self.ok = np.ones(self.n, bool)
        self.reason = np.full(self.n, None, dtype=object)
        self.parsed: dict[str, object] = {}
        if "_line" in self.raw.columns:
            self.lines = self.raw["_line"].to_numpy(np.int64)
        else:
            self.lines = np.arange(2, self.n + 2, dtype=np.int64)

    def flag(self, mask: np.ndarray, reason: str) -> None:
        m = np.asarray(mask, bool) & self.ok
        self.reason[m] = reason
        self.ok &= ~m

    def column(self, name: str) -> pd.Series:
        if name in self.raw.columns:
            return self.raw[name]
        return pd.Series(np.nan, index=self.raw.index, dtype=object)

    def dedupe(self, keys: tuple[str, ...], ts: np.ndarray | None) -> None:
        """Flag all but the winner of each key among still-ok rows (latest ts, then last row)."""
        idx = np.flatnonzero(self.ok)
        if idx.size < 2:
            return
        sub = pd.DataFrame({k: np.asarray(self.parsed[k], dtype=object)[idx] for k in keys})
        repeated = sub.duplicated(list(keys), keep=False).to_numpy()
        if not repeated.any():
            return
        sub = sub[repeated]
        t = np.full(len(sub), -np.inf) if ts is None else np.nan_to_num(ts[idx[repeated]], nan=-np.inf)
        sub = sub.assign(_t=t, _pos=idx[repeated])
        sub = sub.sort_values([*keys, "_t", "_pos"], kind="stable")
        losers = sub["_pos"].to_numpy()[sub.duplicated(list(keys), keep="last").to_numpy()]
        mask = np.zeros(self.n, bool)
        mask[losers] = True
        self.flag(mask, DUPLICATE)

    def quarantine(self) -> pd.DataFrame:
        """Rejected rows as a quarantine frame (user ids pseudonymised / nulled in ``raw``)."""
        bad = ~self.ok
        if not bad.any():
            return empty_quarantine()
        cols = [c for c in self.raw.columns if not c.startswith("_")]
        raw = self.raw.loc[bad, cols].copy()
        for col in USER_COLUMNS[self.table]:
            if col in raw.columns:
                raw[col] = np.asarray(self.parsed[col], dtype=object)[bad]
        text = raw.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
        records = text.strip("\n").split("\n") if len(raw) else []
        return pd.DataFrame(
            {
                "table": self.table,
                "source": [f"{self.file}:{line}" for line in self.lines[bad]],
                "reason": self.reason[bad],
                "raw": records,
            },
            columns=list(QUARANTINE_COLUMNS),
        )


def _check_ids(chk: _Checker, pseudonymiser: Pseudonymiser) -> None:
    for col in _ID_COLUMNS[chk.table]:
        if col == "review_id" and col not in chk.raw.columns:
            continue  # derived after pseudonymisation (ValidationRules.review_key)
        ids, bad = clean_ids(chk.column(col))
        if col in USER_COLUMNS[chk.table]:
            ids = pseudonymiser.users(ids)
        chk.parsed[col] = ids.to_numpy(dtype=object)
        chk.flag(bad, BAD_ID)


def _derive_review_ids(chk: _Checker, key: tuple[str, ...]) -> None:
    parts = []
    for col in key:
        values = chk.parsed[col] if col in chk.parsed else chk.column(col).to_numpy(dtype=object)
        parts.append(pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object))
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\x1f" + part
    ids = np.array(["r_" + hashlib.sha256(s.encode("utf-8")).hexdigest()[:24] for s in joined], dtype=object)
    ids[~chk.ok] = None  # a row with a bad key column has no usable review id
    chk.parsed["review_id"] = ids


def _check_refs(chk: _Checker, users: set | None, items: set | None) -> None:
    if users is not None:
        for col in USER_COLUMNS[chk.table]:
            chk.flag(~pd.Series(chk.parsed[col]).isin(users).to_numpy(), UNKNOWN_USER)
    if items is not None and "item_id" in chk.parsed:
        chk.flag(~pd.Series(chk.parsed["item_id"]).isin(items).to_numpy(), UNKNOWN_ITEM)


def _check_ts(chk: _Checker, rules: ValidationRules) -> np.ndarray:
    ts, bad = parse_timestamps(chk.column("ts"), rules.max_ts)
    chk.flag(bad, BAD_TIMESTAMP)
    chk.parsed["ts"] = ts
    return ts


def _validate_node_table(chk: _Checker, pseudonymiser: Pseudonymiser) -> pd.DataFrame:
    _check_ids(chk, pseudonymiser)
    chk.dedupe(_KEYS[chk.table], None)
    return _assemble(chk)


def _validate_interactions(chk, rules, pseudonymiser, users, items) -> pd.DataFrame:
    _check_ids(chk, pseudonymiser)
    raw_kind = chk.column("kind")
    kind = raw_kind.astype("str").where(raw_kind.notna()).str.strip().str.lower()
    kind = kind.to_numpy(dtype=object, na_value=None)
    chk.flag(~np.isin(kind, np.array(KINDS, dtype=object)), BAD_KIND)
    chk.parsed["kind"] = kind
    _check_refs(chk, users, items)
    value, bad_value = parse_numbers(chk.column("value"))
    chk.flag(bad_value, BAD_VALUE)
    out = np.zeros(chk.n, bool)
    absent = np.zeros(chk.n, bool)
    for k in KINDS:
        of_kind = kind == k
        if not of_kind.any():
            continue
        rng = rules.value_ranges.get(k, DEFAULT_VALUE_RANGES[k])
        missing = of_kind & np.isnan(value)
        if k in rules.value_optional:
            value = np.where(missing, 1.0, value)
        else:
            absent |= missing
        out |= of_kind & ~missing & rng.outside(value)
    chk.flag(absent, BAD_VALUE)  # a blank rating is not a value at all, let alone one out of range
    chk.flag(out, OUT_OF_RANGE)
    chk.parsed["value"] = value
    ts = _check_ts(chk, rules)
    chk.dedupe(_KEYS["interactions"], ts)
    return _assemble(chk)


def _validate_reviews(chk, rules, pseudonymiser, users, items) -> pd.DataFrame:
    _check_ids(chk, pseudonymiser)
    if "review_id" not in chk.raw.columns:
        _derive_review_ids(chk, rules.review_key)
    _check_refs(chk, users, items)
    rating, bad_rating = parse_numbers(chk.column("rating"))
    helpful, bad_helpful = parse_numbers(chk.column("helpfulness"))
    chk.flag(bad_rating | bad_helpful, BAD_VALUE)
    with np.errstate(invalid="ignore"):
        chk.flag(rules.rating_range.outside(rating) | (helpful < 0), OUT_OF_RANGE)
    chk.parsed["rating"], chk.parsed["helpfulness"] = rating, helpful
    ts = _check_ts(chk, rules)
    chk.dedupe(_KEYS["reviews"], ts)
    return _assemble(chk)


def _validate_follows(chk, rules, pseudonymiser, users) -> pd.DataFrame:
    _check_ids(chk, pseudonymiser)
    _check_refs(chk, users, None)
    ts = _check_ts(chk, rules)
    chk.flag(chk.parsed["follower_id"] == chk.parsed["followee_id"], SELF_FOLLOW)
    chk.dedupe(_KEYS["follows"], ts)
    return _assemble(chk)


def _assemble(chk: _Checker) -> pd.DataFrame:
    """The accepted rows: canonical columns (parsed) + attribute columns, in file order."""
    ok = chk.ok
    out = {}
    for col in TABLE_COLUMNS[chk.table]:
        if col in chk.parsed:
            values = np.asarray(chk.parsed[col])[ok]
        elif col in chk.raw.columns:
            values = chk.raw[col].to_numpy()[ok]
        else:
            values = np.full(int(ok.sum()), np.nan)
        out[col] = values
    for col in chk.raw.columns:
        if col not in out and not col.startswith("_"):
            out[col] = chk.raw[col].to_numpy()[ok]
    frame = pd.DataFrame(out)
    for col in ("value", "ts", "rating", "helpfulness"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in TABLE_COLUMNS[chk.table]:
        if frame[col].dtype != np.float64:
            frame[col] = frame[col].astype(object)
    return frame


def _derive_node_table(
    table: str, source: SourceTable | None, referenced: list[np.ndarray], pseudonymiser: Pseudonymiser
) -> pd.DataFrame:
    key = _KEYS[table][0]
    if source is not None:
        frame = source.frame.reset_index(drop=True)
        ids, bad = clean_ids(frame[key])
        if table == "users":
            ids = pseudonymiser.users(ids)
        frame = frame.assign(**{key: ids})[~bad]
        frame = frame.drop_duplicates(key, keep="last")
        frame = frame[[c for c in frame.columns if not c.startswith("_")]]
    else:
        frame = pd.DataFrame({key: pd.Series(dtype=object)})
    seen = pd.Index(frame[key])
    extra = pd.Index(pd.unique(np.concatenate(referenced))) if referenced else pd.Index([])
    extra = extra.difference(seen)
    if len(extra):
        frame = pd.concat([frame, pd.DataFrame({key: np.asarray(extra, dtype=object)})], ignore_index=True)
    base = empty_table(table)
    for col in base.columns:
        if col not in frame.columns:
            frame[col] = pd.Series(np.nan, index=frame.index, dtype=base[col].dtype)
    cols = list(TABLE_COLUMNS[table]) + [c for c in frame.columns if c not in TABLE_COLUMNS[table]]
    frame = frame[cols].sort_values(key, kind="stable").reset_index(drop=True)
    frame[key] = frame[key].astype(object)
    return frame


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Give a table the canonical dtypes: float64 for value/ts/rating/helpfulness, ``object``
    (str or NaN) for every other column, so every dataset and both stores see the same types.

    Args:
        table: canonical table name.
        frame: its rows (canonical columns first, attribute columns after).
    Returns:
        The frame with converted columns and a fresh RangeIndex.
    """
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        if col in ("value", "ts", "rating", "helpfulness"):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        elif out[col].dtype != object:
            values = out[col].astype(object)
            out[col] = values.where(out[col].notna(), np.nan)
    return out


# ---------------------------------------------------------------------------- entry point
def validate_tables(
    name: str,
    sources: Mapping[str, SourceTable],
    rules: ValidationRules,
    pseudonymiser: Pseudonymiser,
) -> LoadedDataset:
    """Validate and pseudonymise a dataset's tables.

    Args:
        name: dataset name (for the result and logs).
        sources: table -> :class:`SourceTable` from a reader (any subset of the canonical tables).
        rules: the dataset's :class:`ValidationRules`.
        pseudonymiser: maps raw user ids to pseudonyms.
    Returns:
        A :class:`LoadedDataset`: all five tables (accepted rows, canonical columns first),
        the quarantine frame and the read/loaded/quarantined report.
    Raises:
        KeyError: an unknown table name in ``sources``.
    """
    for table in sources:
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; expected one of {TABLES}")
    tables: dict[str, pd.DataFrame] = {}
    quarantines: list[pd.DataFrame] = []
    report: dict[str, dict[str, int]] = {}

    def finish(chk: _Checker, frame: pd.DataFrame) -> None:
        tables[chk.table] = frame
        q = chk.quarantine()
        if len(q):
            quarantines.append(q)
        report[chk.table] = {"read": chk.n, "loaded": len(frame), "quarantined": int((~chk.ok).sum())}

    known: dict[str, set | None] = {"users": None, "items": None}
    for table in ("users", "items"):
        src = sources.get(table)
        if src is not None and not src.derived:
            chk = _Checker(table, src)
            frame = _validate_node_table(chk, pseudonymiser)
            finish(chk, frame)
            known[table] = set(frame[_KEYS[table][0]])

    edges = {
        "interactions": lambda c: _validate_interactions(c, rules, pseudonymiser, known["users"], known["items"]),
        "reviews": lambda c: _validate_reviews(c, rules, pseudonymiser, known["users"], known["items"]),
        "follows": lambda c: _validate_follows(c, rules, pseudonymiser, known["users"]),
    }
    for table, run in edges.items():
        src = sources.get(table)
        if src is None:
            tables[table] = empty_table(table)
            report[table] = {"read": 0, "loaded": 0, "quarantined": 0}
            continue
        chk = _Checker(table, src)
        finish(chk, run(chk))

    for table in ("users", "items"):
        if table in tables:
            continue
        if table == "users":
            refs = [tables["interactions"]["user_id"], tables["reviews"]["user_id"]]
            refs += [tables["follows"]["follower_id"], tables["follows"]["followee_id"]]
        else:
            refs = [tables["interactions"]["item_id"], tables["reviews"]["item_id"]]
        refs = [np.asarray(r, dtype=object) for r in refs if len(r)]
        frame = _derive_node_table(table, sources.get(table), refs, pseudonymiser)
        tables[table] = frame
        report[table] = {"read": len(frame), "loaded": len(frame), "quarantined": 0}

    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else empty_quarantine()
    ordered = {t: conform(t, tables[t]) for t in TABLES}
    report = {t: report[t] for t in TABLES}
    for t, line in report.items():
        log.info("%s/%s: read %d, loaded %d, quarantined %d", name, t, line["read"], line["loaded"], line["quarantined"])
    return LoadedDataset(name=name, tables=ordered, quarantine=quarantine, report=report)
