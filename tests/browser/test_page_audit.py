"""Every page each role can reach, held to the page audit (tests/browser/audit.py) in headless Chromium
at 768x1024: no sideways scroll, no None/nan/e+0/Traceback, no nested form, no console error, no failed
asset; on the shop floor's pages (operator, supervisor) also 44 px tap targets and 14 px text.

Pages are found by following links from the home page and from each domain's main lists, so a new
page is audited as soon as a page links to it. START_PATHS lists the entry points of each role."""
from __future__ import annotations

import pytest

from urllib.parse import quote

from tests.browser.audit import audit_page, console_errors, crawl
from tests.browser.floor import log_in, set_viewport

SHOP_FLOOR = {"operator0", "supervisor"}  # operator pages: gloved hands on a tablet
START_PATHS = ["/", "/account/password"]  # the navigation and the home tiles lead everywhere else
ROLES = ["operator0", "supervisor", "qa", "qc", "clinician", "pharmacist", "admin"]


@pytest.mark.parametrize("who", ROLES)
def test_every_reachable_page_passes_the_audit(served, browser, who):
    log_in(browser, served, who)
    set_viewport(browser, 768, 1024)
    console_errors(browser)  # what the log-in left in the log
    failures, visited = {}, []
    for url in crawl(browser, served["base"], START_PATHS):
        visited.append(url)
        problems = audit_page(browser, strict=who in SHOP_FLOOR)
        if problems:
            failures[url.removeprefix(served["base"])] = problems
    assert len(visited) >= (2 if who == "clinician" else 5), visited
    assert not failures, "\n".join(f"{url}:\n  " + "\n  ".join(p) for url, p in failures.items())


BAD_PAGE = """<!doctype html><html><head><meta name="viewport" content="width=device-width"></head><body>
<form action="/a"><form action="/b"><button>Go</button></form></form>
<p style="font-size:12px">Viability None %, 3e+07 cells</p><div style="width:2000px">wide</div>
<svg viewBox="0 0 1400 200" style="width:700px"><text x="10" y="100" font-size="16">scaled chart label</text></svg>
<script>console.error("broken script")</script></body></html>"""


def test_the_audit_catches_what_it_is_for(browser):
    """The audit itself can fail: a page with every defect it looks for."""
    set_viewport(browser, 768, 1024)
    browser.get("data:text/html;charset=utf-8," + quote(BAD_PAGE))
    problems = " | ".join(audit_page(browser, strict=True))
    for expected in ("scrolls sideways", "tap targets under 44 px", "text under 14 px", "Python None",
                     "e-notation", "console errors", "forms nested in a form",
                     '"scaled chart label" 8px'):  # 16 px in a drawing shown at half its size
        assert expected in problems, (expected, problems)
