"""The charts on a tablet at 768 px: the growth chart on the batch page and the telemetry chart on the asset
page are drawn inline, their text is at least 14 px as displayed and inside the drawing, they fit the width,
and each page passes the strict page audit."""
from __future__ import annotations

from tests.browser.audit import audit_page, console_errors
from tests.browser.floor import log_in, set_viewport

CHART_PROBE = """
const svg = document.querySelector(arguments[0]);
if (!svg) return null;
const box = svg.getBoundingClientRect();
const texts = [...svg.querySelectorAll('text')].map(t => {
  const ctm = t.getScreenCTM(), r = t.getBoundingClientRect();
  return {text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * Math.sqrt(Math.abs(ctm.a * ctm.d - ctm.b * ctm.c)),
          inside: r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1};
});
return {right: box.right, width: box.width, clientWidth: document.documentElement.clientWidth, texts: texts,
        label: svg.getAttribute('aria-labelledby') && document.getElementById(svg.getAttribute('aria-labelledby')).textContent};
"""


def _links(browser, prefix):
    return browser.execute_script(
        "return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"
        ".filter(h => new RegExp(arguments[0]).test(h));", prefix)


def _check_chart(browser, selector, words):
    probe = browser.execute_script(CHART_PROBE, selector)
    assert probe is not None, selector
    assert probe["right"] <= probe["clientWidth"] and probe["width"] >= 600, probe
    shown = [t["text"] for t in probe["texts"]]
    for word in words:
        assert word in shown, (word, shown)
    small = [t for t in probe["texts"] if t["px"] < 14 - 0.01]
    assert not small, small
    outside = [t["text"] for t in probe["texts"] if not t["inside"]]
    assert not outside, outside
    assert probe["label"]
    problems = audit_page(browser, strict=True)
    assert not problems, problems


def test_growth_and_telemetry_charts_are_readable_on_a_tablet(served, browser):
    log_in(browser, served, "operator0")
    set_viewport(browser, 768, 1024)
    console_errors(browser)
    browser.get(served["base"] + "/batches/?view=all")
    found = False
    for href in dict.fromkeys(_links(browser, r"^/batches/\d+$")):
        browser.get(served["base"] + href)
        if browser.execute_script("return !!document.querySelector('svg.growth-chart');"):
            _check_chart(browser, "svg.growth-chart", ["expected (recipe)", "actual total cells",
                                                       "days since the batch started", "count within limits"])
            found = True
            break
    assert found, "no batch with a count to draw (the demo batch at day 7 has two)"
    browser.get(served["base"] + "/equipment/")
    found = False
    for href in dict.fromkeys(_links(browser, r"^/equipment/\d+$")):
        browser.get(served["base"] + href)
        if browser.execute_script("return !!document.querySelector('svg.telemetry-chart');"):
            _check_chart(browser, "svg.telemetry-chart", ["minimum to maximum", "mean", "limit"])
            found = True
            break
    assert found, "no monitored asset (the demo equipment has parameters)"
