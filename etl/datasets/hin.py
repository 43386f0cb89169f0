"""Helpers shared by the two "HIN Datasets for Recommendation" readers (yelp-hin, amazon-hin).

Those files give item→attribute links as id pairs (no names). An item with several category ids
gets as ``category`` its MOST SPECIFIC one, taken to be the category with the fewest items
overall (broad categories such as "Restaurants" cover many items; ties → lowest numeric id), and
the full sorted list in the extra column ``categories`` (``|``-separated).
"""

from __future__ import annotations

import pandas as pd

#: GitHub raw-file root of librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding at the
#: commit named in both SOURCE.md files.
HIN_BASE = (
    "https://raw.githubusercontent.com/librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding/"
    "cc05c484b628b08237f0a876fcebf99d736ccbea/"
)


def most_specific_category(item_ids: pd.Series, category_ids: pd.Series) -> pd.DataFrame:
    """One row per item: its rarest category id and all its category ids.

    Args:
        item_ids, category_ids: (n,) aligned string columns of an item→category link file.
    Returns:
        Frame ``item_id, category, categories`` (strings; ``categories`` sorted numerically,
        ``|``-joined).
    """
    links = pd.DataFrame({"item_id": item_ids, "cat": category_ids}).dropna().drop_duplicates()
    size = links.groupby("cat")["item_id"].transform("size")
    links = links.assign(size=size.to_numpy(), cat_num=pd.to_numeric(links["cat"], errors="coerce").to_numpy())
    ranked = links.sort_values(["item_id", "size", "cat_num"], kind="stable")
    top = ranked.drop_duplicates("item_id", keep="first").set_index("item_id")["cat"]
    everything = links.sort_values(["item_id", "cat_num"], kind="stable").groupby("item_id", sort=True)["cat"]
    joined = everything.agg("|".join)
    return pd.DataFrame(
        {"item_id": joined.index.to_numpy(), "category": top.reindex(joined.index).to_numpy(), "categories": joined.to_numpy()}
    )
