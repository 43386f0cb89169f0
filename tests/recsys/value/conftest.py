"""Fixtures for the customer-value tests: the CDNOW folder, a ciao snapshot and its value result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.snapshot import Snapshot, build_snapshot


def build_ciao_snapshot(folder) -> Snapshot:
    """ciao ``ratings.csv.gz`` + ``trust.csv.gz`` -> Snapshot, with a few lines of pandas.

    A stand-in for the ciao ETL (which pseudonymises ids; here raw ids are kept): interactions =
    ratings (value = rating, ts = seconds; the latest of a duplicated pair wins), follows = trust
    edges, item category = ``category_id``.
    """
    ratings = pd.read_csv(folder / "ratings.csv.gz")
    trust = pd.read_csv(folder / "trust.csv.gz")
    ratings = ratings.sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "item_id"], keep="last")
    users = pd.DataFrame({"user_id": pd.unique(np.concatenate(
        [ratings["user_id"], trust["truster_id"], trust["trustee_id"]])).astype(str)})
    first = ratings.drop_duplicates("item_id", keep="last")
    items = pd.DataFrame({"item_id": first["item_id"].astype(str), "category": first["category_id"].astype(str)})
    interactions = pd.DataFrame({
        "user_id": ratings["user_id"].astype(str), "item_id": ratings["item_id"].astype(str), "kind": "rating",
        "value": ratings["rating"].astype(float), "ts": ratings["timestamp"].astype(float),
    })
    follows = pd.DataFrame({"follower_id": trust["truster_id"].astype(str),
                            "followee_id": trust["trustee_id"].astype(str)})
    return build_snapshot("ciao", users, items, interactions, follows)


@pytest.fixture(scope="session")
def cdnow_dir(shared_data_dir):
    path = shared_data_dir / "cdnow"
    if not (path / "CDNOW_sample.txt").exists():
        pytest.skip("cdnow data not available")
    return path


@pytest.fixture(scope="session")
def cdnow_report_dict(cdnow_dir):
    from recsys.value.clv import cdnow_report

    return cdnow_report(cdnow_dir)


@pytest.fixture(scope="session")
def ciao_snapshot(shared_data_dir) -> Snapshot:
    path = shared_data_dir / "ciao"
    if not (path / "ratings.csv.gz").exists():
        pytest.skip("ciao data not available")
    return build_ciao_snapshot(path)


@pytest.fixture(scope="session")
def ciao_value(ciao_snapshot):
    """The full customer-value pipeline on ciao (about 20 s; computed once per session)."""
    from recsys.value.pipeline import compute_customer_value

    return compute_customer_value(ciao_snapshot, importance_repeats=3)
