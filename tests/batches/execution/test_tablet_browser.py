"""The main tablet screens in headless Chromium at 1024x768 and 768x1024: no horizontal scroll, touch
targets of at least 44 px, the current step large. Runs against the app served on 127.0.0.1 by a separate
process over its own database (scripts/ensure-chromium.sh installs Chromium and its driver)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[3]
VIEWPORTS = [(1024, 768), (768, 1024)]

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="Chromium not installed: run scripts/ensure-chromium.sh (make test does)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'browser.sqlite3'}"
    log = tempfile.TemporaryFile(mode="w+")  # the request log; a pipe left unread would stall the server
    process = subprocess.Popen([sys.executable, "-m", "tests.batches.execution.serve_scenario", url],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            process.wait(timeout=10)
            log.seek(0)
            raise RuntimeError("the app server did not start: " + log.read())
        info = json.loads(line)
        info["base"] = f"http://127.0.0.1:{info['port']}"
        yield info
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="nkmes-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1024,768"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def log_in(driver: Any, served: dict[str, Any], who: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(served["base"] + "/login")
    driver.find_element(By.NAME, "username").send_keys(served["users"][who])
    driver.find_element(By.NAME, "password").send_keys(served["password"])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/login" not in d.current_url)


LAYOUT_PROBE = """
const doc = document.documentElement;
const small = [...document.querySelectorAll('.btn, .choice, .tabs a, .batch-card, select, textarea, ' +
    'input:not([type=hidden]):not([type=radio]):not([type=checkbox])')]
  .filter(el => el.offsetParent !== null)
  .map(el => [el.textContent.trim().slice(0, 40), el.getBoundingClientRect().height])
  .filter(([, h]) => h < 44);
const title = document.querySelector('.step-title');
return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, innerWidth: window.innerWidth, small: small,
        titlePx: title ? parseFloat(getComputedStyle(title).fontSize) : null,
        errors: [...document.querySelectorAll('h1')].map(h => h.textContent.trim())};
"""


def test_main_tablet_screens_fit_without_horizontal_scroll(served, browser):
    batch = served["batches"][0]
    log_in(browser, served, "operator0")
    pages = {
        "batch list": "/batches/?view=all",
        "step runner": f"/batches/{batch['batch_id']}/steps/{batch['steps'][0]}",
        "step runner, many entries": f"/batches/{batch['batch_id']}/steps/{batch['steps'][2]}",
        "batch overview": f"/batches/{batch['batch_id']}",
    }
    for width, height in VIEWPORTS:
        set_viewport(browser, width, height)
        for name, path in pages.items():
            browser.get(served["base"] + path)
            probe = browser.execute_script(LAYOUT_PROBE)
            where = f"{name} at {width}x{height}"
            assert probe["innerWidth"] == width, where  # the viewport is the tablet's
            assert probe["scrollWidth"] <= probe["clientWidth"], f"{where}: horizontal scroll {probe}"
            assert probe["small"] == [], f"{where}: touch targets under 44 px: {probe['small']}"
            if name.startswith("step runner"):
                assert probe["titlePx"] >= 24, where
            assert not any("Server error" in h for h in probe["errors"]), where


def test_live_limit_colour_while_typing(served, browser):
    from selenium.webdriver.common.by import By

    batch = served["batches"][0]
    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    browser.get(served["base"] + f"/batches/{batch['batch_id']}/steps/{batch['steps'][1]}")
    viability = browser.find_element(By.NAME, "mnc_viability")
    viability.send_keys("60")
    assert "out-limits" in viability.get_attribute("class")
    viability.clear()
    viability.send_keys("92")
    assert "in-limits" in viability.get_attribute("class")
    viability.clear()
    viability.send_keys("92,5")  # a decimal comma on a point site: no colour here, a message on saving
    assert not {"in-limits", "alert-limits", "out-limits"} & set(viability.get_attribute("class").split())
    viability.clear()
    viability.send_keys("9.25e1")
    assert "in-limits" in viability.get_attribute("class")
