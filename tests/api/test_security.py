"""API keys and roles, limits, problem+json errors, /metrics, and logs without raw ids or keys."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from api.security import ApiKeyConfigError, KeyRing, auth_enabled, hash_key, load_keyring, new_key, parse_key_entries
from api.settings import Settings
from tests.api.conftest import API_KEYS, auth

RECS = "/v1/users/{}/recommendations"


@pytest.fixture(scope="module")
def raw(api_settings) -> TestClient:
    """A client that sends no key unless told (same app state as the session client)."""
    from api.app import create_app

    with TestClient(create_app(api_settings)) as c:
        yield c


def _is_problem(r, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status


def test_no_key_is_401_wrong_key_is_401(raw):
    r = raw.get(RECS.format("42"))
    _is_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    _is_problem(raw.get(RECS.format("42"), headers={"Authorization": "Bearer sr_not-a-real-key"}), 401)
    _is_problem(raw.get(RECS.format("42"), headers={"Authorization": "Basic abc"}), 401)


def test_roles(raw):
    assert raw.get(RECS.format("42"), headers=auth("storefront")).status_code == 200
    assert raw.get(RECS.format("42"), headers=auth("admin")).status_code == 200  # admin may do everything
    _is_problem(raw.get(RECS.format("42"), headers=auth("events")), 403)
    _is_problem(raw.get("/v1/items/1/similar", headers=auth("events")), 403)
    body = {"events": [{"user_id": "42", "item_id": "1", "kind": "view"}]}
    _is_problem(raw.post("/v1/events", json=body, headers={**auth("storefront"), "Idempotency-Key": "role-check-1"}), 403)
    _is_problem(raw.post("/v1/admin/reload", headers=auth("storefront")), 403)
    _is_problem(raw.get("/v1/admin/retrain", headers=auth("events")), 403)
    assert raw.get("/v1/admin/retrain", headers=auth("admin")).status_code == 200
    for open_path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert raw.get(open_path).status_code == 200, open_path


def test_keys_are_configured_hashed_and_validated(tmp_path):
    key, line = new_key("events")
    role, digest = line.split(":")
    assert role == "events" and digest == hash_key(key) and key not in line and len(key) >= 40
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# storefront keys\n{line}\n\n")
    ring = load_keyring(Settings(api_keys_file=keys_file, mode="test"))
    assert ring.required and ring.role_of(key) == "events" and ring.role_of(key + "x") is None
    with pytest.raises(ApiKeyConfigError):
        parse_key_entries(["wizard:" + "0" * 64], "x")
    with pytest.raises(ApiKeyConfigError) as err:
        parse_key_entries([f"storefront:{key}"], "x")  # a raw key instead of its hash
    assert key not in str(err.value)
    assert KeyRing((("admin", digest),), True).allows("admin", "storefront")


def test_auth_rule():
    assert auth_enabled(None, "production", has_keys=False)  # production: always on
    assert not auth_enabled(None, "test", has_keys=False)
    assert auth_enabled(None, "test", has_keys=True)
    assert not auth_enabled(False, "production", has_keys=True)  # explicit setting wins


def test_apikey_create_command_prints_key_and_hash(capsys):
    from api.cli import main

    assert main(["apikey", "create", "--role", "storefront", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hash_line"] == f"storefront:{hash_key(out['key'])}"


def test_limits_and_strict_validation(client):
    ev = {**auth("events")}
    _is_problem(client.get(RECS.format("42"), params={"k": 101}), 422)
    _is_problem(client.get(RECS.format("42"), params={"max_per_category": 0}), 422)
    _is_problem(client.get(RECS.format("42"), params={"exclude_items": ["bad\x01id"]}), 422)  # ids follow the ETL rule: no control chars
    _is_problem(client.get(RECS.format("42"), params={"exclude_items": [str(i) for i in range(101)]}), 422)
    big = {"events": [{"user_id": "1", "item_id": "x" * 100, "kind": "view"}] * 12000}
    _is_problem(client.post("/v1/events", json=big, headers={**ev, "Idempotency-Key": "too-big-0001"}), 413)
    many = {"events": [{"user_id": "1", "item_id": str(i), "kind": "view"} for i in range(1001)]}
    _is_problem(client.post("/v1/events", json=many, headers={**ev, "Idempotency-Key": "too-many-001"}), 422)
    unknown_field = {"events": [{"user_id": "1", "item_id": "2", "kind": "view", "price": 3}]}
    _is_problem(client.post("/v1/events", json=unknown_field, headers={**ev, "Idempotency-Key": "unknown-fld1"}), 422)
    bad_kind = {"events": [{"user_id": "1", "item_id": "2", "kind": "steal"}]}
    _is_problem(client.post("/v1/events", json=bad_kind, headers={**ev, "Idempotency-Key": "bad-kind-001"}), 422)
    follow_without_followee = {"events": [{"user_id": "1", "kind": "follow"}]}
    _is_problem(client.post("/v1/events", json=follow_without_followee, headers={**ev, "Idempotency-Key": "bad-follow-1"}), 422)
    empty = client.post("/v1/events", json={"events": []}, headers={**ev, "Idempotency-Key": "empty-batch1"})
    assert empty.status_code == 202 and empty.json()["accepted"] == 0  # issue 14 item 15: not a 422
    _is_problem(client.post("/v1/events", content=b"{not json", headers={**ev, "Idempotency-Key": "not-json-001",
                                                                         "content-type": "application/json"}), 422)


def test_metrics_count_requests_by_route_and_show_model_version(client):
    client.get(RECS.format("12345"), params={"k": 3})
    text = client.get("/metrics").text
    assert 'socialrec_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in text
    assert "socialrec_http_request_duration_seconds_bucket" in text
    ready = client.get("/ready").json()
    version, model = ready["model_version"].split("/")
    assert f'socialrec_model_info{{dataset="filmtrust",model="{model}",version="{version}"}} 1.0' in text
    assert "12345" not in text


def test_logs_hold_no_raw_user_ids_or_keys(client, caplog):
    raw_user = "rawuser-7731"
    with caplog.at_level(logging.DEBUG):
        client.get(RECS.format(raw_user), params={"k": 3})
        client.get(RECS.format(raw_user), headers={"Authorization": "Bearer sr_wrong-key-123456"})
        client.post("/v1/events", json={"events": [{"user_id": raw_user, "item_id": "1", "kind": "view"}]},
                    headers={**auth("events"), "Idempotency-Key": "log-check-0001"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/users/{user_id}/recommendations" in text  # the access log uses route templates
    assert raw_user not in text
    for secret in [*API_KEYS.values(), "sr_wrong-key-123456"]:
        assert secret not in text
