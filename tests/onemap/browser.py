"""Headless Chromium (Debian ``chromium`` + ``chromium-driver``) driven by Selenium, for the one-map tests.

Never downloads a browser or a driver: the Debian binaries are used, or the
tests are skipped saying why. The flags keep Chromium off the network (on a
closed network its background connections are refused) and out of any
existing profile.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "onemap"


def _first(paths: tuple[str, ...], name: str) -> str | None:
    return next((p for p in paths if Path(p).exists()), None) or shutil.which(name)


def chrome():  # type: ignore[no-untyped-def]
    """A headless Chromium WebDriver, or a skip naming what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    binary, driver = _first(CHROMIUM, "chromium"), _first(DRIVER, "chromedriver")
    if not binary or not driver:
        pytest.skip("no headless Chromium here: install the Debian packages chromium and chromium-driver "
                    "(scripts/setup.sh does where apt-get exists)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="cw-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.set_script_timeout(30)
    d._cw_profile = profile  # removed by quit()
    return d


def quit_chrome(d) -> None:  # type: ignore[no-untyped-def]
    try:
        d.quit()
    finally:
        shutil.rmtree(getattr(d, "_cw_profile", ""), ignore_errors=True)


def screenshot(d, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Save a PNG under test-artifacts/onemap/ (ignored by git) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    d.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
