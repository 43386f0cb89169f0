"""A trained filmtrust model version in a temporary SOCIALREC_HOME, and an app serving it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

TEST_KEY = "api-test-pseudonym-key-0123456789abcdef"  # >= 32 bytes: production mode accepts it
# One API key per role (tests only); the settings hold their SHA-256 hashes, as in production.
API_KEYS = {
    "storefront": "sr_test-storefront-key-0123456789abcdefghijklmnopq",
    "events": "sr_test-events-key-0123456789abcdefghijklmnopqrstuv",
    "admin": "sr_test-admin-key-0123456789abcdefghijklmnopqrstuvw",
}


def api_keys_setting() -> str:
    """``SOCIALREC_API_KEYS`` for :data:`API_KEYS`: ``role:sha256hex,...``."""
    from api.security import hash_key

    return ",".join(f"{role}:{hash_key(key)}" for role, key in API_KEYS.items())


def auth(role: str) -> dict:
    """The Authorization header of the test key of ``role``."""
    return {"Authorization": f"Bearer {API_KEYS[role]}"}


@pytest.fixture(scope="session")
def api_settings(shared_data_dir, tmp_path_factory) -> Settings:
    """Settings of a home holding a promoted filmtrust version (embedded store, test mode)."""
    from api.cli import _train

    home = tmp_path_factory.mktemp("api-home")
    settings = Settings(home=home, data_dir=shared_data_dir, neo4j_uri=None, pseudonym_key=TEST_KEY, mode="test", dataset="filmtrust",
                        api_keys=api_keys_setting(), reload_poll_seconds=0)
    _train(settings, "filmtrust", ["popular", "als", "itemcf"], "embedded", tune_params=False, promote_it=True, progress=False)
    return settings


@pytest.fixture(scope="session")
def client(api_settings) -> TestClient:
    """A client sending the storefront key (auth is on: keys are configured)."""
    with TestClient(create_app(api_settings), headers=auth("storefront")) as c:
        yield c
