"""The cdnow dataset module: the transaction reader, the registry SPEC and the checksums."""

from __future__ import annotations

import hashlib

import pytest

from etl.datasets.cdnow import FILES, SHA256, SPEC, read, read_cdnow_transactions


def test_sample_reader_returns_every_purchase_line(cdnow_dir):
    tx = read_cdnow_transactions(cdnow_dir)
    assert len(tx) == 6919 and tx["customer_id"].nunique() == 2357
    assert tx["dollars"].sum() == pytest.approx(244091.94)
    assert tx["date"].min().date().isoformat() == "1997-01-01" and tx["date"].max().date().isoformat() == "1998-06-30"


def test_reader_applies_a_pseudonymiser(cdnow_dir):
    from etl.pseudonymise import Pseudonymiser

    p = Pseudonymiser(b"test-key")
    tx = read_cdnow_transactions(cdnow_dir, pseudonymise=p.users)
    assert tx["customer_id"].str.startswith("u_").all() and tx["customer_id"].nunique() == 2357
    assert tx["customer_id"].iat[0] == p.user("0001")


def test_spec_reads_one_purchase_per_customer_day(cdnow_dir):
    tables = read(cdnow_dir)
    inter = tables["interactions"].frame
    assert len(inter) == 6696  # SOURCE.md: 6,919 lines collapse to 6,696 customer-days
    assert (inter["kind"] == "purchase").all() and inter["user_id"].nunique() == 2357
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert tables["items"].derived and SPEC.name == "cdnow"


def test_declared_checksums_match_the_shared_files(cdnow_dir):
    for name, digest in SHA256.items():
        assert hashlib.sha256((cdnow_dir / name).read_bytes()).hexdigest() == digest, name
    assert {f.name for f in FILES} == set(SHA256) and all(f.member.startswith("lifetimes/datasets/") for f in FILES)
