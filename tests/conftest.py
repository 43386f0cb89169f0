"""Fixtures shared by every test package: the real datasets and small snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.snapshot import Snapshot, build_snapshot

REPO = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    """``SOCIALREC_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("SOCIALREC_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets (skips when the folder is absent)."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"dataset directory {path} not available")
    return path


def synthetic_snapshot(n_users: int = 30, n_items: int = 40, density: float = 0.15, seed: int = 0) -> Snapshot:
    """A tiny random snapshot with play counts, timestamps, follows and 4 categories.

    User ``u29`` (the last) has no interactions (but follows two users), to pin cold behaviour.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users - 1):
        items = rng.choice(n_items, size=max(2, int(density * n_items)), replace=False)
        for i in items:
            rows.append((f"u{u:02d}", f"i{i:02d}", "play", float(rng.integers(1, 50)), float(1.6e9 + rng.integers(0, 1e7))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "kind", "value", "ts"])
    follows = pd.DataFrame(
        [(f"u{a:02d}", f"u{b:02d}") for a in range(n_users) for b in rng.choice(n_users, 3, replace=False) if a != b],
        columns=["follower_id", "followee_id"],
    )
    users = pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(n_users)]})
    items = pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)], "category": [f"cat{i % 4}" for i in range(n_items)]})
    return build_snapshot("synthetic", users, items, inter, follows)


@pytest.fixture(scope="session")
def tiny_snapshot() -> Snapshot:
    """:func:`synthetic_snapshot` with default sizes."""
    return synthetic_snapshot()


@pytest.fixture(scope="session")
def lastfm_snapshot(shared_data_dir, tmp_path_factory) -> Snapshot:
    """lastfm-hetrec2011 through the real ETL into an embedded store, read back as a snapshot."""
    from etl.pipeline import run_etl
    from graph.store import EmbeddedStore

    home = tmp_path_factory.mktemp("lastfm-home")
    store = EmbeddedStore(home / "store", "lastfm-hetrec2011")
    run_etl("lastfm-hetrec2011", store, shared_data_dir, home / "cache", b"test-key", home / "quarantine", progress=False)
    return store.snapshot()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium (Selenium WebDriver) shared by every browser test of the run.

    Skips on a machine without Chromium, but fails in CI (``SOCIALREC_CI=1``, set by ``.ci/run``,
    which installs Chromium), so the browser tests always run there.
    """
    from tests.browser import BrowserUnavailable, chromium as start

    try:
        driver = start()
    except BrowserUnavailable as exc:
        if os.environ.get("SOCIALREC_CI"):
            pytest.fail(f"CI must run the browser tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield driver
    finally:
        driver.quit()
