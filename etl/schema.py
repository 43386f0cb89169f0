"""The canonical tables the ETL produces, and the result type of reading one dataset.

Canonical tables (columns exactly as :data:`graph.store.TABLE_COLUMNS`; see ``docs/data-model.md``)::

    users         user_id                                          key: user_id
    items         item_id, category, title, brand, text             key: item_id
    interactions  user_id, item_id, kind, value, ts                 key: (user_id, item_id, kind)
    reviews       review_id, user_id, item_id, rating, helpfulness, text, ts    key: review_id
    follows       follower_id, followee_id, ts                      key: (follower_id, followee_id)

* ``user_id``/``follower_id``/``followee_id`` are pseudonyms (``u_`` + 20 hex chars, see
  :mod:`etl.pseudonymise`); item ids are the source's ids as strings.
* ``kind`` is one of :data:`KINDS`; ``value`` is the rating, play count or purchase quantity
  (1.0 for a view); ``ts`` is Unix time in seconds, float64, NaN when unknown.
* Node tables may carry extra attribute columns after the canonical ones (e.g. ``city`` on
  yelp items); the stores keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from etl.errors import EtlInputError
from graph.store import TABLE_COLUMNS, TABLE_KEYS, empty_table

__all__ = [
    "TABLES",
    "TABLE_COLUMNS",
    "TABLE_KEYS",
    "KINDS",
    "USER_COLUMNS",
    "QUARANTINE_COLUMNS",
    "SourceTable",
    "LoadedDataset",
    "EtlInputError",
    "empty_table",
    "empty_quarantine",
]

#: Canonical tables in load order (nodes before the edges that reference them).
TABLES: tuple[str, ...] = ("users", "items", "interactions", "reviews", "follows")
#: Allowed ``interactions.kind`` values.
KINDS: tuple[str, ...] = ("rating", "purchase", "play", "view")
#: Columns holding user ids, per table: these are pseudonymised, never stored or logged raw.
USER_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": (),
    "interactions": ("user_id",),
    "reviews": ("user_id",),
    "follows": ("follower_id", "followee_id"),
}
#: Columns of the quarantine frame: table name, ``file:line`` of the row, reason code, and the
#: row as JSON (user ids pseudonymised, or null when the id itself was unusable).
QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "source", "reason", "raw")


def empty_quarantine() -> pd.DataFrame:
    """An empty quarantine frame with :data:`QUARANTINE_COLUMNS` (all ``object``)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})


@dataclass
class SourceTable:
    """One canonical table as a dataset reader produced it, before validation.

    Attributes:
        frame: rows with (a subset of) the canonical columns of the table, user ids still RAW
            (strings), plus an int column ``_line`` = 1-based line of the row in ``file``
            (header = line 1). Extra columns are kept as node attributes (node tables) or may
            be named in ``ValidationRules.review_key`` (reviews); columns starting with ``_``
            are never stored.
        file: file name the rows came from (used in quarantine ``source`` as ``file:line``).
        derived: True when the table is not a source file but built by the reader from other
            files (e.g. ciao items from the ratings' category column). A derived node table is
            not used to check references and reports read == loaded.
    """

    frame: pd.DataFrame
    file: str
    derived: bool = False


@dataclass
class LoadedDataset:
    """A dataset read, validated and pseudonymised, ready to be written to a store.

    Attributes:
        name: dataset name (``ciao``, ``csv:/path``...).
        tables: table -> frame with the canonical columns (plus attribute columns on node
            tables); every one of :data:`TABLES` is present (possibly empty).
        quarantine: rows that were rejected, columns :data:`QUARANTINE_COLUMNS`.
        report: table -> ``{"read", "loaded", "quarantined"}`` with read == loaded + quarantined.
    Raises:
        ValueError: (at construction) if a report line does not add up or disagrees with the
            frames.
    """

    name: str
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame = field(default_factory=empty_quarantine)
    report: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table, line in self.report.items():
            if line["read"] != line["loaded"] + line["quarantined"]:
                raise ValueError(f"{self.name}/{table}: read {line['read']} != loaded + quarantined {line}")
            if table in self.tables and len(self.tables[table]) != line["loaded"]:
                raise ValueError(f"{self.name}/{table}: {len(self.tables[table])} rows but report says {line}")
