"""Concurrent occupancy on a tablet: registering an incubator with a capacity, the type's refusal of one
on a cabinet, and changing the capacity on the asset page with a reason, in headless Chromium."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.audit import audit_page
from tests.browser.floor import click_and_wait, flashes, log_in, set_viewport


def _fill(driver, form, values):
    for name, value in values.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)


def _refusal_page_problems(driver):
    """The page audit of a refusal: the 4xx of the page itself (and the browser's log of it) is the point."""
    return [p for p in audit_page(driver, strict=True)
            if not p.startswith(("assets failed: ['4", "console errors: ['" + driver.current_url))]


def _register(driver, served, values):
    driver.get(served["base"] + "/equipment/new")
    form = driver.find_element(By.CSS_SELECTOR, "form.card")
    capacity = form.find_element(By.NAME, "capacity")
    assert capacity.get_attribute("inputmode") == "numeric" and capacity.get_attribute("value") == "1"
    assert capacity.size["height"] >= 44
    _fill(driver, form, values)
    click_and_wait(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))


def test_capacity_is_set_on_registration_refused_by_type_and_changed_with_a_reason(served, browser):
    log_in(browser, served, "admin")
    set_viewport(browser, 768, 1024)
    base = {"name": "Shelf incubator", "location": "Cleanroom B2"}
    _register(browser, served, {**base, "code": "BSC-CAP-1", "asset_type": "biosafety_cabinet", "capacity": "2"})
    assert "/equipment/new" in browser.current_url
    assert any("holds one record at a time" in text for text in flashes(browser)), flashes(browser)
    assert _refusal_page_problems(browser) == []

    _register(browser, served, {**base, "code": "INC-CAP-1", "asset_type": "co2_incubator", "capacity": "3"})
    assert "/equipment/new" not in browser.current_url, flashes(browser)
    occupancy = browser.find_element(By.ID, "occupancy")
    assert occupancy.text.startswith("0 of 3 places in use")
    assert audit_page(browser, strict=True) == []

    form = browser.find_element(By.ID, "capacity")
    field = form.find_element(By.NAME, "capacity")
    assert field.get_attribute("inputmode") == "numeric" and field.get_attribute("value") == "3"
    _fill(browser, form, {"capacity": "101", "reason": "more shelves"})
    click_and_wait(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert any("A whole number from 1 to 100" in text for text in flashes(browser)), flashes(browser)
    assert browser.find_element(By.ID, "occupancy").text.startswith("0 of 3 places in use")
    assert _refusal_page_problems(browser) == []

    form = browser.find_element(By.ID, "capacity")
    _fill(browser, form, {"capacity": "2", "reason": "one shelf out of service"})
    click_and_wait(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert any("now holds up to 2 records at once" in text for text in flashes(browser)), flashes(browser)
    assert browser.find_element(By.ID, "occupancy").text.startswith("0 of 2 places in use")
    history = browser.find_element(By.TAG_NAME, "body").text
    assert "one shelf out of service" in history
