"""The lot review page and the lot's QC page in headless Chromium at 1024x768: no horizontal scroll,
and the page audit of every page (tests/browser/audit.py). Runs against the app served on 127.0.0.1 by a separate
process over its own database."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.browser.audit import audit_page
from tests.browser.conftest import serve_app
from tests.browser.floor import log_in, set_viewport


@pytest.fixture(scope="module")
def served_lot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serve_app("tests.batches.quality.serve_lot",
                   f"sqlite:///{tmp_path_factory.mktemp('lot-browser') / 'lot.sqlite3'}") as info:
        yield info


def check_page(browser: Any, served_lot: dict[str, Any], path: str, where: str) -> str:
    browser.get(served_lot["base"] + path)
    assert browser.execute_script("return window.innerWidth") == 1024, where
    problems = audit_page(browser, strict=False)  # desktop pages of QA and QC: the layout rules
    assert problems == [], f"{where}: {problems}"
    main = browser.find_elements("tag name", "main")
    return (main[0] if main else browser.find_element("tag name", "body")).text


def test_lot_review_page_fits_1024x768(served_lot, browser):
    log_in(browser, served_lot, "qa")
    set_viewport(browser, 1024, 768)
    text = check_page(browser, served_lot, f"/quality/lots/{served_lot['lot_id']}/review", "lot review")
    assert "What still blocks the disposition" in text and "Chain of identity" in text
    assert "OOS investigation" in text and "Sterility" in text
    browser.find_element("css selector", "#disposition details summary").click()
    assert audit_page(browser, strict=False) == []


def test_qc_lot_page_and_investigation_fit_1024x768(served_lot, browser):
    log_in(browser, served_lot, "qc")
    set_viewport(browser, 1024, 768)
    text = check_page(browser, served_lot, f"/quality/lots/{served_lot['lot_id']}", "QC lot page")
    assert "Results against the specification" in text
    check_page(browser, served_lot, "/quality/investigations/", "investigations")
    check_page(browser, served_lot, "/quality/specifications/", "specifications")
