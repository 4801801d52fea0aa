"""The step runner as the floor uses it: a step saved in several goes, a correction with a reason, and
a keyboard-wedge scanner that ends every barcode with Enter."""
from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By

from tests.browser.floor import (click_and_wait, field, flashes, log_in, mark_page, navigated, save_entries, scan,
                                 set_viewport, type_into)


def _open_step(browser: Any, served: dict[str, Any], batch: dict[str, Any], index: int) -> None:
    browser.get(served["base"] + f"/batches/{batch['batch_id']}/steps/{batch['steps'][index]}")


def test_partial_save_then_the_rest_then_a_correction(served, browser, batch):
    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    _open_step(browser, served, batch, 1)  # MNC isolation: a material lot with its quantity and two counts
    browser.find_element(By.ID, "f-reason").send_keys("Thaw witnessed, its record is signed after this step")
    type_into(browser, "mnc_viability", "92")
    save_entries(browser)
    assert "Saved." in flashes(browser)

    # the rest, in a second go: the fields and the button must still belong to the entries form
    scan(browser, field(browser, "gradient_lot"), "FICOLL-DEMO-01")
    type_into(browser, "gradient_lot__quantity", "15")
    type_into(browser, "mnc_total_cells", "5x10^7")
    save_entries(browser)
    assert "Saved." in flashes(browser), flashes(browser)
    text = browser.find_element(By.ID, "entry-mnc_total_cells").text
    assert "5 x 10^7" in text
    assert "FICOLL-DEMO-01" in browser.find_element(By.ID, "entry-gradient_lot").text

    # correct the first value with a reason: its own form, posted to the correction URL
    box = browser.find_element(By.CSS_SELECTOR, "#entry-mnc_viability details.correct")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.find_element(By.TAG_NAME, "summary").click()
    box.find_element(By.CSS_SELECTOR, "[name=value]").send_keys("93")
    box.find_element(By.CSS_SELECTOR, "[name=reason]").send_keys("Read from the wrong counter line")
    click_and_wait(browser, box.find_element(By.XPATH, ".//button[normalize-space()='Save the correction']"))
    assert any(m.startswith("Corrected.") for m in flashes(browser)), flashes(browser)
    viability = browser.find_element(By.ID, "entry-mnc_viability").text
    assert "93" in viability and "Read from the wrong counter line" in viability  # the original stays shown


def test_scanner_enter_moves_to_the_next_field_in_the_step_runner(served, browser, batch):
    log_in(browser, served, "operator1")
    set_viewport(browser, 768, 1024)
    _open_step(browser, served, batch, 2)  # seeding: three material scans, a count and an incubator scan
    mark_page(browser)
    kit = field(browser, "expansion_kit_lot")
    scan(browser, kit, "NK-EXP-KIT-DEMO-01")
    assert not navigated(browser), "Enter after a scan submitted the form"
    active = browser.switch_to.active_element
    assert active.get_attribute("name") == "expansion_kit_lot__quantity"
    active.send_keys("1")
    scan(browser, field(browser, "il2_lot"), "IL2-DEMO-01")
    assert not navigated(browser)
    assert browser.switch_to.active_element.get_attribute("name") == "il2_lot__quantity"
    scan(browser, field(browser, "culture_incubator"), batch["incubator"])
    assert not navigated(browser)
    assert field(browser, "expansion_kit_lot").get_attribute("value") == "NK-EXP-KIT-DEMO-01"
    assert flashes(browser) == []


def test_scanner_enter_moves_to_the_next_field_on_the_intake_page(served, browser):
    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    browser.get(served["base"] + "/sourcing/units/new")
    mark_page(browser)
    din = browser.find_element(By.NAME, "din")
    scan(browser, din, "=G12342612345600")
    assert not navigated(browser)
    assert browser.switch_to.active_element.get_attribute("name") != "din"
