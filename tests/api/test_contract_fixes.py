"""Contract fixes from the field reports (issue 14 items 15, 21)."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import auth


def _post(client, events):
    return client.post("/v1/events", json={"events": events},
                       headers={**auth("events"), "Idempotency-Key": f"k-{uuid.uuid4().hex}"})


def test_an_empty_event_list_is_accepted_with_zero_events(client):
    r = _post(client, [])
    assert r.status_code == 202 and r.json() == {"accepted": 0, "duplicate": False, "status": "queued"}


def test_the_openapi_batch_limit_is_the_one_the_server_enforces(client, api_settings):
    limit = api_settings.max_batch_events
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["EventBatch"]["properties"]["events"]["maxItems"] == limit
    over = [{"user_id": "lim-user", "item_id": "1", "kind": "view", "ts": 1.7e9}] * (limit + 1)
    r = _post(client, over)
    assert r.status_code == 422 and f"at most {limit}" in r.json()["detail"]


@pytest.mark.parametrize("key", ["short", "x" * 40, "0123456789abcdef0123456789abcde"])
def test_a_weak_pseudonym_key_is_refused_in_production(key):
    from api.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match="too weak"):
        Settings(mode="production", pseudonym_key=key).resolved_pseudonym_key()


def test_a_32_byte_random_key_is_accepted_in_production():
    import secrets

    from api.settings import Settings

    key = secrets.token_urlsafe(32)
    assert Settings(mode="production", pseudonym_key=key).resolved_pseudonym_key() == key.encode()


def test_demo_mode_without_keys_refuses_a_public_bind_and_says_which_routes_503(tmp_path):
    """Issue 14 items 18 and 20: loud warning, loopback only, and the 503 routes named at start."""
    from api.cli import BadInput, _serve_preflight
    from api.settings import Settings

    settings = Settings(home=tmp_path, mode="demo", neo4j_uri=None, api_keys=None, api_keys_file=None, dataset=None)
    with pytest.raises(BadInput, match="loopback"):
        _serve_preflight(settings, "0.0.0.0")
    notes = _serve_preflight(settings, "127.0.0.1")
    assert any("NO AUTHENTICATION" in n for n in notes) and any("503" in n for n in notes)
    assert _serve_preflight(settings, "0.0.0.0", allow_public=True)


def test_serve_names_the_value_routes_that_will_503(api_settings):
    from api.cli import _serve_preflight

    notes = _serve_preflight(api_settings, "127.0.0.1")  # filmtrust trained, no customer value computed
    assert any("/v1/segments" in n and "socialrec value" in n for n in notes)
    assert not any("NO AUTHENTICATION" in n for n in notes)  # keys are configured


def test_openapi_and_docs_are_labelled_as_themselves_in_metrics(tmp_path):
    """Issue 14 item 17: /openapi.json and /docs are not '<unmatched>' in /metrics."""
    from fastapi.testclient import TestClient

    from api.app import AppState, create_app
    from api.settings import Settings

    app = create_app(Settings(home=tmp_path, neo4j_uri=None, mode="test", reload_poll_seconds=0), state=AppState())
    with TestClient(app) as c:
        c.get("/openapi.json")
        c.get("/docs")
        c.get("/no-such-route")
        text = c.get("/metrics").text
    assert 'route="/openapi.json",status="200"' in text and 'route="/docs",status="200"' in text
    assert 'route="<unmatched>",status="404"' in text


def test_retrain_json_prints_an_error_object_when_the_lock_is_held(tmp_path, monkeypatch, capsys):
    """Issue 14 item 17: `retrain --json` keeps its one-object promise when it cannot run."""
    import json

    from api.cli import main
    from recsys.retrain import retrain_lock

    for key in ("SOCIALREC_NEO4J_URI", "SOCIALREC_DATASET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    with retrain_lock(tmp_path):
        code = main(["retrain", "--dataset", "filmtrust", "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and out["state"] == "locked" and out["promoted"] is False and "another retrain" in out["error"]
