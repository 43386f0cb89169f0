"""Epinions (``epinions``, Tang et al. mTrust release): ratings 1–5 with category, directed trust.

No timestamps, no helpfulness, no text in this release.

What becomes what:

* ``ratings.csv.gz`` (= ``rating.mat``: user_id, item_id, category_id, rating) → ``interactions``
  kind ``rating``, ts NaN. 9,826 surplus rows repeat a (user, item) pair: with no timestamps the
  LAST row in file order wins, the others are quarantined ``duplicate``.
* ``trust.csv.gz`` (= ``trustnetwork.mat``: truster_id, trustee_id) → ``follows``; the 224 self
  loops are quarantined ``self_follow``, repeated edges ``duplicate``.
* ``items`` (derived) carry the name (``category.txt``, CRLF) of their most frequent category id
  (ties → lowest id); ``users`` are derived from the loaded rows.
* ``trust_etrust.*`` (the eTrust variant of the trust graph) is not read.

Source: GitHub YangLiangwei/ConsisRec @ d1fba6e6a96cdfdab3f505270b0deb5b50c15d45, ``data/epinions/``
(``rating.mat``, ``trustnetwork.mat``, ``category.txt``); the CSVs are rebuilt from the ``.mat``
files after a download (:func:`build`).
"""

from __future__ import annotations

from pathlib import Path

from etl.datasets.ciao import item_categories
from etl.datasets.matlab import mat_to_csv_gz
from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited, read_id_names
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "epinions"
_BASE = "https://raw.githubusercontent.com/YangLiangwei/ConsisRec/d1fba6e6a96cdfdab3f505270b0deb5b50c15d45/data/epinions/"
FILES = (
    RemoteFile("rating.mat", _BASE + "rating.mat", "4fe1dd12896dbfc3d2b3e696c749947382d9725add4545cb6c44ee11c8e22159"),
    RemoteFile("trustnetwork.mat", _BASE + "trustnetwork.mat", "9cd648ab98c2e02799bfed0ae186dbc8736e97178d18bf471cc168770f39cf0a"),
    RemoteFile("category.txt", _BASE + "category.txt", "45c8d398a53e6d8eff36aaf237e717b37a1b61cae8ab8c484c9b7c0fb7bfeaaa"),
)
RATING_COLUMNS = ("user_id", "item_id", "category_id", "rating")
TRUST_COLUMNS = ("truster_id", "trustee_id")


def build(folder: Path) -> None:
    """Rebuild the derived ``ratings.csv.gz`` / ``trust.csv.gz`` from the downloaded ``.mat`` files."""
    mat_to_csv_gz(folder / "rating.mat", "rating", RATING_COLUMNS, folder / "ratings.csv.gz")
    mat_to_csv_gz(folder / "trustnetwork.mat", "trustnetwork", TRUST_COLUMNS, folder / "trust.csv.gz")


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the epinions folder (``ratings.csv.gz``, ``trust.csv.gz``, ``category.txt``).

    Args:
        folder: dataset directory.
    Returns:
        ``items`` (derived), ``interactions`` and ``follows`` source tables.
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    ratings = read_delimited(folder / "ratings.csv.gz", RATING_COLUMNS, sep=",", header=True)
    trust = read_delimited(folder / "trust.csv.gz", ("follower_id", "followee_id"), sep=",", header=True)
    names = read_id_names(folder / "category.txt")
    interactions = ratings[["user_id", "item_id", "_line"]].assign(kind="rating", value=ratings["rating"])
    items = item_categories(ratings["item_id"], ratings["category_id"], names)
    return {
        "items": SourceTable(items, "ratings.csv.gz", derived=True),
        "interactions": SourceTable(interactions, "ratings.csv.gz"),
        "follows": SourceTable(trust, "trust.csv.gz"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(),
    files=FILES,
    build=build,
    description="Epinions (mTrust): 922,267 ratings (1-5), 27 categories, 355,754 trust rows; no timestamps",
)
