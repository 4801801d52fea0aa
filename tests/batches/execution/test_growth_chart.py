"""The growth curve, drawn once: the batch page's inline SVG and the PDF placing the same Drawing show the
counts at the time elapsed since the start against the recipe's expected curve, in the same words."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader

from app.audit import audit_reason
from app.charts import drawing_strings, drawing_to_pdf
from batches.execution import operations as ops
from batches.execution.growth_chart import build_growth_chart, growth_chart_drawing, growth_chart_svg
from batches.execution.overview import CurvePoint
from tests.batches.execution.conftest import record, step_of
from tests.batches.execution.test_shop_floor import _complete_steps_before

EXPECTED = [(0.0, 5e7), (3.0, 1.5e8), (7.0, 1e9), (11.0, 5e9), (14.0, 1.2e10)]


def _counted_batch(db_session, make_batch, people):
    batch = make_batch("MSNK")
    with audit_reason(db_session, "test: the batch started two days ago"):
        batch.started_at = ops.utcnow() - timedelta(days=2)
        db_session.flush()
    _complete_steps_before(db_session, batch, "feed_day3")
    record(db_session, step_of(batch, "feed_day3"), people["operator"], reason="Counted a day early",
           total_cells_d3="1.5e8")
    db_session.commit()
    return batch


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_the_batch_growth_chart_is_the_same_on_the_page_and_in_the_pdf(db_session, make_batch, people, client,
                                                                        login):
    batch = _counted_batch(db_session, make_batch, people)
    drawing = growth_chart_drawing(db_session, batch)
    words = drawing_strings(drawing)
    assert {"days since the batch started", "total cells (log scale)", "expected (recipe)", "actual total cells",
            "count within limits", "10^7", "10^10", "0", "14"} <= set(words)
    assert not any("e+" in w for w in words)
    text = _pdf_text(drawing_to_pdf(drawing))
    for word in words:
        assert word in text, word
    login(people["supervisor"])
    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert "growth-chart" in chart and 'role="img"' in chart and "style=" not in chart
    for word in words:
        assert f">{word}<" in chart, word
    # the one count sits at day 2 (elapsed time), between the ticks at day 2 of the x axis
    [point] = [n for n in drawing.contents if type(n).__name__ == "Polygon"]
    day2 = next(n for n in drawing.contents if type(n).__name__ == "String" and n.text == "2")
    assert abs((min(point.points[0::2]) + max(point.points[0::2])) / 2 - (day2.x + day2.getBounds()[2]) / 2) < 3


def test_counts_outside_limits_are_named_in_words_not_colour_only():
    points = [CurvePoint(3.0, 1.4e8, "total_cells_d3", "green"), CurvePoint(7.1, 4e8, "total_cells_d7", "amber"),
              CurvePoint(11.0, 1e9, "total_cells_d11", "red")]
    drawing = build_growth_chart(EXPECTED, points)
    words = drawing_strings(drawing)
    assert {"count within limits", "count outside the alert limit", "count outside the action limit"} <= set(words)
    shapes = [type(n).__name__ for n in drawing.contents[-3:]]
    assert shapes == ["Polygon", "Polygon", "Rect"]  # circle, triangle, square: the shape says it too
    assert len(drawing.contents[-2].points) == 6 and len(drawing.contents[-3].points) > 6
    text = _pdf_text(drawing_to_pdf(drawing))
    assert "count outside the action limit" in text and "count outside the alert limit" in text
    only_green = drawing_strings(build_growth_chart(EXPECTED, points[:1]))
    assert "count outside the alert limit" not in only_green


def test_no_chart_before_anything_to_draw_and_a_printed_size_keeps_its_words():
    assert build_growth_chart([], []) is None and growth_chart_svg(None) is None
    small = build_growth_chart(EXPECTED, [], width=460, height=280, font_size=9)
    assert "expected (recipe)" in drawing_strings(small) and "actual total cells" in drawing_strings(small)
    with pytest.raises(ValueError):
        build_growth_chart(EXPECTED, [], width=100, height=60)
