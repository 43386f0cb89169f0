"""Registry of the known datasets, and :func:`read_dataset`.

Each dataset lives in its own module here and exposes ``SPEC: DatasetSpec`` (the contract is
documented on :class:`etl.datasets.spec.DatasetSpec`). To add one: write
``etl/datasets/<module>.py`` with ``SPEC = DatasetSpec(name=..., read=..., rules=..., files=...)``
and list ``<module>`` in :data:`DATASET_MODULES`. A listed module that is not present yet
(``cdnow`` until its author lands it) is skipped: ``ImportError`` for that module is tolerated,
and so is a module that does not define ``SPEC`` yet (a warning is logged).

A dataset name may also be ``csv:PATH`` or ``parquet:PATH``, a shop's own export in the
canonical schema (:mod:`etl.shop`, ``docs/shop-export.md``).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from etl.datasets.spec import DatasetSpec
from etl.download import ensure_dataset
from etl.pseudonymise import Pseudonymiser
from etl.schema import LoadedDataset
from etl.validate import validate_tables

log = logging.getLogger("socialrec.etl.datasets")

#: Modules under ``etl.datasets`` that define a ``SPEC``, in registry order.
DATASET_MODULES: tuple[str, ...] = (
    "ciao",
    "epinions",
    "lastfm",
    "filmtrust",
    "yelp_hin",
    "amazon_hin",
    "amazon_beauty",
    "cdnow",
    "hillstrom",
)
#: Prefixes that name a shop export instead of a known dataset.
SHOP_PREFIXES: tuple[str, ...] = ("csv:", "parquet:")


def _load_registry() -> dict[str, DatasetSpec]:
    registry: dict[str, DatasetSpec] = {}
    for module_name in DATASET_MODULES:
        qualified = f"{__name__}.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise  # the module exists but one of ITS imports is missing: a real error
            log.debug("dataset module %s not present; skipped", qualified)
            continue
        spec = getattr(module, "SPEC", None)
        if spec is None:  # a module still being written: not a dataset yet
            log.warning("dataset module %s defines no SPEC; skipped", qualified)
            continue
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"{qualified}.SPEC must be a DatasetSpec, got {type(spec).__name__}")
        registry[spec.name] = spec
    return registry


#: name -> spec of every dataset module present.
DATASETS: dict[str, DatasetSpec] = _load_registry()


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a known dataset.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} or csv:PATH / parquet:PATH") from None


def is_shop_export(name: str) -> bool:
    """True when ``name`` is ``csv:PATH`` or ``parquet:PATH``."""
    return name.startswith(SHOP_PREFIXES)


def read_dataset(
    name: str,
    data_dir: Path | None,
    pseudonymiser: Pseudonymiser,
    cache_dir: Path,
) -> LoadedDataset:
    """Read, validate and pseudonymise one dataset.

    Args:
        name: a key of :data:`DATASETS`, or ``csv:PATH`` / ``parquet:PATH`` for a shop export.
        data_dir: ``SOCIALREC_DATA_DIR`` (read-only); None = download into ``cache_dir``.
        pseudonymiser: maps raw user ids to pseudonyms.
        cache_dir: writable directory for downloads (``cache_dir/datasets/<name>``).
    Returns:
        The :class:`~etl.schema.LoadedDataset` (tables, quarantine, report).
    Raises:
        KeyError: unknown dataset. EtlInputError: a structurally bad input file.
        DownloadError: the dataset had to be downloaded and that failed.
    """
    if is_shop_export(name):
        from etl.shop import read_shop_export

        return read_shop_export(name, pseudonymiser)
    spec = get_spec(name)
    folder = ensure_dataset(name, data_dir, cache_dir)
    sources = spec.read(folder)
    return validate_tables(name, sources, spec.rules, pseudonymiser)


__all__ = ["DATASETS", "DATASET_MODULES", "DatasetSpec", "get_spec", "is_shop_export", "read_dataset"]
