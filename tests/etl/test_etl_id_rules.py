"""The ETL's id and value rules from the field reports (issue 14 items 7, 10, 15)."""

from __future__ import annotations

import pandas as pd

from etl.shop import read_shop_export
from etl.validate import canonical_id


def _reasons(ds, table):
    q = ds.quarantine[ds.quarantine["table"] == table]
    return dict(zip(q["source"], q["reason"]))


def test_missing_value_spellings_are_bad_ids_blank_ratings_bad_values_and_nfc_forms_one_item(tmp_path, pseudonymiser):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "interactions.csv").write_text(
        "user_id,item_id,kind,value,ts\n"
        "NaN,i1,view,,\n"        # 2 bad_id: what pandas writes for a missing id
        "nan,i1,view,,\n"        # 3 bad_id
        "None,i1,view,,\n"       # 4 bad_id
        "null,i1,view,,\n"       # 5 bad_id
        "alice,i1,rating,,\n"    # 6 bad_value: a blank rating
        "alice,caf\u00e9,view,,1600000000\n"   # 7 NFC ...
        "alice,cafe\u0301,view,,1600000001\n"  # 8 ... and NFD of one item: 7 is a duplicate
        "nancy,i1,view,,\n",     # 9 ok: only the whole cell is a missing-value token
        encoding="utf-8")
    ds = read_shop_export(f"csv:{folder}", pseudonymiser)
    assert _reasons(ds, "interactions") == {
        "interactions.csv:2": "bad_id", "interactions.csv:3": "bad_id", "interactions.csv:4": "bad_id",
        "interactions.csv:5": "bad_id", "interactions.csv:6": "bad_value", "interactions.csv:7": "duplicate",
    }
    items = set(ds.tables["interactions"]["item_id"])
    assert items == {"i1", "caf\u00e9"}
    assert canonical_id(" cafe\u0301 ") == "caf\u00e9"
    assert pseudonymiser.user("cafe\u0301") == pseudonymiser.user("caf\u00e9")
    assert pseudonymiser.users(pd.Series(["cafe\u0301"])).iloc[0] == pseudonymiser.user("caf\u00e9")
