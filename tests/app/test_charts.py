"""The chart toolkit: one Drawing renders to inline SVG for pages (CSP-safe, labelled, readable on a
tablet) and into a PDF with the same words."""
from __future__ import annotations

import io
import re
from xml.dom import minidom

import pytest
from pypdf import PdfReader
from reportlab.graphics.shapes import String
from reportlab.lib.pagesizes import A4
from reportlab.platypus import SimpleDocTemplate

from app.charts import (SCREEN_FONT_SIZE, Chart, LegendItem, Tick, drawing_strings, drawing_to_pdf, drawing_to_svg,
                        drawing_to_svg_document, fit_width, nice_ticks, value_ticks)


def _chart() -> Chart:
    legend = [LegendItem("mean", "mean"), LegendItem("alarm", "alarm (1 in this period)", "area"),
              LegendItem("gap", "monitoring gap (1 in this period)", "hatch"), LegendItem("limit", "limit")]
    chart = Chart(680, 360, x_range=(0, 100), y_range=(30, 40), x_ticks=[Tick(0, "start"), Tick(100, "end")],
                  y_ticks=value_ticks(30, 40), x_caption="time (UTC)", y_caption="Temperature (C)", legend=legend,
                  marks_lane=True)
    chart.period(10, 20, "alarm", "alarm")
    chart.period(50, 60, "gap", "gap")
    chart.limit(38, "high limit 38 C")
    chart.line([(0, 35), (40, 36), (100, 37)], "mean")
    chart.marker(70, 36, "red")
    return chart


def _svg_texts(svg: str) -> list[str]:
    doc = minidom.parseString(svg)
    return ["".join(n.data for n in t.childNodes if n.nodeType == n.TEXT_NODE) for t in doc.getElementsByTagName("text")]


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_the_same_drawing_says_the_same_words_in_the_svg_and_in_the_pdf():
    drawing = _chart().drawing
    words = drawing_strings(drawing)
    assert {"time (UTC)", "Temperature (C)", "alarm", "gap", "high limit 38 C", "alarm (1 in this period)",
            "monitoring gap (1 in this period)", "start", "end"} <= set(words)
    svg = drawing_to_svg(drawing, title="Telemetry")
    assert _svg_texts(svg) == words
    text = _pdf_text(drawing_to_pdf(drawing))
    for word in words:
        assert word in text, (word, text)


def test_the_drawing_is_a_flowable_that_a_pdf_document_places():
    drawing = _chart().drawing
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4).build([fit_width(drawing, 450)])
    text = _pdf_text(out.getvalue())
    for word in ("alarm (1 in this period)", "monitoring gap (1 in this period)", "high limit 38 C", "time (UTC)"):
        assert word in text


def test_inline_svg_is_labelled_csp_safe_and_unique_on_the_page():
    drawing = _chart().drawing
    first = drawing_to_svg(drawing, title="Growth <curve> & more", description="two lines")
    second = drawing_to_svg(drawing, title="again")
    assert first.startswith("<svg") and "<?xml" not in first and "DOCTYPE" not in first
    assert "style=" not in first  # the pages' CSP (style-src 'self') would drop inline styles
    assert 'role="img"' in first and "Growth &lt;curve&gt; &amp; more" in first and "<desc" in first
    root = minidom.parseString(first).documentElement
    assert root.getAttribute("aria-labelledby") and root.getAttribute("width") == "680"
    ids = set(re.findall(r'id="([^"]+)"', first))
    assert ids and not ids & set(re.findall(r'id="([^"]+)"', second))  # two charts on one page never clash
    assert re.search(r'="None"', first) is None
    assert drawing_to_svg_document(drawing, title="t").startswith("<?xml")


def test_every_text_is_at_least_the_screen_floor_and_inside_the_drawing():
    drawing = _chart().drawing
    strings = []

    def walk(node):
        if isinstance(node, String):
            strings.append(node)
        for child in getattr(node, "contents", []) or []:
            walk(child)

    walk(drawing)
    assert strings and all(s.fontSize >= SCREEN_FONT_SIZE for s in strings)
    for s in strings:
        x0, y0, x1, y1 = s.getBounds()
        assert x0 >= -0.01 and x1 <= drawing.width + 0.01 and y0 >= -0.01 and y1 <= drawing.height + 0.01, s.text
    svg = drawing_to_svg(drawing, title="t")
    assert set(re.findall(r'font-size="([\d.]+)px"', svg)) == {"14"}


def test_ticks_are_round_numbers_and_a_chart_too_small_for_its_text_is_refused():
    assert nice_ticks(36.0, 38.0) == [36.0, 36.5, 37.0, 37.5, 38.0]
    assert nice_ticks(0, 1e6) == [0, 250000, 500000, 750000, 1000000]
    assert [t.label for t in value_ticks(0, 1e6)][-1] == "1 x 10^6"  # the one number formatter, never 1e+06
    with pytest.raises(ValueError, match="too small"):
        Chart(60, 40, x_range=(0, 1), y_range=(0, 1), x_ticks=[], y_ticks=[], x_caption="x", y_caption="y")
