"""Shared fixtures for the ETL tests: where the real datasets live, a pseudonymiser, a cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl.pseudonymise import Pseudonymiser

#: Key used by every ETL test (never a production key).
TEST_KEY = b"socialrec-etl-test-key"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``SOCIALREC_DATA_DIR`` or ``<repo>/../shared/data``; skips the test when absent."""
    env = os.environ.get("SOCIALREC_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"dataset directory {path} not available")
    return path


@pytest.fixture(scope="session")
def pseudonym_key() -> bytes:
    return TEST_KEY


@pytest.fixture(scope="session")
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(TEST_KEY)


@pytest.fixture(scope="session")
def loaded(data_dir, pseudonymiser, tmp_path_factory):
    """``loaded(name)`` -> LoadedDataset, read once per session per dataset."""
    from etl.datasets import read_dataset

    cache = tmp_path_factory.mktemp("cache")
    memo: dict = {}

    def get(name: str):
        if name not in memo:
            memo[name] = read_dataset(name, data_dir, pseudonymiser, cache)
        return memo[name]

    return get
