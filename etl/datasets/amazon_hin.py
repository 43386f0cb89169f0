"""Amazon HIN subset (``amazon-hin``): dated ratings, item brand and category; no social links.

What becomes what:

* ``user_item.dat`` (user, item, rating 1–5, Unix seconds; tab separated) → ``interactions``
  kind ``rating`` with ``ts``.
* ``item_brand.dat`` (item,brand; one per item) → items ``brand`` (brand id as a string).
* ``item_category.dat`` (item,category; 1–4 per item) → items ``category`` = the most specific
  (rarest) category id and extra column ``categories`` (see :mod:`etl.datasets.hin`).
* ``item_view.dat`` ("also viewed" links) is not loaded: the canonical schema has no item–item
  table.
* ``items`` are derived; ``users`` from the loaded rows. Ids are 0-based in this release and
  kept as they are.

Source: GitHub librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding @
cc05c484b628b08237f0a876fcebf99d736ccbea, ``Amazon/``.
"""

from __future__ import annotations

from pathlib import Path

from etl.datasets.hin import HIN_BASE, most_specific_category
from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "amazon-hin"
_BASE = HIN_BASE + "Amazon/"
FILES = (
    RemoteFile("user_item.dat", _BASE + "user_item.dat", "d14fcc5b04f0d701d326149bc4f18d471156f189ff1f4d0fefa14511c4cb42c8"),
    RemoteFile("item_brand.dat", _BASE + "item_brand.dat", "65f4eaddff343a365ad474a6841bbaf541af1b2d96081c4adaeeeb8a7a8a313b"),
    RemoteFile("item_category.dat", _BASE + "item_category.dat", "17b9158f777fbb0b8b035a9b675c2f7d2e9f7ad81f34919d3e6db4289c9dc6bf"),
    RemoteFile("item_view.dat", _BASE + "item_view.dat", "42b1aec0a0eb9d71a265efb491dd951b523723637bb18f80f87c72d4fa6819da"),
)


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the amazon-hin folder.

    Args:
        folder: dataset directory.
    Returns:
        ``items`` (derived) and ``interactions`` source tables.
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    ratings = read_delimited(folder / "user_item.dat", ("user_id", "item_id", "value", "ts"))
    brands = read_delimited(folder / "item_brand.dat", ("item_id", "brand"), sep=",")
    cats = read_delimited(folder / "item_category.dat", ("item_id", "category"), sep=",")
    items = most_specific_category(cats["item_id"], cats["category"])
    brand = brands.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")[["item_id", "brand"]]
    items = items.merge(brand, on="item_id", how="outer")
    return {
        "items": SourceTable(items, "item_category.dat", derived=True),
        "interactions": SourceTable(ratings.assign(kind="rating"), "user_item.dat"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(),
    files=FILES,
    description="Amazon HIN: 195,791 dated ratings (1998-2014), item brand and category; no social links",
)
