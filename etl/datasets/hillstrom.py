"""Hillstrom "MineThatData" e-mail campaign (2008): a randomised three-arm marketing experiment.

64,000 customers randomly assigned to a men's merchandise e-mail, a women's merchandise e-mail or
no e-mail (control); visits, conversions and spend tracked for two weeks (K. Hillstrom, "The
MineThatData E-Mail Analytics And Data Mining Challenge", MineThatData blog, 2008). See
``../shared/data/hillstrom/SOURCE.md``.

Two ways in:

* :func:`read_hillstrom` — the campaign as one canonical campaign table (customer, arm, outcomes,
  covariates; :mod:`etl.campaign`), for uplift models, campaign analysis and ROI. This is what
  :func:`etl.campaign.load_campaign_table` returns for ``"hillstrom"``.
* :data:`SPEC` — the registry entry (``socialrec etl --dataset hillstrom``): the customers as a
  ``users`` node table whose attributes are the pre-campaign covariates (recency, history, ...).
  The file has no customer ids, no items and no graph: each data row ``r`` (1-based, line
  ``r + 1``) becomes customer ``h000001``-style id ``"h%06d" % r``, the same id
  :func:`read_hillstrom` gives it, so campaign rows join the stored users. The arm and the
  outcomes are not node attributes: they are the campaign (stored by the campaign code).

Download: ``hillstrom.csv`` from GitHub ``carlosquintanillaa/Datasets`` at the commit named in
``SOURCE.md``; its SHA-256 was computed with ``sha256sum`` from the shared copy.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.errors import EtlInputError
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "hillstrom"
FILE = "hillstrom.csv"
_COMMIT = "bd475633095c8a007be32c47ea695abe318197b6"
URL = f"https://raw.githubusercontent.com/carlosquintanillaa/Datasets/{_COMMIT}/{FILE}"
#: sha256sum of ../shared/data/hillstrom/hillstrom.csv (3,964,975 bytes).
SHA256 = "ff9e59285e9dc3f5fa3e0975419e6631ea5bdccd65d818991473d2367e02979c"
FILES: tuple[RemoteFile, ...] = (RemoteFile(FILE, URL, SHA256),)

#: Column layout of the file, in order.
COLUMNS: tuple[str, ...] = (
    "recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel",
    "segment", "visit", "conversion", "spend",
)
#: Pre-campaign covariates: numeric ones, then categorical ones.
NUMERIC_COVARIATES: tuple[str, ...] = ("recency", "history", "mens", "womens", "newbie")
CATEGORICAL_COVARIATES: tuple[str, ...] = ("history_segment", "zip_code", "channel")
OUTCOMES: tuple[str, ...] = ("visit", "conversion", "spend")
ARMS: tuple[str, ...] = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
CONTROL_ARM = "No E-Mail"


def customer_ids(n: int) -> np.ndarray:
    """The synthetic customer ids of the first ``n`` data rows: ``h000001`` ... (object array)."""
    return np.array([f"h{r:06d}" for r in range(1, n + 1)], dtype=object)


def _read_raw(folder: Path) -> pd.DataFrame:
    raw = read_delimited(Path(folder) / FILE, COLUMNS, sep=",", header=True, quoting=csv.QUOTE_MINIMAL)
    return raw


def read_hillstrom(folder: Path) -> pd.DataFrame:
    """Read ``hillstrom.csv`` as a raw canonical campaign frame (not yet checked).

    Args:
        folder: the ``hillstrom`` dataset directory.
    Returns:
        Frame, one row per customer, file order: ``customer_id`` (str, ``h000001``...), ``arm``
        (str, the ``segment`` column), ``visit``, ``conversion``, ``spend``, the covariates
        (:data:`NUMERIC_COVARIATES` + :data:`CATEGORICAL_COVARIATES`, as text) and ``_line``
        (int64, 1-based line in the file; header = 1). Values are NOT parsed or checked here:
        :func:`etl.campaign.check_campaign_table` does that (with file:line:field errors).
    Raises:
        EtlInputError: the file is missing or a line has too many fields.
    """
    raw = _read_raw(folder)
    out = pd.DataFrame({"customer_id": customer_ids(len(raw)), "arm": raw["segment"].to_numpy()})
    for col in OUTCOMES + NUMERIC_COVARIATES + CATEGORICAL_COVARIATES:
        out[col] = raw[col].to_numpy()
    out["_line"] = raw["_line"].to_numpy()
    return out


def read(folder: Path) -> dict[str, SourceTable]:
    """Registry reader: the customers as ``users`` with their covariates as attributes.

    Args:
        folder: the ``hillstrom`` dataset directory.
    Returns:
        ``{"users": SourceTable}``: ``user_id`` (raw ``h000001``-style ids), the covariate columns
        (numeric ones parsed to float64, NaN where unparseable), ``_line``.
    Raises:
        EtlInputError: the file is missing, has too many fields on a line, or lacks its header.
    """
    raw = _read_raw(folder)
    if len(raw) == 0:
        raise EtlInputError(FILE, 1, "", "no data rows")
    users = pd.DataFrame({"user_id": customer_ids(len(raw))})
    for col in NUMERIC_COVARIATES:
        users[col] = pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=np.float64)
    for col in CATEGORICAL_COVARIATES:
        users[col] = raw[col].to_numpy()
    users["_line"] = raw["_line"].to_numpy()
    return {"users": SourceTable(users, FILE)}


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(),
    files=FILES,
    description="Hillstrom 2008 e-mail campaign: 64,000 customers randomised to Mens / Womens / no e-mail (uplift, A/B, ROI)",
)
