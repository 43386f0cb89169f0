"""Ciao (``ciao``): product ratings 1–5 with date, category and helpfulness, and directed trust.

Uses the consistent "mTrust" id space: ``ratings.csv.gz`` (= ``rating_with_timestamp.mat``) with
``trust.csv.gz`` (= ``trustnetwork.mat``). The eTrust files (``etrust_2012/``,
``sociallgn_split/``) use a different user-id space and are NOT read.

What becomes what:

* each ``ratings.csv.gz`` row (user_id, item_id, category_id, rating, helpfulness, timestamp)
  becomes BOTH an ``interactions`` row (kind ``rating``, value = rating, ts = timestamp in
  seconds) AND a ``reviews`` row (rating, helpfulness, ts; no text in this release) whose
  ``review_id`` is derived from (pseudonymised user, item): ``"r_" + sha256(...)[:24]``.
* Ratings of 0 (34 rows) are outside the 1–5 scale and quarantined ``out_of_range`` in both
  tables (they are not a rating a user gave; the site's scale is 1–5 stars).
* 1,436 surplus rows repeat a (user, item) pair: the latest timestamp wins, ties → the last row
  in file order; the others are quarantined ``duplicate`` (in both tables).
* ``trust.csv.gz`` (truster_id, trustee_id) → ``follows``.
* ``items`` (derived) = every item id of the ratings file with ``category`` = the name (from
  ``category.txt``) of its most frequent category id (101 items carry 2–3 different ids; ties →
  the lowest id). ``category.txt`` has CRLF line ends and one mangled name "Ciao Caf?", read as
  "Ciao Café".
* ``users`` are derived from the loaded rows.

Sources: ``rating_with_timestamp.mat`` — GitHub leo0481/SocialLGN @
f844a417a9ae0402ee4593ff4d21fba2f5b17cb9 ``data/raw/ciao/``; ``trustnetwork.mat`` and
``category.txt`` — YangLiangwei/ConsisRec @ d1fba6e6a96cdfdab3f505270b0deb5b50c15d45 ``data/ciao/``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from etl.datasets.matlab import mat_to_csv_gz
from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited, read_id_names
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "ciao"
_SOCIALLGN = "https://raw.githubusercontent.com/leo0481/SocialLGN/f844a417a9ae0402ee4593ff4d21fba2f5b17cb9/data/raw/ciao/"
_CONSISREC = "https://raw.githubusercontent.com/YangLiangwei/ConsisRec/d1fba6e6a96cdfdab3f505270b0deb5b50c15d45/data/ciao/"
FILES = (
    RemoteFile(
        "rating_with_timestamp.mat",
        _SOCIALLGN + "rating_with_timestamp.mat",
        "488e9aa5f60e6a52a972795b6402f922fc0d9d273152f4d124a5c5bdefb86a71",
    ),
    RemoteFile(
        "trustnetwork.mat", _CONSISREC + "trustnetwork.mat", "0a8963ed22e6b534ce8d14e478f54ce0af6f5a3440a67ed5a35e62486580ce3a"
    ),
    RemoteFile("category.txt", _CONSISREC + "category.txt", "6a1ee8366ac861c73046ec3f670012436bdf0d08f61015baffc833af74811393"),
)
RATING_COLUMNS = ("user_id", "item_id", "category_id", "rating", "helpfulness", "timestamp")
TRUST_COLUMNS = ("truster_id", "trustee_id")
#: Known mangled category names in ``category.txt`` and their intended spelling.
CATEGORY_FIXES = {"Ciao Caf?": "Ciao Café"}


def build(folder: Path) -> None:
    """Rebuild the derived ``ratings.csv.gz`` / ``trust.csv.gz`` from the downloaded ``.mat`` files."""
    mat_to_csv_gz(folder / "rating_with_timestamp.mat", "rating", RATING_COLUMNS, folder / "ratings.csv.gz")
    mat_to_csv_gz(folder / "trustnetwork.mat", "trustnetwork", TRUST_COLUMNS, folder / "trust.csv.gz")


def item_categories(item_ids: pd.Series, category_ids: pd.Series, names: dict[str, str]) -> pd.DataFrame:
    """One row per item: its most frequent category id's name (ties → lowest numeric id).

    Args:
        item_ids, category_ids: (n,) aligned string columns of the ratings file.
        names: category id -> name.
    Returns:
        Frame ``item_id, category`` (category NaN when the id has no name).
    """
    pairs = pd.DataFrame({"item_id": item_ids, "cat": category_ids}).dropna()
    counts = pairs.groupby(["item_id", "cat"], sort=False).size().rename("n").reset_index()
    counts["cat_num"] = pd.to_numeric(counts["cat"], errors="coerce")
    counts = counts.sort_values(["item_id", "n", "cat_num"], ascending=[True, False, True], kind="stable")
    top = counts.drop_duplicates("item_id", keep="first")
    fixed = {k: CATEGORY_FIXES.get(v, v) for k, v in names.items()}
    return pd.DataFrame({"item_id": top["item_id"].to_numpy(), "category": top["cat"].map(fixed).to_numpy()})


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the ciao folder (``ratings.csv.gz``, ``trust.csv.gz``, ``category.txt``).

    Args:
        folder: dataset directory.
    Returns:
        ``items`` (derived), ``interactions``, ``reviews`` and ``follows`` source tables.
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    ratings = read_delimited(folder / "ratings.csv.gz", RATING_COLUMNS, sep=",", header=True)
    trust = read_delimited(folder / "trust.csv.gz", ("follower_id", "followee_id"), sep=",", header=True)
    names = read_id_names(folder / "category.txt", encoding="ISO-8859-1")

    base = ratings[["user_id", "item_id", "_line"]]
    interactions = base.assign(kind="rating", value=ratings["rating"], ts=ratings["timestamp"])
    reviews = base.assign(rating=ratings["rating"], helpfulness=ratings["helpfulness"], ts=ratings["timestamp"])
    items = item_categories(ratings["item_id"], ratings["category_id"], names)
    return {
        "items": SourceTable(items, "ratings.csv.gz", derived=True),
        "interactions": SourceTable(interactions, "ratings.csv.gz"),
        "reviews": SourceTable(reviews, "ratings.csv.gz"),
        "follows": SourceTable(trust, "trust.csv.gz"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(review_key=("user_id", "item_id")),
    files=FILES,
    build=build,
    description="Ciao: 284,086 dated product ratings (1-5) with helpfulness, 28 categories, 111,781 trust edges",
)
