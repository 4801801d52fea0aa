"""The dose availability page in headless Chromium on a tablet (768x1024): the clinician types a weight
and a protocol, gets the answer at once, explained, without sideways scroll."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.audit import audit_page, console_errors
from tests.browser.floor import click_and_wait, log_in, set_viewport


def test_a_clinician_asks_for_a_dose_on_a_tablet(served, browser):
    log_in(browser, served, "clinician")
    set_viewport(browser, 768, 1024)
    console_errors(browser)
    browser.get(served["base"] + "/dosing/availability")
    weight = browser.find_element(By.NAME, "weight_kg")
    assert weight.get_attribute("inputmode") == "decimal"
    weight.send_keys("70")
    Select(browser.find_element(By.NAME, "protocol")).select_by_value("MsNK")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.dose-form button[type=submit]"))
    assert "weight_kg=70" in browser.current_url
    answer = browser.find_element(By.ID, "answer").text
    assert "infusions" in answer or "No dose is available now" in answer
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Infusion 1" in text and "Infusion 3" in text and "2.1 x 10^9 viable cells" in text
    # nothing released in the served scenario: the answer says when, from the batches in progress
    assert "When a dose will be available" in text
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert audit_page(browser, strict=True) == []
