"""The telemetry chart of an asset: drawn from the per-minute rollups for a 14-day window (never the raw
samples), with limits, alarms and gaps named in words, the same in the page's SVG and in a PDF."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import event, insert

from app.charts import drawing_strings, drawing_to_pdf
from app.db import utcnow
from equipment.chart import (points_for, telemetry_chart_drawing, telemetry_chart_drawings, telemetry_chart_svg,
                             telemetry_chart_svg_document)
from equipment.models import Alarm, TelemetryGap, TelemetryRollup
from equipment.telemetry import US_PER_MINUTE, to_us

DAYS = 14


def _fortnight(db_session, make_asset, make_tag):
    """An incubator with 14 days of per-minute rollups (no raw samples), one alarm and one gap."""
    asset = make_asset("CO2-INC-14")
    tag = make_tag(asset)
    end = utcnow().replace(second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    first = to_us(start) // US_PER_MINUTE
    rows = [{"tag_id": tag.id, "minute": first + m, "min_value": 36.8, "max_value": 37.2 + (0.9 if 9000 <= m < 9060 else 0),
             "mean_value": 37.0, "sample_count": 60}
            for m in range(DAYS * 1440) if not 4000 <= m < 4300]  # five hours without data
    db_session.execute(insert(TelemetryRollup), rows)
    raised = start + timedelta(minutes=9010)
    db_session.add(Alarm(asset_id=asset.id, tag_id=tag.id, parameter=tag.parameter, unit=tag.unit, limit_kind="high",
                         limit_value=38.0, excursion_started_at=raised, raised_at=raised,
                         cleared_at=raised + timedelta(minutes=50), peak_value=38.1, state="cleared"))
    db_session.add(TelemetryGap(asset_id=asset.id, tag_id=None, cause="connection_lost",
                                started_at=start + timedelta(minutes=4000), ended_at=start + timedelta(minutes=4300)))
    db_session.commit()
    return asset, tag, start, end


def test_a_fortnight_is_drawn_from_the_rollups_not_the_raw_samples(db_session, make_asset, make_tag):
    asset, tag, start, end = _fortnight(db_session, make_asset, make_tag)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.lower())

    bind = db_session.connection().engine
    event.listen(bind, "before_cursor_execute", seen)
    try:
        drawing = telemetry_chart_drawing(db_session, asset, tag, start, end)
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    assert any("telemetry_rollup" in s for s in statements)
    assert not any("telemetry_sample" in s or "telemetry_chunk" in s for s in statements), statements
    assert len(statements) <= 4  # buckets, gaps, alarms (and nothing per bucket or per sample)
    polygons = [n for n in drawing.contents if type(n).__name__ == "Polygon"]
    assert polygons  # the min-max band, from 20 160 rollups grouped to at most one bucket per unit of width
    assert sum(len(p.points) // 2 for p in polygons) <= 2 * points_for(680)
    words = drawing_strings(drawing)
    assert "No data in this period" not in words
    assert {"alarm", "gap", "alarm (1 in this period)", "monitoring gap (1 in this period)", "high limit 38 C",
            "low limit 36 C", "time (UTC)", "CO2-INC-14 Temperature (C)"} <= set(words)


def test_alarms_gaps_and_limits_are_in_the_page_svg_and_in_the_pdf_alike(db_session, make_asset, make_tag):
    asset, tag, start, end = _fortnight(db_session, make_asset, make_tag)
    drawing = telemetry_chart_drawing(db_session, asset, tag, start, end)
    svg = telemetry_chart_svg(drawing, asset, tag)
    pdf = PdfReader(io.BytesIO(drawing_to_pdf(drawing)))
    assert len(pdf.pages) == 1
    text = pdf.pages[0].extract_text()
    for word in drawing_strings(drawing):
        assert f">{word}<" in svg.replace("&#x27;", "'"), word
        assert word in text, word
    assert "Telemetry of CO2-INC-14 Temperature" in svg and 'role="img"' in svg
    assert telemetry_chart_svg_document(drawing, asset, tag).startswith("<?xml")


def test_limits_can_be_the_recipes_or_none_and_each_parameter_gets_its_chart(db_session, make_asset, make_tag):
    asset, tag, start, end = _fortnight(db_session, make_asset, make_tag)
    co2 = make_tag(asset, parameter="CO2", low=4.5, high=5.5, unit="%")
    words = drawing_strings(telemetry_chart_drawing(db_session, asset, tag, start, end, low=36.5, high=None))
    assert "low limit 36.5 C" in words and not any("high limit" in w for w in words)
    charts = telemetry_chart_drawings(db_session, asset, start, end, 480, 300, font_size=9)
    assert [t.id for t, _ in charts] == [tag.id, co2.id]
    co2_words = drawing_strings(charts[1][1])
    assert "No data in this period" in co2_words and "high limit 5.5 %" in co2_words
    assert "alarm (1 in this period)" not in co2_words  # the alarm was on the temperature
    assert "monitoring gap (1 in this period)" in co2_words  # the gap was of the whole asset
    other = make_asset("CO2-INC-15")
    with pytest.raises(ValueError):
        telemetry_chart_drawing(db_session, other, tag, start, end)
