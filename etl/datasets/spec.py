"""The contract between a dataset module and the registry (:mod:`etl.datasets`).

A dataset module ``etl/datasets/<module>.py`` exposes one module-level constant ``SPEC``, a
:class:`DatasetSpec`. Its ``read(folder)`` turns the dataset folder into canonical
:class:`~etl.schema.SourceTable` frames with RAW user ids; validation, pseudonymisation,
quarantine and reporting are generic and done for it by :func:`etl.validate.validate_tables`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules


@dataclass(frozen=True)
class DatasetSpec:
    """How to obtain and read one dataset.

    Attributes:
        name: dataset name = folder name in ``SOCIALREC_DATA_DIR`` (e.g. ``"lastfm-hetrec2011"``).
        read: ``folder -> {table: SourceTable}``. Contract:

            * keys are canonical table names (``users``, ``items``, ``interactions``,
              ``reviews``, ``follows``); supply only what the dataset has;
            * each frame uses canonical column names (see :mod:`etl.schema`); ids as strings
              exactly as in the file (user ids RAW — they are pseudonymised downstream);
              ``interactions.kind`` set by the reader; ``ts`` as Unix seconds (float, NaN when
              unknown) or ISO-8601 strings; numbers may stay strings (parsed and checked
              downstream — do NOT drop or fix bad rows in the reader, the validator quarantines
              them with a reason);
            * an int64 ``_line`` column gives each row's 1-based line in ``SourceTable.file``
              (:func:`etl.delimited.read_delimited` adds it);
            * a node table built from other files (not a file of its own) is returned with
              ``derived=True``; users/items not supplied are derived from the loaded edges;
            * raise :class:`etl.errors.EtlInputError` for a structurally unusable file.
        rules: value ranges, review-id key, timestamp bound (:class:`etl.validate.ValidationRules`).
        files: original files to download when the dataset is not under ``SOCIALREC_DATA_DIR``
            (URL at the pinned commit + SHA-256 computed from the shared copy).
        build: optional ``folder -> None`` writing derived files (e.g. CSV from ``.mat``) into a
            freshly downloaded folder; never called on ``SOCIALREC_DATA_DIR``.
        description: one line for ``--help`` / docs.
    """

    name: str
    read: Callable[[Path], dict[str, SourceTable]]
    rules: ValidationRules = field(default_factory=ValidationRules)
    files: tuple[RemoteFile, ...] = ()
    build: Callable[[Path], None] | None = None
    description: str = ""
