"""The dosing path in headless Chromium, through the pages only: from a released lot, a clinician reserves
three infusions (one bag each, e-signed), the pharmacist issues them, at the bedside a wrong bag is refused
with a STOP, the right bag and wristband pass, each infusion is recorded with the administering and the
witnessing clinician's signatures, and the patient's timeline shows the three infusions and the follow-up
schedule. Every page on the way passes the page audit."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.audit import audit_page, console_errors
from tests.browser.conftest import serve_app
from tests.browser.floor import click_and_wait, log_in, set_viewport


@pytest.fixture(scope="module")
def served_care(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serve_app("tests.batches.dosing.serve_care",
                   f"sqlite:///{tmp_path_factory.mktemp('care-browser') / 'care.sqlite3'}") as info:
        info["users"].update({"witness": info["witness"], "pharmacist": info["pharmacist"]})
        yield info


def local(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")  # the served site's zone is UTC


def audited(browser: Any) -> str:
    problems = audit_page(browser, strict=False)
    assert problems == [], (browser.current_url, problems)
    return browser.find_element(By.TAG_NAME, "main").text


def set_value(browser: Any, name: str, value: str) -> None:
    field = browser.find_element(By.NAME, name)
    browser.execute_script("arguments[0].value = arguments[1];", field, value)


def type_into(browser: Any, name: str, value: str) -> None:
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def submit(browser: Any, form_css: str) -> None:
    """Submit the form and wait for the page the server answers with (a flash on the old page is no answer)."""
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]"))


def test_from_a_released_lot_to_three_infusions_and_the_follow_up(served_care, browser):
    base, password = served_care["base"], served_care["password"]
    patient, bag_ids = served_care["patients"][0], served_care["bags"]
    set_viewport(browser, 768, 1024)
    log_in(browser, served_care, "clinician")
    reservation_ids = []
    now = datetime.now(timezone.utc)
    for n in (1, 2, 3):
        browser.get(f"{base}/care/patients/{patient['id']}")
        audited(browser)
        browser.find_element(By.CSS_SELECTOR, f"#f-infusion_number option[value='{n}']").click()
        # 23 h apart: the third infusion stays inside the 48 h MsNK ligand window of the lot made just now
        set_value(browser, "planned_at", local(now + timedelta(hours=0.5 + 23 * (n - 1))))
        browser.find_element(By.CSS_SELECTOR, f"input[name=unit_ids][value='{bag_ids[n - 1]['id']}']").click()
        type_into(browser, "sign_password", password)
        submit(browser, "#reserve form")
        assert "/care/reservations/" in browser.current_url, audited(browser)
        text = audited(browser)
        assert "Reserved by" in text and bag_ids[n - 1]["identifier"] in text
        reservation_ids.append(int(browser.current_url.rstrip("/").split("/")[-1]))

    log_in(browser, served_care, "pharmacist")
    for rid in reservation_ids:
        browser.get(f"{base}/care/pharmacy")
        audited(browser)
        browser.find_element(By.CSS_SELECTOR, f"#r{rid} input[name=location]").send_keys("Ward 7, bed 3")
        submit(browser, f"#r{rid} form")
        assert f"#r{rid}" not in browser.page_source or "issued" in audited(browser)

    log_in(browser, served_care, "clinician")
    for n, rid in enumerate(reservation_ids, 1):
        browser.get(f"{base}/care/bedside?reservation_id={rid}")
        audited(browser)
        if n == 1:  # the bag of infusion 2 at infusion 1: a hard stop, nothing recorded
            browser.find_element(By.NAME, "wristband").send_keys(patient["hospital_id"] + "\n")
            browser.find_element(By.NAME, "bag_identifier").send_keys(bag_ids[1]["identifier"] + "\n")
            WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".stop"))
            stop = browser.find_element(By.CSS_SELECTOR, ".stop").text
            assert "STOP: wrong bag" in stop and "infusion 2" in stop
            assert any("409" in e for e in console_errors(browser))  # the refusal is a 409, read out here
        # a keyboard-wedge scan ends with Enter: it moves to the next field, the last one submits
        browser.find_element(By.NAME, "wristband").send_keys(patient["hospital_id"] + "\n")
        browser.find_element(By.NAME, "bag_identifier").send_keys(bag_ids[n - 1]["identifier"] + "\n")
        WebDriverWait(browser, 20).until(lambda d: "/infusion" in d.current_url)
        audited(browser)
        end = datetime.now(timezone.utc)
        set_value(browser, "started_at", local(end - timedelta(minutes=40)))
        set_value(browser, "ended_at", local(end - timedelta(minutes=1)))
        type_into(browser, "volume_ml", "45")
        type_into(browser, "sign_password", password)
        type_into(browser, "witness_username", served_care["witness"])
        type_into(browser, "witness_password", password)
        submit(browser, "main form")
        assert f"/care/patients/{patient['id']}" in browser.current_url, audited(browser)

    timeline = audited(browser)
    infused = browser.find_elements(By.CSS_SELECTOR, ".timeline li.tl-infusion")
    assert len(infused) == 3 and all("witnessed by floor-witness" in li.text and "infused" in li.text for li in infused)
    for label in ("DLT and adverse event window", "Week 12 visit", "Week 24 visit", "Week 36 visit", "Week 52 visit",
                  "Week 4 response assessment"):
        assert label in timeline, label
    browser.get(f"{base}/care/reservations/{reservation_ids[0]}")
    text = audited(browser)
    assert "Administered by" in text and "Witnessed by" in text and "bedside check" in text
    browser.get(f"{base}/care/follow-up")
    assert "DLT and adverse event window" in audited(browser)
    browser.get(f"{base}/care/chain-of-identity?identifier={bag_ids[0]['identifier']}")
    chain = audited(browser)
    assert patient["study_id"] in chain and served_care["lot_number"] in chain
