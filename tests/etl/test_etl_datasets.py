"""Per-dataset read counts, pinned to the measured statistics in each SOURCE.md."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from etl.schema import TABLE_COLUMNS, TABLES


def _check_report(ds) -> None:
    for table in TABLES:
        line = ds.report[table]
        assert line["read"] == line["loaded"] + line["quarantined"], table
        assert len(ds.tables[table]) == line["loaded"], table
        assert list(ds.tables[table].columns[: len(TABLE_COLUMNS[table])]) == list(TABLE_COLUMNS[table])
        assert (ds.quarantine["table"] == table).sum() == line["quarantined"], table


def _reasons(ds, table: str) -> dict[str, int]:
    q = ds.quarantine[ds.quarantine["table"] == table]
    return q["reason"].value_counts().to_dict()


def _assert_no_raw_user_ids(ds) -> None:
    for table, cols in (("users", ["user_id"]), ("interactions", ["user_id"]), ("follows", ["follower_id", "followee_id"])):
        for col in cols:
            assert ds.tables[table][col].str.match(r"^u_[0-9a-f]{20}$").all(), (table, col)
    for raw in ds.quarantine["raw"]:
        row = json.loads(raw)
        for col in ("user_id", "follower_id", "followee_id"):
            if row.get(col) is not None:
                assert row[col].startswith("u_"), row


def test_lastfm_counts_match_source_md(loaded):
    ds = loaded("lastfm-hetrec2011")
    _check_report(ds)
    assert ds.report["interactions"] == {"read": 92_834, "loaded": 92_834, "quarantined": 0}
    assert ds.report["follows"] == {"read": 25_434, "loaded": 25_434, "quarantined": 0}
    assert ds.report["items"] == {"read": 17_632, "loaded": 17_632, "quarantined": 0}
    assert ds.report["users"]["loaded"] == 1_892
    inter = ds.tables["interactions"]
    assert set(inter["kind"]) == {"play"}
    assert inter["value"].min() == 1 and inter["value"].max() == 352_698
    # ts = first tagging date of the pair; 20,665 pairs were tagged, one only on a bogus 1956 date.
    assert int(inter["ts"].notna().sum()) == 20_664
    assert inter["ts"].min() >= 1_009_843_200.0
    items = ds.tables["items"].set_index("item_id")
    assert items.loc["1", "title"] == "MALICE MIZER"
    assert int(items["category"].notna().sum()) == 12_133  # artists with >= 1 tag
    _assert_no_raw_user_ids(ds)


def test_lastfm_tags_are_decoded_as_latin1(loaded):
    cats = set(loaded("lastfm-hetrec2011").tables["items"]["category"].dropna())
    assert not any("\ufffd" in c for c in cats)


def test_filmtrust_counts_match_source_md(loaded):
    ds = loaded("filmtrust")
    _check_report(ds)
    assert ds.report["interactions"] == {"read": 35_497, "loaded": 35_494, "quarantined": 3}
    assert _reasons(ds, "interactions") == {"duplicate": 3}
    assert ds.report["follows"] == {"read": 1_853, "loaded": 1_853, "quarantined": 0}
    assert ds.report["items"]["loaded"] == 2_071
    # 1,508 raters + 134 users who only appear in trust edges
    assert ds.report["users"]["loaded"] == 1_642
    inter = ds.tables["interactions"]
    assert inter["value"].between(0.5, 4.0).all()
    assert inter["ts"].isna().all()
    _assert_no_raw_user_ids(ds)


def test_filmtrust_duplicate_keeps_last_row_in_file_order(loaded, pseudonymiser):
    # ratings.txt lines 7411 (308 207 3.5) and 7437 (308 207 3.0): no timestamps -> the last wins.
    ds = loaded("filmtrust")
    inter = ds.tables["interactions"]
    row = inter[(inter["user_id"] == pseudonymiser.user("308")) & (inter["item_id"] == "207")]
    assert row["value"].tolist() == [3.0]
    q = ds.quarantine
    assert "ratings.txt:7411" in set(q["source"])


def test_ciao_counts_and_quarantine(loaded):
    ds = loaded("ciao")
    _check_report(ds)
    # 284,086 rows: 34 ratings of 0 (out of the 1-5 scale) and 1,436 surplus rows of repeated
    # (user, item) pairs, 3 of which are also 0-ratings -> 1,433 duplicates.
    for table in ("interactions", "reviews"):
        assert ds.report[table] == {"read": 284_086, "loaded": 282_619, "quarantined": 1_467}, table
        assert _reasons(ds, table) == {"duplicate": 1_433, "out_of_range": 34}, table
    assert ds.report["follows"] == {"read": 111_781, "loaded": 111_781, "quarantined": 0}
    assert ds.report["users"]["loaded"] == 7_375
    assert ds.report["items"]["loaded"] == 105_114
    inter = ds.tables["interactions"]
    assert inter["value"].between(1, 5).all()
    assert inter["ts"].notna().all()
    assert not inter.duplicated(["user_id", "item_id"]).any()
    reviews = ds.tables["reviews"]
    assert reviews["review_id"].is_unique and reviews["review_id"].str.match(r"^r_[0-9a-f]{24}$").all()
    assert reviews["helpfulness"].between(1, 7).all()
    items = ds.tables["items"]
    assert items["category"].nunique() == 28
    assert "Ciao Café" in set(items["category"])
    _assert_no_raw_user_ids(ds)


def test_ciao_duplicate_keeps_latest_timestamp(loaded):
    ds = loaded("ciao")
    q = ds.quarantine[(ds.quarantine["table"] == "interactions") & (ds.quarantine["reason"] == "duplicate")]
    inter = ds.tables["interactions"].set_index(["user_id", "item_id"])
    for raw in q["raw"].head(200):
        row = json.loads(raw)
        kept_ts = inter.loc[(row["user_id"], row["item_id"]), "ts"]
        assert float(row["ts"]) <= kept_ts


@pytest.mark.parametrize("name", ["lastfm-hetrec2011", "filmtrust", "ciao"])
def test_follow_and_interaction_ids_exist_as_nodes(loaded, name):
    ds = loaded(name)
    users = set(ds.tables["users"]["user_id"])
    items = set(ds.tables["items"]["item_id"])
    assert set(ds.tables["interactions"]["user_id"]) <= users
    assert set(ds.tables["interactions"]["item_id"]) <= items
    assert set(ds.tables["follows"]["follower_id"]) <= users
    assert not np.any(ds.tables["follows"]["follower_id"].to_numpy() == ds.tables["follows"]["followee_id"].to_numpy())


def test_epinions_counts_and_quarantine(loaded):
    ds = loaded("epinions")
    _check_report(ds)
    # 9,826 surplus rows of repeated (user, item) pairs; no timestamps -> last row wins.
    assert ds.report["interactions"] == {"read": 922_267, "loaded": 912_441, "quarantined": 9_826}
    assert _reasons(ds, "interactions") == {"duplicate": 9_826}
    # 355,754 trust rows: 224 self loops, 27 repeated edges.
    assert ds.report["follows"] == {"read": 355_754, "loaded": 355_503, "quarantined": 251}
    assert _reasons(ds, "follows") == {"self_follow": 224, "duplicate": 27}
    assert ds.report["items"]["loaded"] == 296_277
    assert ds.report["users"]["loaded"] == 22_165  # 22,164 raters + 1 user only in trust edges
    assert ds.tables["items"]["category"].nunique() == 27
    assert ds.tables["interactions"]["ts"].isna().all()


def test_yelp_hin_counts(loaded):
    ds = loaded("yelp-hin")
    _check_report(ds)
    assert ds.report["interactions"] == {"read": 198_397, "loaded": 198_397, "quarantined": 0}
    assert ds.report["follows"] == {"read": 158_590, "loaded": 158_590, "quarantined": 0}
    assert ds.report["users"]["loaded"] == 16_239
    items = ds.tables["items"]
    assert len(items) == 14_284
    assert int(items["category"].notna().sum()) == 14_180
    assert int(items["city"].notna().sum()) == 14_267
    assert items["city"].nunique() == 47
    assert set(ds.tables["interactions"]["value"]) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_amazon_hin_counts(loaded):
    ds = loaded("amazon-hin")
    _check_report(ds)
    assert ds.report["interactions"] == {"read": 195_791, "loaded": 195_791, "quarantined": 0}
    assert ds.report["follows"] == {"read": 0, "loaded": 0, "quarantined": 0}
    assert ds.report["users"]["loaded"] == 6_170
    items = ds.tables["items"]
    assert len(items) == 2_753 and items["brand"].nunique() == 334 and items["category"].notna().all()
    ts = ds.tables["interactions"]["ts"]
    assert ts.notna().all()
    assert pd.Timestamp(ts.min(), unit="s").year == 1998 and pd.Timestamp(ts.max(), unit="s").year == 2014


def test_amazon_beauty_counts_and_duplicates(loaded):
    ds = loaded("amazon-all-beauty-5core-2018")
    _check_report(ds)
    # 1,027 lines are exact copies of an earlier line -> duplicate reviews;
    # 1,177 surplus rows repeat a (reviewer, item) pair -> duplicate interactions.
    assert ds.report["reviews"] == {"read": 5_269, "loaded": 4_242, "quarantined": 1_027}
    assert _reasons(ds, "reviews") == {"duplicate": 1_027}
    assert ds.report["interactions"] == {"read": 5_269, "loaded": 4_092, "quarantined": 1_177}
    assert _reasons(ds, "interactions") == {"duplicate": 1_177}
    assert ds.report["users"]["loaded"] == 991 and ds.report["items"]["loaded"] == 85
    reviews = ds.tables["reviews"]
    assert reviews["text"].notna().sum() > 4_000 and "summary" in reviews.columns
    assert "reviewerName" not in reviews.columns
    _assert_no_raw_user_ids(ds)
