"""A trained filmtrust model version in a temporary SOCIALREC_HOME, and an app serving it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

TEST_KEY = "api-test-pseudonym-key"


@pytest.fixture(scope="session")
def api_settings(shared_data_dir, tmp_path_factory) -> Settings:
    """Settings of a home holding a promoted filmtrust version (embedded store, test mode)."""
    from api.cli import _train

    home = tmp_path_factory.mktemp("api-home")
    settings = Settings(home=home, data_dir=shared_data_dir, neo4j_uri=None, pseudonym_key=TEST_KEY, mode="test", dataset="filmtrust")
    _train(settings, "filmtrust", ["popular", "als", "itemcf"], "embedded", tune_params=False, promote_it=True, progress=False)
    return settings


@pytest.fixture(scope="session")
def client(api_settings) -> TestClient:
    with TestClient(create_app(api_settings)) as c:
        yield c
