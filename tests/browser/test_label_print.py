"""Printing a bag label and reprinting it with a reason from the bag page, in headless Chromium, against
the app served on 127.0.0.1 over its own database with a released lot; the pages pass the page audit."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.audit import audit_page
from tests.browser.conftest import serve_app
from tests.browser.floor import log_in, set_viewport


@pytest.fixture(scope="module")
def served_released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serve_app("tests.batches.documents.serve_released",
                   f"sqlite:///{tmp_path_factory.mktemp('label-browser') / 'labels.sqlite3'}") as info:
        yield info


def label_card(browser: Any) -> str:
    return browser.find_element(By.ID, "label").text


def test_print_then_reprint_a_bag_label_with_a_reason(served_released, browser):
    log_in(browser, served_released, "operator0")
    set_viewport(browser, 768, 1024)
    page = served_released["base"] + f"/quality/units/{served_released['bag_id']}"
    browser.get(page)
    assert audit_page(browser, strict=True) == []
    assert "Print the label" in label_card(browser)
    browser.find_element(By.ID, "print-label").click()  # the PDF is a download: the page stays
    WebDriverWait(browser, 10).until(lambda d: (d.get(page) or True) and "Printed 1 time" in label_card(d))
    assert "Reprint the label" in label_card(browser)
    assert audit_page(browser, strict=True) == []
    browser.find_element(By.ID, "f-reason").send_keys("Label smudged by condensation")
    browser.find_element(By.ID, "print-label").click()
    WebDriverWait(browser, 10).until(lambda d: (d.get(page) or True) and "Printed 2 time" in label_card(d))
    assert "reprint: Label smudged by condensation" in label_card(browser)


def test_cbu_page_and_lot_review_offer_label_and_certificate(served_released, browser):
    log_in(browser, served_released, "qa")
    set_viewport(browser, 1024, 768)
    browser.get(served_released["base"] + f"/sourcing/units/{served_released['cbu_id']}")
    assert "Print the label" in label_card(browser)
    assert audit_page(browser, strict=False) == []
    browser.get(served_released["base"] + f"/quality/lots/{served_released['lot_id']}/review")
    assert "Download the certificate (version 1)" in browser.find_element(By.ID, "coa").text
    assert audit_page(browser, strict=False) == []
