"""The hillstrom dataset and the canonical campaign-table reader: checksum, download, counts, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from etl.campaign import load_campaign_table
from etl.datasets import DATASETS
from etl.datasets.hillstrom import FILE, SHA256
from etl.download import ensure_dataset
from etl.errors import DownloadError, EtlInputError
from etl.pseudonymise import Pseudonymiser


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "customer_id,arm,visit,spend,age,channel\nc1,control,0,0,30,web\nc2,treated,1,12.5,41,phone\nc3,treated,0,0,25,web\nc4,control,1,3,52,web\n"


def test_hillstrom_is_registered_with_the_checksum_of_the_shared_copy(data_dir):
    spec = DATASETS["hillstrom"]
    assert [f.name for f in spec.files] == [FILE]
    assert hashlib.sha256((data_dir / "hillstrom" / FILE).read_bytes()).hexdigest() == SHA256 == spec.files[0].sha256
    assert "/bd475633095c8a007be32c47ea695abe318197b6/" in spec.files[0].url


def test_hillstrom_download_is_verified_and_a_corrupt_copy_is_refused(tmp_path, data_dir):
    src = data_dir / "hillstrom" / FILE
    folder = ensure_dataset("hillstrom", None, tmp_path / "cache", opener=lambda url: open(src, "rb"))
    assert (folder / FILE).read_bytes() == src.read_bytes()
    bad = _write(tmp_path / "bad.csv", "recency\n1\n")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        ensure_dataset("hillstrom", None, tmp_path / "cache2", opener=lambda url: open(bad, "rb"))
    assert not (tmp_path / "cache2" / "datasets" / "hillstrom" / FILE).exists()


def test_hillstrom_table_has_the_published_arm_sizes_and_effects(data_dir):
    frame, spec = load_campaign_table("hillstrom", data_dir=data_dir)
    assert spec.control == "No E-Mail" and set(spec.treatments) == {"Mens E-Mail", "Womens E-Mail"}
    assert spec.arm_sizes == {"No E-Mail": 21306, "Womens E-Mail": 21387, "Mens E-Mail": 21307}
    assert spec.outcomes == ("visit", "conversion", "spend")
    assert set(spec.covariates) == {"recency", "history", "mens", "womens", "newbie", "history_segment", "zip_code", "channel"}
    means = frame.groupby("arm")[["visit", "conversion", "spend"]].mean()
    assert means.loc["Mens E-Mail", "visit"] - means.loc["No E-Mail", "visit"] == pytest.approx(0.0766, abs=5e-5)
    assert means.loc["Mens E-Mail", "spend"] - means.loc["No E-Mail", "spend"] == pytest.approx(0.770, abs=5e-4)
    assert frame["customer_id"].is_unique and frame["customer_id"].iloc[0] == "h000001"
    assert frame["_line"].iloc[0] == 2 and frame["_line"].iloc[-1] == 64001


def test_etl_spec_reads_customers_with_covariates_and_the_same_ids(data_dir):
    tables = DATASETS["hillstrom"].read(data_dir / "hillstrom")
    users = tables["users"].frame
    assert len(users) == 64000 and users["user_id"].iloc[-1] == "h064000"
    assert "segment" not in users and "visit" not in users
    assert users["history"].dtype == np.float64


def test_export_csv_reads_types_and_detects_the_control(tmp_path):
    frame, spec = load_campaign_table(f"csv:{_write(tmp_path / 'campaign.csv', GOOD).parent}")
    assert spec.control == "control" and spec.treatments == ("treated",)
    assert spec.numeric_covariates == ("age",) and spec.categorical_covariates == ("channel",)
    assert frame["visit"].dtype == np.int64 and frame["spend"].dtype == np.float64


def test_pseudonymiser_replaces_raw_ids(tmp_path):
    path = _write(tmp_path / "c.csv", GOOD)
    frame, _ = load_campaign_table(f"csv:{path}", pseudonymiser=Pseudonymiser(b"k"))
    assert all(c.startswith("u_") for c in frame["customer_id"])


def test_treatment_column_is_accepted_when_binary(tmp_path):
    path = _write(tmp_path / "c.csv", "customer_id,treatment,visit,x\na,0,0,1\nb,1,1,2\n")
    _, spec = load_campaign_table(f"csv:{path}")
    assert spec.arms == ("control", "treatment")


@pytest.mark.parametrize(
    "text, where, field, words",
    [
        ("customer_id,arm,visit,x\na,control,0,1\nb,treated,1,2\na,treated,0,3\n", "c.csv:4", "customer_id", "two arms"),
        ("customer_id,treatment,visit,x\na,0,0,1\nb,2,1,2\n", "c.csv:3", "treatment", "non-binary treatment"),
        ("customer_id,arm,visit,x\na,control,0,1\nb,treated,2,2\n", "c.csv:3", "visit", "0 or 1"),
        ("customer_id,arm,visit,x\na,control,0,1\nb,treated,,2\n", "c.csv:3", "visit", "missing"),
        ("customer_id,arm,x\na,control,1\nb,treated,2\n", "c.csv:1", "visit", "no outcome column"),
        ("customer_id,visit,x\na,0,1\n", "c.csv:1", "arm", "missing column"),
        ("customer_id,arm,spend,x\na,control,-1,1\nb,t,0,1\n", "c.csv:2", "spend", ">= 0"),
        ("customer_id,arm,visit,x\na,control,0,1\nb,,0,1\n", "c.csv:3", "arm", "empty arm"),
    ],
)
def test_bad_campaign_tables_name_file_line_and_field(tmp_path, text, where, field, words):
    path = _write(tmp_path / "c.csv", text)
    with pytest.raises(EtlInputError) as err:
        load_campaign_table(f"csv:{path}")
    message = str(err.value)
    assert message.startswith(where) and f"'{field}'" in message and words in message


def test_unknown_arm_and_missing_outcome_are_input_errors(tmp_path):
    _, spec = load_campaign_table(f"csv:{_write(tmp_path / 'c.csv', GOOD)}")
    with pytest.raises(EtlInputError, match="unknown arm 'Kids'; the arms are: control, treated"):
        spec.require_arm("Kids")
    with pytest.raises(EtlInputError, match=r"c.csv:1: field 'conversion': missing outcome column"):
        spec.require_outcome("conversion")


def test_missing_export_is_an_input_error(tmp_path):
    with pytest.raises(EtlInputError, match="file not found"):
        load_campaign_table(f"csv:{tmp_path / 'nope.csv'}")
    with pytest.raises(EtlInputError, match="no campaign file"):
        load_campaign_table(f"csv:{tmp_path}")
