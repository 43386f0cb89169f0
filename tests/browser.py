"""A real browser for the tests: headless Chromium driven by Selenium (one session per test run).

Chromium and its driver come from the system (Debian: ``apt-get install chromium chromium-driver``;
``.ci/run`` installs them when missing). :func:`chromium` returns a ready WebDriver or raises
:class:`BrowserUnavailable` saying what is missing; the ``chromium`` fixture of
``tests/conftest.py`` turns that into a skip on a developer machine and into a failure in CI
(``SOCIALREC_CI=1``), so the browser tests cannot silently stop running there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("SOCIALREC_TEST_SCREENSHOTS", REPO / "tests" / "screenshots"))


class BrowserUnavailable(RuntimeError):
    """No Chromium, no chromedriver or no selenium on this machine."""


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium WebDriver (window ``width`` x ``height`` px).

    Raises:
        BrowserUnavailable: selenium, chromium or chromedriver missing.
    """
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise BrowserUnavailable(f"selenium is not installed ({exc})") from exc
    binary = os.environ.get("SOCIALREC_CHROMIUM") or _find("chromium", "chromium-browser", "google-chrome")
    driver = os.environ.get("SOCIALREC_CHROMEDRIVER") or _find("chromedriver")
    if not binary or not driver:
        raise BrowserUnavailable("chromium / chromedriver not found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    opts.binary_location = binary
    return webdriver.Chrome(service=Service(driver), options=opts)


def screenshot(driver, name: str) -> Path:
    """Save a PNG of the current page as ``tests/screenshots/<name>.png`` (kept after the run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
