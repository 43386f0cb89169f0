"""Fixtures for the store tests: the REAL Neo4j server and small real datasets.

Neo4j: tests use the server named by ``SOCIALREC_NEO4J_URI`` (+ ``SOCIALREC_NEO4J_USER`` /
``SOCIALREC_NEO4J_PASSWORD``); ``.ci/run`` starts one with ``python -m graph.neo4j_server start``.
Without the variable the Neo4j tests are skipped, never mocked. Every test works in its own dataset
namespace (``test-<uuid>``) and clears it afterwards, so tests may share one database.

Data: FilmTrust (ratings + trust) and a small, dense slice of Ciao (ratings with timestamps,
reviews with helpfulness, categories, trust) read through the ETL (``etl.datasets.read_dataset``)
from ``SOCIALREC_DATA_DIR`` or ``../shared/data``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl.datasets import read_dataset
from etl.pseudonymise import Pseudonymiser

TEST_PSEUDONYM_KEY = b"socialrec-graph-tests"


def neo4j_settings() -> tuple[str, str, str] | None:
    """``(uri, user, password)`` from the environment, or None when no server is configured."""
    uri = os.environ.get("SOCIALREC_NEO4J_URI")
    if not uri:
        return None
    return uri, os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"), os.environ.get("SOCIALREC_NEO4J_PASSWORD", "")


@pytest.fixture(scope="session")
def neo4j_conn() -> tuple[str, str, str]:
    """The real server's connection settings; skips when SOCIALREC_NEO4J_URI is unset."""
    settings = neo4j_settings()
    if settings is None:
        pytest.skip(
            "SOCIALREC_NEO4J_URI is not set: these tests need the real Neo4j server "
            "(SOCIALREC_NEO4J_PASSWORD=... python -m graph.neo4j_server start; then export "
            "SOCIALREC_NEO4J_URI=bolt://127.0.0.1:7687 SOCIALREC_NEO4J_PASSWORD=...); .ci/run does this"
        )
    return settings


def new_dataset_name(prefix: str = "test") -> str:
    """A fresh namespace; deliberately full of characters that would break pasted Cypher."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}-'\"}}"


@pytest.fixture
def neo4j_store(neo4j_conn):
    """A :class:`Neo4jStore` on a fresh dataset namespace, cleared and closed afterwards."""
    from graph.neo4j_store import Neo4jStore

    store = Neo4jStore(*neo4j_conn, dataset=new_dataset_name())
    try:
        yield store
    finally:
        store.clear()
        store.close()


@pytest.fixture
def open_neo4j_store(neo4j_conn):
    """Factory ``open(dataset) -> Neo4jStore``; every store opened is cleared and closed afterwards."""
    from graph.neo4j_store import Neo4jStore

    opened = []

    def _open(dataset: str, **kwargs):
        store = Neo4jStore(*neo4j_conn, dataset=dataset, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.clear()
        store.close()


@pytest.fixture(scope="session")
def filmtrust_tables(shared_data_dir, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """FilmTrust through the ETL: canonical tables (users, items, interactions, follows, reviews)."""
    loaded = read_dataset(
        "filmtrust", shared_data_dir, Pseudonymiser(TEST_PSEUDONYM_KEY), tmp_path_factory.mktemp("etl-cache")
    )
    return loaded.tables


@pytest.fixture(scope="session")
def ciao_slice(shared_data_dir, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """A dense slice of Ciao: the 150 users with most trust links among themselves, their
    ratings (with timestamps), reviews (with helpfulness), the rated items and their categories,
    and the trust links among them. A few thousand rows: small, but every analyst query has
    something to find (mutual follows, follow-ups after a review, several categories).
    """
    loaded = read_dataset("ciao", shared_data_dir, Pseudonymiser(TEST_PSEUDONYM_KEY), tmp_path_factory.mktemp("etl-cache"))
    t = loaded.tables
    follows = t["follows"]
    degree = pd.concat([follows["follower_id"], follows["followee_id"]]).value_counts()
    core = set(degree.index[:400])
    inner = follows[follows["follower_id"].isin(core) & follows["followee_id"].isin(core)]
    deg2 = pd.concat([inner["follower_id"], inner["followee_id"]]).value_counts()
    users = set(sorted(deg2.index[:150]))
    follows = inner[inner["follower_id"].isin(users) & inner["followee_id"].isin(users)]
    inter = t["interactions"][t["interactions"]["user_id"].isin(users)]
    # keep the items that at least two of these users rated, so co-rating queries find pairs
    counts = inter["item_id"].value_counts()
    keep_items = set(counts.index[counts >= 2])
    inter = inter[inter["item_id"].isin(keep_items)]
    reviews = t["reviews"][t["reviews"]["user_id"].isin(users) & t["reviews"]["item_id"].isin(keep_items)]
    items = t["items"][t["items"]["item_id"].isin(keep_items)]
    out = {
        "users": t["users"][t["users"]["user_id"].isin(users)],
        "items": items,
        "interactions": inter,
        "reviews": reviews,
        "follows": follows,
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame normalised for value comparison across stores: object columns, NaN for missing."""
    out = frame.reset_index(drop=True).astype(object)
    return out.where(out.notna(), np.nan)


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, same rows in the same order, same values (None and NaN both mean missing)."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    pd.testing.assert_frame_equal(comparable(a), comparable(b), check_dtype=False)


__all__ = ["assert_same_table", "comparable", "new_dataset_name", "neo4j_settings", "TEST_PSEUDONYM_KEY", "Path"]
