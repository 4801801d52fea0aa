"""The browser as the judge: one headless Chromium (and a second one for two-person flows) per test
session, driving the app served on 127.0.0.1 by a separate process over its own database holding the
floor scenario (scripts/ensure-chromium.sh installs Chromium and its driver)."""
from __future__ import annotations

import contextlib
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
ROOT = Path(__file__).resolve().parents[2]
BATCHES = 6  # one per test that takes a batch through its steps, so the tests stay independent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        skip = pytest.mark.skip(reason="Chromium not installed: run scripts/ensure-chromium.sh (make test does)")
        for item in items:
            if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(skip)


@contextlib.contextmanager
def serve_app(module: str, *args: str) -> Iterator[dict[str, Any]]:
    """Serve the app from `python -m module *args` (which prints one JSON line of what it built, with its port)
    and stop it afterwards."""
    log = tempfile.TemporaryFile(mode="w+")  # the request log; a pipe left unread would stall the server
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                               text=True)
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


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'browser.sqlite3'}"
    with serve_app("tests.batches.execution.serve_scenario", url, "--batches", str(BATCHES), "--car-batches", "1",
                   "--demo") as info:
        info["free_batches"] = [b for b in info["batches"] if b["recipe"] == "MSNK"]
        info["car_batches"] = [b for b in info["batches"] if b["recipe"] != "MSNK"]
        yield info


def _chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="nkmes-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1024,768"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    driver = _chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def second_browser() -> Iterator[Any]:
    """A second tablet: its own cookies, its own session."""
    driver = _chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def batch(served: dict[str, Any]) -> dict[str, Any]:
    """A batch in progress that no other test touches."""
    if not served["free_batches"]:
        raise RuntimeError("raise BATCHES in tests/browser/conftest.py")
    return served["free_batches"].pop(0)
