"""The lot review page and the lot's QC page in headless Chromium at 1024x768: no horizontal scroll,
targets of at least 44 px, no 'None' on screen. Runs against the app served on 127.0.0.1 by a separate
process over its own database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Iterator

import pytest

from tests.batches.execution.test_tablet_browser import (  # noqa: F401  (the shared browser fixture)
    CHROMEDRIVER,
    CHROMIUM,
    LAYOUT_PROBE,
    ROOT,
    browser,
    log_in,
    set_viewport,
)

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="Chromium not installed: run scripts/ensure-chromium.sh (make test does)")


@pytest.fixture(scope="module")
def served_lot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('lot-browser') / 'lot.sqlite3'}"
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([sys.executable, "-m", "tests.batches.quality.serve_lot", url],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            process.wait(timeout=10)
            log.seek(0)
            raise RuntimeError("the app server did not start: " + log.read())
        info = json.loads(line)
        info["base"] = f"http://127.0.0.1:{info['port']}"
        info["users"]["qc"] = info["qc_user"]
        yield info
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        log.close()


def check_page(browser: Any, served_lot: dict[str, Any], path: str, where: str) -> str:
    browser.get(served_lot["base"] + path)
    probe = browser.execute_script(LAYOUT_PROBE)
    assert probe["innerWidth"] == 1024, where
    assert probe["scrollWidth"] <= probe["clientWidth"], f"{where}: horizontal scroll {probe}"
    assert probe["small"] == [], f"{where}: targets under 44 px: {probe['small']}"
    text = browser.find_element("tag name", "main").text if browser.find_elements("tag name", "main") else \
        browser.find_element("tag name", "body").text
    assert "None" not in text.split(), f"{where}: 'None' on screen"
    assert not any("Server error" in h for h in probe["errors"]), where
    return text


def test_lot_review_page_fits_1024x768(served_lot, browser):
    log_in(browser, served_lot, "qa")
    set_viewport(browser, 1024, 768)
    text = check_page(browser, served_lot, f"/quality/lots/{served_lot['lot_id']}/review", "lot review")
    assert "What still blocks the disposition" in text and "Chain of identity" in text
    assert "OOS investigation" in text and "Sterility" in text
    browser.find_element("css selector", "#disposition details summary").click()
    probe = browser.execute_script(LAYOUT_PROBE)
    assert probe["scrollWidth"] <= probe["clientWidth"] and probe["small"] == []


def test_qc_lot_page_and_investigation_fit_1024x768(served_lot, browser):
    log_in(browser, served_lot, "qc")
    set_viewport(browser, 1024, 768)
    text = check_page(browser, served_lot, f"/quality/lots/{served_lot['lot_id']}", "QC lot page")
    assert "Results against the specification" in text
    check_page(browser, served_lot, "/quality/investigations/", "investigations")
    check_page(browser, served_lot, "/quality/specifications/", "specifications")
