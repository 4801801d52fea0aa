"""The page audit: what every page must pass in a real browser, whatever package it comes from.

`audit_page(driver, strict=...)` loads nothing itself: it inspects the page the driver shows and returns
the list of problems, each a sentence. `crawl(driver, base, start)` finds pages the way a user does,
by following same-site links from the start pages, so a page added later is audited as soon as any
page links to it. Add to SKIP_PATHS only what is not a page (downloads, actions reached by GET).
"""
from __future__ import annotations

import re
from collections import deque
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

MIN_TARGET_PX = 44
MIN_TEXT_PX = 14
PER_SHAPE = 2  # pages per URL shape (/batches/{n}/steps/{n}): enough to see each template with data
SKIP_PATHS = (
    "/logout", "/static/", "/api/", "/docs/api",  # not pages of the product's own templates
)
SKIP_SUFFIXES = (".pdf", ".csv", ".json", ".svg", ".png", ".txt", ".toml")
FORBIDDEN = [
    (re.compile(r"\bNone\b"), "Python None"),
    (re.compile(r"\b(?:nan|NaN)\b"), "nan"),
    (re.compile(r"\d[eE][+-]\d"), "a number in e-notation"),
    (re.compile(r"Traceback"), "a traceback"),
    (re.compile(r"\[object Object\]|undefined"), "a script value"),
]

# Text that may hold a forbidden word because it is a name, not a value: OPC UA calls its unsecured
# policy and mode "None", and the audit trail shows stored values as they are.
ALLOWED = [re.compile(r"security_(?:mode|policy): \S+ → None\b")]

PROBE = r"""
const min = arguments[0], minText = arguments[1], strict = arguments[2];
const doc = document.documentElement;
const visible = el => {
  if (!el.getClientRects().length) return false;
  const s = getComputedStyle(el);
  return s.visibility !== 'hidden' && s.display !== 'none';
};
const label = el => (el.getAttribute('aria-label') || el.textContent || el.name || el.tagName).trim().replace(/\s+/g, ' ').slice(0, 50);
// A link inside running text is exempt (WCAG 2.5.8): it has text on its own line around it.
const inSentence = el => {
  if (el.tagName !== 'A' || getComputedStyle(el).display !== 'inline') return false;
  const parent = el.parentElement;
  if (!parent) return false;
  const own = [...parent.childNodes].filter(n => n !== el).map(n => n.textContent).join('').trim();
  return own.length > 0 && !parent.matches('nav, .actions, .tabs, .step-nav, .mainnav');
};
const small = [];
if (strict) {
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')) {
    if (!visible(el) || inSentence(el)) continue;
    let box = el.getBoundingClientRect();
    if ((el.type === 'checkbox' || el.type === 'radio') && el.closest('label')) box = el.closest('label').getBoundingClientRect();
    if (box.height < min - 0.5 || box.width < min - 0.5) small.push(`${el.tagName.toLowerCase()} "${label(el)}" ${Math.round(box.width)}x${Math.round(box.height)}`);
  }
}
const tiny = [];
if (strict) {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    let size = parseFloat(getComputedStyle(el).fontSize);
    // Text in an SVG is shown at the scale of its drawing: count the size as displayed.
    const ctm = el instanceof SVGGraphicsElement ? el.getScreenCTM() : null;
    if (ctm) size *= Math.sqrt(Math.abs(ctm.a * ctm.d - ctm.b * ctm.c));
    if (size < minText - 0.01) tiny.push(`"${node.textContent.trim().slice(0, 40)}" ${size}px`);
  }
}
const failed = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
  .filter(e => e.responseStatus >= 400).map(e => `${e.responseStatus} ${e.name}`);
const wide = [...document.body.querySelectorAll('*')].filter(el => el.getBoundingClientRect().right > doc.clientWidth + 0.5
  && visible(el) && !el.closest('.scroll-x')).slice(0, 3).map(el => `${el.tagName.toLowerCase()}.${el.className}`);
return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, small: small.slice(0, 12), tiny: tiny.slice(0, 12),
        failed: failed, text: document.body.innerText, wide: wide};
"""

RAW_HTML = """
const done = arguments[arguments.length - 1];
fetch(location.href, {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('FETCH FAILED ' + e));
"""


def nested_forms(html: str) -> list[str]:
    """Forms opened inside another form, in the HTML as served (the browser silently drops them)."""
    html = re.sub(r"<script\b.*?</script>|<!--.*?-->", "", html, flags=re.S | re.I)
    depth, problems = 0, []
    for tag in re.finditer(r"<(/?)form\b[^>]*>", html, flags=re.I):
        if tag.group(1):
            depth = max(0, depth - 1)
        else:
            if depth:
                problems.append(tag.group(0)[:120])
            depth += 1
    return problems


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def audit_page(driver: Any, *, strict: bool) -> list[str]:
    """Problems of the page now shown; strict adds the operator-page rules (44 px targets, 14 px text)."""
    probe = driver.execute_script(PROBE, MIN_TARGET_PX, MIN_TEXT_PX, strict)
    problems = []
    if probe["scrollWidth"] > probe["clientWidth"]:
        problems.append(f"scrolls sideways ({probe['scrollWidth']} > {probe['clientWidth']} px): {probe['wide']}")
    if probe["small"]:
        problems.append(f"tap targets under {MIN_TARGET_PX} px: {probe['small']}")
    if probe["tiny"]:
        problems.append(f"text under {MIN_TEXT_PX} px: {probe['tiny']}")
    text = probe["text"]
    for allowed in ALLOWED:
        text = allowed.sub("", text)
    for pattern, what in FORBIDDEN:
        found = pattern.search(text)
        if found:
            start = max(0, found.start() - 40)
            problems.append(f"shows {what}: ...{text[start:found.end() + 40]!r}...")
    if probe["failed"]:
        problems.append(f"assets failed: {probe['failed']}")
    errors = console_errors(driver)
    if errors:
        problems.append(f"console errors: {errors}")
    nested = nested_forms(driver.execute_async_script(RAW_HTML))
    if nested:
        problems.append(f"forms nested in a form: {nested}")
    return problems


def shape(path: str) -> str:
    return re.sub(r"\d+", "{n}", path)


def _is_page(base: str, url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.netloc != urlsplit(base).netloc:
        return False
    return not (parts.path.startswith(SKIP_PATHS) or parts.path.endswith(SKIP_SUFFIXES))


def links(driver: Any) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href);")


def crawl(driver: Any, base: str, start: Iterable[str], *, limit: int = 80) -> Iterable[str]:
    """Yield each page reached by following links from the start paths (the driver shows it when yielded)."""
    queue = deque(urljoin(base, p) for p in start)
    seen_urls: set[str] = set()
    per_shape: dict[str, int] = {}
    visited = 0
    while queue and visited < limit:
        url = urlunsplit(urlsplit(url_ := queue.popleft())._replace(fragment=""))
        if url in seen_urls or not _is_page(base, url_):
            continue
        seen_urls.add(url)
        parts = urlsplit(url)
        key = shape(parts.path) + ("?" + re.sub(r"=[^&]*", "=", parts.query) if parts.query else "")
        if per_shape.get(key, 0) >= PER_SHAPE:
            continue
        per_shape[key] = per_shape.get(key, 0) + 1
        driver.get(url)
        visited += 1
        yield url
        queue.extend(links(driver))
