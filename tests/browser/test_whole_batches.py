"""Whole batches from start to "in review" through the real pages, as the floor works: each step saved in
two goes, scans ending in Enter, an out-of-limit value confirmed with a comment, a correction with a
reason, performed on one tablet and verified by a second person on another, a stale tablet refused with
a message to reload, and the supervisor's signed submission to QA. Portrait tablets (768x1024)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from selenium.webdriver.common.by import By

from app.db import utcnow
from tests.browser.floor import click_and_wait, flashes, log_in, scan, set_viewport

AHEAD = "Whole batch run in one go on the test floor"


def _tap(driver: Any, element: Any) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def _fill(driver: Any, key: str, value: str) -> None:
    form = driver.find_element(By.ID, "entries-form")
    fields = form.find_elements(By.CSS_SELECTOR, f"[name='{key}']")
    first = fields[0]
    kind = first.get_attribute("type")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
    if kind == "radio":
        _tap(driver, next(f for f in fields if f.get_attribute("value") == value))
    elif kind == "checkbox":
        _tap(driver, first)
    elif kind == "datetime-local":
        local = value if value != "now" else ""
        driver.execute_script("arguments[0].value = arguments[1];", first, local)
    elif first.get_attribute("data-scanner") is not None:
        scan(driver, first, value)  # ends with Enter: the cursor moves on, nothing is submitted
    else:
        first.clear()
        first.send_keys(value)


def _save(driver: Any, values: dict[str, str]) -> None:
    reason = driver.find_elements(By.ID, "f-reason")
    if reason:
        reason[0].send_keys(AHEAD)
    now = [key for key, value in values.items() if value == "now"]
    for key, value in values.items():
        if value != "now":
            _fill(driver, key, value)
    button = (driver.find_element(By.CSS_SELECTOR, f"button[name='{now[0]}'][value=now]") if now  # "Stop now"
              else driver.find_element(By.ID, "save-entries"))
    click_and_wait(driver, button)
    assert "Saved." in flashes(driver), flashes(driver)


def _sign(driver: Any, meaning: str, served: dict[str, Any]) -> None:
    form = driver.find_element(By.CSS_SELECTOR, f"form.esign:has(input[name=meaning][value={meaning}])")
    form.find_element(By.NAME, "sign_password").send_keys(served["password"])
    click_and_wait(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert any(m.startswith(f"Step signed as {meaning}") for m in flashes(driver)), flashes(driver)


def _step_url(served: dict[str, Any], batch: dict[str, Any], index: int) -> str:
    return served["base"] + f"/batches/{batch['batch_id']}/steps/{batch['steps'][index]}"


def _run(served: dict[str, Any], tablet: Any, second: Any, batch: dict[str, Any],
         plan: list[tuple[dict[str, str], bool]]) -> None:
    for index, (values, verify) in enumerate(plan):
        tablet.get(_step_url(served, batch, index))
        items = list(values.items())
        half = max(1, len(items) // 2)
        _save(tablet, dict(items[:half]))  # count first, scan later: two goes
        if items[half:]:
            _save(tablet, dict(items[half:]))
        _sign(tablet, "performed", served)
        if verify:
            second.get(_step_url(served, batch, index))
            _sign(second, "verified", served)


def _submit(served: dict[str, Any], driver: Any, batch: dict[str, Any]) -> None:
    log_in(driver, served, "supervisor")
    driver.get(served["base"] + f"/batches/{batch['batch_id']}")
    form = driver.find_element(By.CSS_SELECTOR, "form.esign:has(input[name=meaning][value=submitted])")
    form.find_element(By.NAME, "sign_password").send_keys(served["password"])
    click_and_wait(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert "in review" in driver.find_element(By.TAG_NAME, "h1").text


def test_whole_msnk_batch_through_the_pages_on_two_tablets(served, browser, second_browser, batch):
    for driver in (browser, second_browser):
        set_viewport(driver, 768, 1024)
    log_in(browser, served, "operator0")
    log_in(second_browser, served, "operator1")
    lots = {code: f"{code}-DEMO-01" for code in ("FICOLL", "NK-EXP-KIT", "IL2", "IL15", "NK-MEDIUM", "MPB-SIA1",
                                                 "FORM-BUFFER")}

    # step 1 with an out-of-limit value the operator confirms: refused first, then a deviation opens
    browser.get(_step_url(served, batch, 0))
    _save(browser, {"din_matches": "pass"})
    _fill(browser, "thaw_cabinet", batch["cabinet"])
    _fill(browser, "bag_intact", "leak")
    click_and_wait(browser, browser.find_element(By.ID, "save-entries"))
    assert any("outside the hard limits" in m for m in flashes(browser)), flashes(browser)
    box = browser.find_element(By.CSS_SELECTOR, "#entry-bag_intact .confirm-box")
    _tap(browser, box.find_element(By.NAME, "bag_intact__confirm"))
    box.find_element(By.NAME, "bag_intact__comment").send_keys("Small leak at the port, sealed and contained")
    click_and_wait(browser, browser.find_element(By.ID, "save-entries"))
    assert "Saved." in flashes(browser), flashes(browser)

    # a stale second tablet: opened before the first one saved, refused with a message to reload
    second_browser.get(_step_url(served, batch, 1))
    browser.get(_step_url(served, batch, 1))
    _save(browser, {"mnc_viability": "92"})
    second_browser.find_element(By.ID, "f-reason").send_keys(AHEAD) if second_browser.find_elements(
        By.ID, "f-reason") else None
    _fill(second_browser, "mnc_total_cells", "1.2x10^8")
    click_and_wait(second_browser, second_browser.find_element(By.ID, "save-entries"))
    assert any("Reload the page" in m for m in flashes(second_browser)), flashes(second_browser)

    # back on step 1 to sign, then the rest of step 2 and a correction with a reason
    browser.get(_step_url(served, batch, 0))
    _sign(browser, "performed", served)
    second_browser.get(_step_url(served, batch, 0))
    _sign(second_browser, "verified", served)
    browser.get(_step_url(served, batch, 1))
    _fill(browser, "gradient_lot", lots["FICOLL"])
    _fill(browser, "gradient_lot__quantity", "15")
    _fill(browser, "mnc_total_cells", "1.2x10^8")
    click_and_wait(browser, browser.find_element(By.ID, "save-entries"))
    correction = browser.find_element(By.CSS_SELECTOR, "#entry-mnc_viability details.correct")
    _tap(browser, correction.find_element(By.TAG_NAME, "summary"))
    correction.find_element(By.NAME, "value").send_keys("93")
    correction.find_element(By.NAME, "reason").send_keys("Read from the wrong counter line")
    click_and_wait(browser, correction.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert any(m.startswith("Corrected.") for m in flashes(browser)), flashes(browser)
    _sign(browser, "performed", served)

    mpb_added = (utcnow() - timedelta(hours=47, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    plan = [
        ({"expansion_kit_lot": lots["NK-EXP-KIT"], "expansion_kit_lot__quantity": "1", "il2_lot": lots["IL2"],
          "il2_lot__quantity": "2", "il15_lot": lots["IL15"], "il15_lot__quantity": "2", "seeded_cells": "5e7",
          "culture_incubator": batch["incubator"]}, True),
        ({"medium_lot_d3": lots["NK-MEDIUM"], "medium_lot_d3__quantity": "100", "vcd_d3": "5e5",
          "viability_d3": "90", "total_cells_d3": "1.5E8"}, False),
        ({"vcd_d7": "1e6", "viability_d7": "92", "total_cells_d7": "1e9", "bioreactor": batch["bioreactor"],
          "incubator_released": "released"}, True),
        ({"medium_lot_d11": lots["NK-MEDIUM"], "medium_lot_d11__quantity": "500", "vcd_d11": "3e6",
          "viability_d11": "93", "total_cells_d11": "5e9"}, False),
        ({"total_cells_d14": "1.3x10^10", "viability_d14": "95", "purity_d14": "99",
          "bioreactor_released": "released"}, True),
        ({"mpb_lot": lots["MPB-SIA1"], "mpb_lot__quantity": "5", "mpb_concentration": "2.0",
          "mpb_added_at": mpb_added}, True),
        ({"mpb_removed_at": "now", "cd22_ligand_pct": "99.5", "viability_engineered": "90"}, True),
        ({"formulation_buffer_lot": lots["FORM-BUFFER"], "formulation_buffer_lot__quantity": "100",
          "final_viable_cells": "1.1e10", "bag_count": "4", "bag_volume_ml": "50"}, True),
    ]
    rest = {**batch, "steps": batch["steps"][2:]}
    _run(served, browser, second_browser, rest, plan)
    _submit(served, browser, batch)


def test_whole_car_nk_batch_through_the_pages_on_two_tablets(served, browser, second_browser):
    batch = served["car_batches"][0]
    for driver in (browser, second_browser):
        set_viewport(driver, 768, 1024)
    log_in(browser, served, "supervisor")
    log_in(second_browser, served, "operator0")
    plan = [
        ({"din_matches": "pass", "expansion_kit_lot": "NK-EXP-KIT-DEMO-01", "expansion_kit_lot__quantity": "1",
          "seeded_cells": "5.0x10^7", "seed_viability": "92", "culture_incubator": batch["incubator"]}, None),
        ({"cells_at_transduction": "1e8", "vector_lot": "NKG2D-CAR-VECTOR-DEMO-01", "vector_lot__quantity": "2",
          "vector_titer": "2.5e8", "vector_volume_ml": "2", "enhancer_lot": "TRANSDUCTION-ENHANCER-DEMO-01",
          "enhancer_lot__quantity": "1"}, None),
        ({"viability_d7": "90", "total_cells_d7": "8e8", "car_positive_pct": "45", "vcn_sample_id": "VCN-2026-001"},
         None),
        ({"total_cells_d14": "1.2e10", "viability_d14": "92", "incubator_released": "released"}, None),
        ({"formulation_buffer_lot": "FORM-BUFFER-DEMO-01", "formulation_buffer_lot__quantity": "80",
          "final_viable_cells": "1.0e10", "bag_count": "3"}, None),
    ]
    for index, (values, _) in enumerate(plan):
        browser.get(_step_url(served, batch, index))
        needs_verification = bool(browser.find_elements(By.XPATH, "//*[contains(text(), 'second-person verification')]"))
        plan[index] = (values, needs_verification)
    _run(served, browser, second_browser, batch, plan)
    _submit(served, browser, batch)
