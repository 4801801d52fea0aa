"""On the served scenario (demo batches included, none released): the availability page says when a dose
will be available from the batches in progress and how far off the projection was on completed batches."""
from __future__ import annotations

import re

from selenium.webdriver.common.by import By

from tests.browser.floor import log_in, set_viewport


def test_projection_error_on_demo_batches_is_reported(served, browser):
    log_in(browser, served, "clinician")
    set_viewport(browser, 768, 1024)
    browser.get(served["base"] + "/dosing/availability?weight_kg=40&protocol=MsNK")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "No dose is available now" in text
    match = re.search(r"on (\d+) completed batch\(es\) the projection from the counts before harvest was off by "
                      r"([\d.]+)% \(median\)", text)
    assert match, text
    assert int(match.group(1)) >= 1
    print(match.group(0))
