"""A newly promoted version is served without a restart, and no in-flight request fails."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from api.app import create_app
from recsys.versions import current_version, load_version, promote, save_version
from tests.api.conftest import auth


@pytest.fixture()
def live_server(api_settings, tmp_path):
    """The API on a copy of the session home, served by uvicorn on a loopback port, with a
    fast watcher (0.2 s)."""
    home = tmp_path / "home"
    shutil.copytree(api_settings.home, home, ignore=shutil.ignore_patterns("queue"))
    settings = api_settings.model_copy(update={"home": home, "reload_poll_seconds": 0.2})
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield settings, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def _new_version(settings) -> str:
    """Save the promoted version's models again as a new version (a stand-in for a retrain)."""
    loaded = load_version(settings.home, "filmtrust")
    path = save_version(settings.home, loaded.snapshot, loaded.models, {"serving_model": loaded.serving_model})
    return path.name


def test_promotion_is_picked_up_without_failing_in_flight_requests(live_server):
    settings, base = live_server
    old = current_version(settings.home, "filmtrust")
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer(user: str) -> None:
        with httpx.Client(base_url=base, headers=auth("storefront"), timeout=30) as c:
            while not stop.is_set():
                r = c.get(f"/v1/users/{user}/recommendations", params={"k": 10})
                results.append((r.status_code, r.json().get("model_version", "") if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=hammer, args=(u,)) for u in ("1", "2", "no-such-user")]
    for t in threads:
        t.start()
    time.sleep(0.5)
    new = _new_version(settings)
    promote(settings.home, "filmtrust", new)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(v.startswith(new) for _, v in results[-20:]):
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    assert results and all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:3]
    versions = {v.split("/")[0] for _, v in results}
    assert versions == {old, new}
    # after the swap only the new version answers
    assert httpx.get(f"{base}/ready").json()["model_version"].startswith(new)
    assert f'version="{new}"' in httpx.get(f"{base}/metrics").text


def test_admin_reload_swaps_on_demand(live_server):
    settings, base = live_server
    new = _new_version(settings)
    promote(settings.home, "filmtrust", new)
    r = httpx.post(f"{base}/v1/admin/reload", headers=auth("admin"), timeout=30)
    assert r.status_code == 200
    body = r.json()
    # the watcher may have swapped first; either way the new version serves
    assert body["model_version"].startswith(new)
    assert httpx.post(f"{base}/v1/admin/reload", headers=auth("admin"), timeout=30).json()["swapped"] is False
