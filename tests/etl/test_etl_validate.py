"""Every quarantine reason, exercised on a tiny hand-written shop export."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from etl.datasets import read_dataset
from etl.errors import EtlInputError
from etl.shop import read_shop_export
from etl.validate import parse_timestamps


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def shop(tmp_path) -> Path:
    folder = tmp_path / "shop"
    _write(folder, "users.csv", "user_id,email\nalice,a@example.com\nbob,b@example.com\ncarol,c@example.com\nbob,b2@example.com\n")
    _write(folder, "items.csv", "item_id,category,title,colour\ni1,shoes,Red shoe,red\ni2,hats,Blue hat,blue\n,x,no id,\n")
    _write(
        folder,
        "interactions.csv",
        "user_id,item_id,kind,value,ts\n"
        "alice,i1,rating,4,2021-03-01T10:00:00Z\n"  # 2  ok, but loses to line 3 (later ts)
        "alice,i1,rating,5,1614600000\n"  # 3  ok, latest
        ",i1,purchase,1,\n"  # 4  bad_id
        "alice,i2,like,1,\n"  # 5  bad_kind
        "dave,i1,view,,\n"  # 6  unknown_user (users file given)
        "bob,i9,view,,\n"  # 7  unknown_item
        "bob,i1,rating,six,\n"  # 8  bad_value
        "bob,i2,rating,0,\n"  # 9  out_of_range (scale 1-5)
        "carol,i1,purchase,2,yesterday\n"  # 10 bad_timestamp
        "carol,i2,view,,1850-01-01\n"  # 11 bad_timestamp (before 1990)
        "bob,i2,purchase,,\n"  # 12 ok, missing purchase value -> 1.0
        "bob,i2,purchase,3,\n",  # 13 ok, same key + same (unknown) ts -> last row wins; 12 duplicate
    )
    _write(
        folder,
        "follows.jsonl",
        '{"follower_id": "alice", "followee_id": "bob"}\n'
        '{"follower_id": "alice", "followee_id": "alice"}\n'  # self_follow
        '{"follower_id": "alice", "followee_id": "bob", "ts": 1600000000}\n'  # duplicate; wins (has ts)
        '{"follower_id": "bob", "followee_id": "zed"}\n',  # unknown_user
    )
    return folder


def _reasons(ds, table):
    q = ds.quarantine[ds.quarantine["table"] == table]
    return dict(zip(q["source"], q["reason"]))


def test_every_quarantine_reason(shop, pseudonymiser):
    ds = read_shop_export(f"csv:{shop}", pseudonymiser)
    assert _reasons(ds, "interactions") == {
        "interactions.csv:2": "duplicate",
        "interactions.csv:4": "bad_id",
        "interactions.csv:5": "bad_kind",
        "interactions.csv:6": "unknown_user",
        "interactions.csv:7": "unknown_item",
        "interactions.csv:8": "bad_value",
        "interactions.csv:9": "out_of_range",
        "interactions.csv:10": "bad_timestamp",
        "interactions.csv:11": "bad_timestamp",
        "interactions.csv:12": "duplicate",
    }
    assert _reasons(ds, "follows") == {
        "follows.jsonl:1": "duplicate",
        "follows.jsonl:2": "self_follow",
        "follows.jsonl:4": "unknown_user",
    }
    assert _reasons(ds, "users") == {"users.csv:3": "duplicate"}
    assert _reasons(ds, "items") == {"items.csv:4": "bad_id"}
    for table, line in ds.report.items():
        assert line["read"] == line["loaded"] + line["quarantined"], table
    assert ds.report["interactions"] == {"read": 12, "loaded": 2, "quarantined": 10}
    assert ds.report["users"] == {"read": 4, "loaded": 3, "quarantined": 1}


def test_duplicate_rule_keeps_latest_ts_then_last_row(shop, pseudonymiser):
    ds = read_shop_export(f"csv:{shop}", pseudonymiser)
    inter = ds.tables["interactions"].set_index(["user_id", "item_id", "kind"])
    alice, bob = pseudonymiser.user("alice"), pseudonymiser.user("bob")
    assert inter.loc[(alice, "i1", "rating"), "value"] == 5.0  # 1614600000 is 2021-03-01T12:00Z, later
    assert inter.loc[(alice, "i1", "rating"), "ts"] == 1_614_600_000.0
    assert inter.loc[(bob, "i2", "purchase"), "value"] == 3.0
    follows = ds.tables["follows"]
    assert follows["ts"].tolist() == [1_600_000_000.0]


def test_quarantine_and_tables_carry_no_raw_user_ids_or_extra_user_columns(shop, pseudonymiser):
    ds = read_shop_export(f"csv:{shop}", pseudonymiser)
    assert list(ds.tables["users"].columns) == ["user_id"]  # email dropped
    assert "colour" in ds.tables["items"].columns  # item attributes kept
    text = ds.quarantine.to_csv()
    for raw_id in ("alice", "bob", "carol", "dave", "zed", "example.com"):
        assert raw_id not in text
    for raw in ds.quarantine["raw"]:
        json.loads(raw)


def test_node_tables_are_derived_when_absent(tmp_path, pseudonymiser):
    folder = tmp_path / "s"
    _write(folder, "interactions.csv", "user_id,item_id,kind\nu1,i1,view\nu2,i1,view\n")
    _write(folder, "follows.csv", "follower_id,followee_id\nu3,u1\n")
    ds = read_shop_export(f"parquet:{folder}", pseudonymiser)
    assert ds.report["users"] == {"read": 3, "loaded": 3, "quarantined": 0}
    assert ds.report["items"] == {"read": 1, "loaded": 1, "quarantined": 0}
    assert ds.tables["interactions"]["value"].tolist() == [1.0, 1.0]


def test_parquet_export_with_float_ids(tmp_path, pseudonymiser):
    folder = tmp_path / "p"
    folder.mkdir()
    pd.DataFrame({"user_id": [1.0, None], "item_id": [10, 11], "kind": ["purchase", "purchase"], "value": [2.0, 1.0]}).to_parquet(
        folder / "interactions.parquet"
    )
    pd.DataFrame({"item_id": [10, 11], "category": ["a", "b"]}).to_parquet(folder / "items.parquet")
    ds = read_dataset(f"parquet:{folder}", None, pseudonymiser, tmp_path / "cache")
    assert ds.tables["interactions"]["user_id"].tolist() == [pseudonymiser.user("1")]
    assert ds.quarantine["source"].tolist() == ["interactions.parquet:2"]
    assert ds.quarantine["reason"].tolist() == ["bad_id"]


def test_missing_required_column_names_file_line_and_field(tmp_path, pseudonymiser):
    folder = tmp_path / "s"
    _write(folder, "interactions.csv", "user_id,item_id,kind\nu1,i1,view\n")
    _write(folder, "follows.csv", "follower_id,followed\nu1,u2\n")
    with pytest.raises(EtlInputError) as err:
        read_shop_export(f"csv:{folder}", pseudonymiser)
    assert err.value.file.endswith("follows.csv") and err.value.line == 1 and err.value.field == "followee_id"
    assert "follows.csv:1" in str(err.value)


def test_malformed_csv_line_is_reported(tmp_path, pseudonymiser):
    folder = tmp_path / "s"
    _write(folder, "interactions.csv", "user_id,item_id,kind\nu1,i1,view\nu2,i2,view,extra,field\n")
    with pytest.raises(EtlInputError) as err:
        read_shop_export(f"csv:{folder}", pseudonymiser)
    assert err.value.line == 3 and err.value.file.endswith("interactions.csv")


def test_bad_json_line_is_reported(tmp_path, pseudonymiser):
    folder = tmp_path / "s"
    _write(folder, "interactions.jsonl", '{"user_id": "u1", "item_id": "i1", "kind": "view"}\n{"user_id": \n')
    with pytest.raises(EtlInputError) as err:
        read_shop_export(f"csv:{folder}", pseudonymiser)
    assert err.value.line == 2


@pytest.mark.parametrize(
    "name",
    ["nope", "csv:", "xml:/tmp"],
)
def test_bad_shop_names_raise(name, pseudonymiser):
    with pytest.raises(EtlInputError):
        read_shop_export(name, pseudonymiser)


def test_missing_interactions_file_raises(tmp_path, pseudonymiser):
    (tmp_path / "e").mkdir()
    with pytest.raises(EtlInputError):
        read_shop_export(f"csv:{tmp_path / 'e'}", pseudonymiser)


def test_parse_timestamps_accepts_seconds_and_iso():
    secs, bad = parse_timestamps(pd.Series(["1600000000", "2020-09-13T12:26:40Z", "", None, "soon", "99999999999"]))
    assert secs[0] == secs[1] == 1_600_000_000.0
    assert bad.tolist() == [False, False, False, False, True, True]
