"""The main tablet screens in headless Chromium at 1024x768 and 768x1024: no horizontal scroll, touch
targets of at least 44 px, the current step large, live limit colours while typing."""
from __future__ import annotations

from tests.browser.floor import log_in, set_viewport

VIEWPORTS = [(1024, 768), (768, 1024)]


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


def test_main_tablet_screens_fit_without_horizontal_scroll(served, browser, batch):
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


def test_live_limit_colour_while_typing(served, browser, batch):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    browser.get(served["base"] + f"/batches/{batch['batch_id']}/steps/{batch['steps'][1]}")
    viability = browser.find_element(By.NAME, "mnc_viability")
    viability.send_keys("60")
    assert "out-limits" in viability.get_attribute("class")
    word = browser.find_element(By.CSS_SELECTOR, '[data-word-for="mnc_viability"]')
    assert word.text == "below the hard limit: out of limits"  # not colour alone
    viability.clear()
    viability.send_keys("80")
    assert "alert-limits" in viability.get_attribute("class") and word.text == "below the alert limit"
    viability.clear()
    viability.send_keys("92")
    assert "in-limits" in viability.get_attribute("class") and word.text == "in limits"
    viability.clear()
    viability.send_keys("92,5")  # a decimal comma on a point site: no colour here, a message on saving
    assert not {"in-limits", "alert-limits", "out-limits"} & set(viability.get_attribute("class").split())
    viability.clear()
    viability.send_keys("9.25e1")
    assert "in-limits" in viability.get_attribute("class")


def test_portrait_menu_collapses_and_long_steps_keep_their_save_button_in_reach(served, browser, batch):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    browser.get(served["base"] + f"/batches/{batch['batch_id']}/steps/{batch['steps'][2]}")  # seeding: 5 entries
    header = browser.find_element(By.CSS_SELECTOR, ".topbar")
    assert header.size["height"] <= 130, header.size  # one or two rows, not three or four
    nav = browser.find_element(By.CSS_SELECTOR, ".mainnav")
    assert not nav.is_displayed()
    browser.find_element(By.CSS_SELECTOR, ".nav-toggle-label").click()
    assert nav.is_displayed() and nav.find_element(By.LINK_TEXT, "Batches").size["height"] >= 44
    save = browser.find_element(By.ID, "save-entries")
    top = browser.execute_script("window.scrollTo(0, 0); return arguments[0].getBoundingClientRect();", save)
    assert top["bottom"] <= 1024, "Save entries is below the fold at the top of a long step"
    set_viewport(browser, 1024, 768)
    browser.get(served["base"] + "/batches/")
    assert browser.find_element(By.CSS_SELECTOR, ".mainnav").is_displayed()  # landscape: the full menu
