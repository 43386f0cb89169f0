"""``GET /v1/admin/reports``: the HTML reports listed and served to the admin role, and rendered
by a real browser (headless Chromium: the test asserts on the rendered DOM)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import API_KEYS, api_keys_setting, auth


@pytest.fixture(scope="module")
def report_settings(tmp_path_factory, tiny_snapshot) -> Settings:
    from recsys.evaluation import evaluate
    from recsys.report import evaluation_report

    home = tmp_path_factory.mktemp("reports-home")
    result = evaluate(tiny_snapshot, "random-80-10-10", ["popular", "als"], tune_params=False)
    evaluation_report(result, home / "reports" / "evaluate-synthetic-random-80-10-10.html")
    (home / "reports" / "notes.txt").write_text("not a report")
    return Settings(home=home, neo4j_uri=None, pseudonym_key="reports-test-key", mode="test",
                    api_keys=api_keys_setting(), reload_poll_seconds=0)


@pytest.fixture(scope="module")
def app(report_settings):
    return create_app(report_settings)


def test_reports_are_for_the_admin_role_only(app):
    with TestClient(app) as c:
        assert c.get("/v1/admin/reports").status_code == 401
        r = c.get("/v1/admin/reports", headers=auth("storefront"))
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/v1/admin/reports", headers=auth("admin")).status_code == 200


def test_index_lists_html_reports_with_kind_and_link(app):
    with TestClient(app, headers=auth("admin")) as c:
        listing = c.get("/v1/admin/reports", headers={"Accept": "application/json"}).json()["reports"]
        assert [r["name"] for r in listing] == ["evaluate-synthetic-random-80-10-10.html"]
        assert listing[0]["kind"] == "evaluation" and listing[0]["url"].endswith(listing[0]["name"])
        page = c.get(listing[0]["url"])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for bad in ("notes.txt", "..%2F..%2Fetc%2Fpasswd.html", "absent.html"):
            assert c.get(f"/v1/admin/reports/{bad}").status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reports_render_in_chromium_with_tables_and_charts(app, chromium):
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import screenshot

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    driver = chromium
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {API_KEYS['admin']}"}})
    try:
        driver.get(f"http://127.0.0.1:{port}/v1/admin/reports")
        links = driver.find_elements(By.CSS_SELECTOR, "#reports tbody a")
        assert [a.text for a in links] and driver.title == "socialrec reports"
        links[0].click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.TAG_NAME, "table"))
        cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "table td")]
        assert "popular" in cells and "als" in cells  # the metric table, rendered
        charts = [img for img in driver.find_elements(By.TAG_NAME, "img")
                  if driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)]
        assert charts, "no rendered chart"
        assert "{" not in driver.find_element(By.TAG_NAME, "body").text[:200]  # a page, not a JSON dump
        screenshot(driver, "admin-report-evaluation")
    finally:
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        server.should_exit = True
        thread.join(10)
