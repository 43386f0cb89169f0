"""CDNOW customer transactions (Fader & Hardie): the benchmark for BTYD / CLV models.

The cohort of 23,570 customers who first bought at the online music retailer CDNOW in Q1 1997,
followed to 30 June 1998 (date, number of CDs, dollars); ``CDNOW_sample.txt`` is the 1/10 sample
(2,357 customers) of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way",
Marketing Science 24(2). See ``../shared/data/cdnow/SOURCE.md``.

Two ways in:

* :func:`read_cdnow_transactions` — the purchase log with dollars, for the CLV models
  (``socialrec clv --dataset cdnow`` via :func:`recsys.value.clv.cdnow_report`).
* :data:`SPEC` — the registry entry (``socialrec etl --dataset cdnow``). CDNOW records orders,
  not products, so what becomes what (sample file):

  * the purchase lines of one customer-day are one order (the FHL protocol) → one
    ``interactions`` row, kind ``purchase``, value = CDs bought that day (the canonical
    "purchase quantity"), ts = that day 00:00 UTC, item ``order-YYYYMMDD`` (one item node per
    calendar day, category ``cdnow-order``). Well-formed lines are summed; a line that does not
    parse is passed through alone so the validator quarantines it with its own line number;
    ``_line`` of an order is its first line. Dollars are not in the canonical schema (it has no
    price column): money-valued CLV reads the file with :func:`read_cdnow_transactions`.
  * ``users`` and ``items`` are derived; there are no follows.

Download: the original files ship inside the PyPI wheel ``lifetimes==0.11.3``
(``lifetimes/datasets/``); :data:`FILES` gives the wheel URL, the member, and the SHA-256 of each
file, computed with ``sha256sum`` from the shared copy (the wheel's own digest is not recorded:
its bytes were never at hand here).

Pseudonymisation: the registry pseudonymises the raw ids of :data:`SPEC`'s tables. For
:func:`read_cdnow_transactions` the caller may pass ``Pseudonymiser.users``; without it the
(already anonymous) integer ids are kept as the file writes them (``"0001"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "cdnow"

# Where the originals come from and what their bytes hash to (sha256sum of ../shared/data/cdnow).
#: files.pythonhosted.org resolves /packages/{python tag}/{first letter}/{project}/{wheel file}.
WHEEL_URL = "https://files.pythonhosted.org/packages/py3/L/Lifetimes/Lifetimes-0.11.3-py3-none-any.whl"
WHEEL_MEMBER_PREFIX = "lifetimes/datasets/"
SHA256: dict[str, str] = {
    "CDNOW_master.txt": "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
    "CDNOW_sample.txt": "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
    "cdnow_customers_summary.csv": "09d92ca80daaabe8be0f997d4c539f9c9606106baa5b199081fe01cbce5fa9f6",
    "cdnow_customers_summary_with_transactions.csv": "7ddd11b55be3227edfc1d58675154e96971b0de3ad37ddd9280d1dba154b8b2f",
    "donations.csv": "82c25f26a201ff047e1cd5fe3d7967a45db92a025ecedee72ff8940e50104544",
}
FILES: tuple[RemoteFile, ...] = tuple(
    RemoteFile(name, WHEEL_URL, digest, member=WHEEL_MEMBER_PREFIX + name) for name, digest in SHA256.items()
)

# The Fader, Hardie & Lee (2005) protocol on the sample.
CALIBRATION_END = pd.Timestamp("1997-09-30")
HOLDOUT_END = pd.Timestamp("1998-06-30")

SAMPLE_COLUMNS = ("master_id", "sample_id", "date", "cds", "dollars")


def read_cdnow_transactions(
    data_dir: Path,
    sample: bool = True,
    pseudonymise: Callable[[pd.Series], pd.Series] | None = None,
) -> pd.DataFrame:
    """Read the CDNOW purchase log.

    Args:
        data_dir: the ``cdnow`` folder (holding ``CDNOW_sample.txt`` / ``CDNOW_master.txt``).
        sample: True = the 2,357-customer sample (no header; columns master id, sample id, date,
            CDs, dollars; CRLF), False = the full 23,570-customer master file (one header line).
        pseudonymise: optional function mapping a Series of raw id strings to pseudonyms, e.g.
            ``etl.pseudonymise.Pseudonymiser(key).users``; None keeps the raw ids.
    Returns:
        Frame with ``customer_id`` (str: the sample id for the sample, the master id for the
        master file, zero-padded to 5 digits), ``date`` (datetime64[ns]), ``cds`` (int64),
        ``dollars`` (float64); one row per purchase line (several per day possible), file order.
    Raises:
        FileNotFoundError: the file is absent. ValueError: a row does not parse (names the line).
    """
    data_dir = Path(data_dir)
    if sample:
        path = data_dir / "CDNOW_sample.txt"
        raw = pd.read_csv(path, sep=r"\s+", header=None, names=list(SAMPLE_COLUMNS), dtype=str)
        ids = raw["sample_id"]
    else:
        path = data_dir / "CDNOW_master.txt"
        raw = pd.read_csv(path, sep=r"\s+", dtype=str)
        raw.columns = ["master_id", "date", "cds", "dollars"]
        ids = raw["master_id"]
    dates = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    cds = pd.to_numeric(raw["cds"], errors="coerce")
    dollars = pd.to_numeric(raw["dollars"], errors="coerce")
    bad = dates.isna() | cds.isna() | dollars.isna() | ids.isna()
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + (1 if sample else 2)
        raise ValueError(f"{path}: line {line} does not parse (date/cds/dollars)")
    customer_id = ids.astype(str)
    if pseudonymise is not None:
        customer_id = pd.Series(pseudonymise(customer_id), index=raw.index).astype(str)
    return pd.DataFrame(
        {
            "customer_id": customer_id.to_numpy(),
            "date": dates.astype("datetime64[ns]").to_numpy(),
            "cds": cds.astype("int64").to_numpy(),
            "dollars": dollars.astype("float64").to_numpy(),
        }
    )


def to_value_transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``recsys.value`` transaction frame (``customer_id``, ``date``, ``value`` in dollars)."""
    return pd.DataFrame({"customer_id": frame["customer_id"], "date": frame["date"], "value": frame["dollars"]})


def read(folder: Path) -> dict[str, SourceTable]:
    """Registry reader: the sample file as customer-day ``purchase`` interactions (module docstring).

    Args:
        folder: the ``cdnow`` dataset directory.
    Returns:
        ``{"interactions": SourceTable, "items": SourceTable(derived)}`` with raw user ids.
    Raises:
        EtlInputError: the file is missing or has a line with too many fields.
    """
    raw = read_delimited(folder / "CDNOW_sample.txt", SAMPLE_COLUMNS, sep=r"\s+")
    dates = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    cds = pd.to_numeric(raw["cds"], errors="coerce")
    ok = dates.notna() & cds.notna() & raw["sample_id"].notna()
    good = raw[ok].assign(_day=raw.loc[ok, "date"], _cds=cds[ok])
    orders = good.groupby(["sample_id", "_day"], sort=False).agg(value=("_cds", "sum"), _line=("_line", "min"))
    orders = orders.reset_index().rename(columns={"sample_id": "user_id"})
    orders["item_id"] = "order-" + orders["_day"].astype(str)
    orders["ts"] = (pd.to_datetime(orders["_day"], format="%Y%m%d") - pd.Timestamp("1970-01-01")).dt.total_seconds()
    bad = raw[~ok].rename(columns={"sample_id": "user_id", "cds": "value"})
    bad = bad.assign(item_id="order-" + bad["date"].astype(str), ts=bad["date"])
    cols = ["user_id", "item_id", "value", "ts", "_line"]
    interactions = pd.concat([orders[cols], bad[cols]], ignore_index=True).sort_values("_line", kind="stable")
    interactions.insert(2, "kind", "purchase")
    items = pd.DataFrame({"item_id": sorted(orders["item_id"].unique()), "category": "cdnow-order"})
    items["_line"] = np.int64(0)
    return {
        "interactions": SourceTable(interactions.reset_index(drop=True), "CDNOW_sample.txt"),
        "items": SourceTable(items, "CDNOW_sample.txt", derived=True),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(max_ts=pd.Timestamp("1998-07-01").timestamp()),
    files=FILES,
    description="CDNOW sample: 2,357 customers' purchases 1997-01..1998-06 (BG/NBD benchmark; value = CDs)",
)
