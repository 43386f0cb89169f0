"""Yelp HIN subset (``yelp-hin``): star ratings, friendships, business category and city.

No timestamps, no text, no names (categories and cities are ids).

What becomes what:

* ``user_business.dat`` (user, business, stars 1–5) → ``interactions`` kind ``rating``.
* ``user_user.dat`` (user, user, 1; both directions listed) → ``follows``.
* ``business_category.dat`` → items ``category`` = the business's most specific category id
  (the one with the fewest businesses; see :mod:`etl.datasets.hin`) and extra column
  ``categories`` (all ids, ``|``-joined).
* ``business_city.dat`` → items extra column ``city`` (city id).
* ``user_compliment.dat`` is not loaded (user attributes, not used by the models).
* ``items`` are derived (attribute files + rated businesses); ``users`` from the loaded rows.

Source: GitHub librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding @
cc05c484b628b08237f0a876fcebf99d736ccbea, ``Yelp/``.
"""

from __future__ import annotations

from pathlib import Path

from etl.datasets.hin import HIN_BASE, most_specific_category
from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "yelp-hin"
_BASE = HIN_BASE + "Yelp/"
FILES = (
    RemoteFile("user_business.dat", _BASE + "user_business.dat", "d57853e95c3f49f0060f31ee9365ab3fffe1010999c76863c3cd9628b91e994d"),
    RemoteFile("user_user.dat", _BASE + "user_user.dat", "d360f88f66b7ba9a1fd460b8c414dba1bec6489773283083a614a77925bcaaed"),
    RemoteFile(
        "business_category.dat", _BASE + "business_category.dat", "d3c1499e406c0a842b3c08c478ffe7bf26a8758b630e0b056d0f4bcf18c01a5b"
    ),
    RemoteFile("business_city.dat", _BASE + "business_city.dat", "09c009dfa16709aff52de4831b9cb30f45a16dcfce1db06858d54af6ef5f7d1e"),
    RemoteFile(
        "user_compliment.dat", _BASE + "user_compliment.dat", "e7f5c15155bf0843e3bdf9fb4743bb3ebf76826b4108e9e194fd637e0bb05ed6"
    ),
)


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the yelp-hin folder.

    Args:
        folder: dataset directory.
    Returns:
        ``items`` (derived), ``interactions`` and ``follows`` source tables.
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    stars = read_delimited(folder / "user_business.dat", ("user_id", "item_id", "value"))
    friends = read_delimited(folder / "user_user.dat", ("follower_id", "followee_id", "weight"))
    cats = read_delimited(folder / "business_category.dat", ("item_id", "category", "weight"))
    cities = read_delimited(folder / "business_city.dat", ("item_id", "city", "weight"))
    items = most_specific_category(cats["item_id"], cats["category"])
    city = cities.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last").set_index("item_id")["city"]
    items = items.merge(city.rename("city").reset_index(), on="item_id", how="outer")
    return {
        "items": SourceTable(items, "business_category.dat", derived=True),
        "interactions": SourceTable(stars.assign(kind="rating"), "user_business.dat"),
        "follows": SourceTable(friends[["follower_id", "followee_id", "_line"]], "user_user.dat"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(),
    files=FILES,
    description="Yelp HIN: 198,397 star ratings, 158,590 friend edges, business category + city",
)
