"""Telemetry charts, drawn once: min/max band and mean line from the per-minute rollups (raw samples or
chunks only for windows too short for minute buckets), gaps in the data left as gaps, alarm periods and
monitoring gaps shaded and named, limits as labelled dashed lines. The asset page shows the Drawing as
inline SVG and the executed batch record places the same Drawing in its PDF."""
from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo
from typing import Sequence

from markupsafe import Markup
from reportlab.graphics.shapes import Drawing
from reportlab.pdfbase.pdfmetrics import stringWidth
from sqlalchemy.orm import Session

from app.charts import (FONT, SCREEN_FONT_SIZE, Chart, LegendItem, Tick, drawing_to_svg, drawing_to_svg_document,
                        value_ticks)
from app.web import format_number
from equipment.alarms import alarms_in_window
from equipment.models import Asset, Tag
from equipment.telemetry import US_PER_MINUTE, ChartPoint, chart_series, from_us, gaps_in_window, to_us

WIDTH, HEIGHT = 680, 360  # shown at this size or larger on the asset page (see equipment.css)
TAG_LIMITS = object()  # default for low/high: the tag's own alarm limits
Period = tuple[datetime, "datetime | None"]


def bucket_seconds(start: datetime, end: datetime, max_points: int) -> float:
    """The width of the buckets chart_series returns for this window: whole minutes once from rollups."""
    span = max(to_us(end) - to_us(start), 1)
    bucket_us = max(math.ceil(span / max(max_points, 1)), 1)
    if bucket_us >= US_PER_MINUTE:
        bucket_us = math.ceil(bucket_us / US_PER_MINUTE) * US_PER_MINUTE
    return bucket_us / 1e6


def points_for(width: float) -> int:
    """About one bucket per drawing unit of plot width: finer detail cannot be seen or printed."""
    return max(100, int(width))


def build_telemetry_chart(points: Sequence[ChartPoint], start: datetime, end: datetime, *, title: str, unit: str,
                          low: float | None, high: float | None, gaps: Sequence[Period] = (),
                          alarms: Sequence[Period] = (), bucket_s: float | None = None, zone: tzinfo | None = None,
                          width: float = WIDTH, height: float = HEIGHT,
                          font_size: float = SCREEN_FONT_SIZE) -> Drawing:
    """The chart from buckets already read, and the alarm and gap periods overlapping the window."""
    zone = zone or timezone.utc
    t0, t1 = to_us(start), max(to_us(end), to_us(start) + 1)
    values = [p.minimum for p in points] + [p.maximum for p in points]
    values += [v for v in (low, high) if v is not None]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 1, vmax + 1
    pad = (vmax - vmin) * 0.08
    y_ticks = value_ticks(vmin - pad, vmax + pad)
    vmin, vmax = min(vmin - pad, y_ticks[0].value), max(vmax + pad, y_ticks[-1].value)
    x_ticks = _time_ticks(t0, t1, zone, width, font_size)
    legend = [LegendItem("band", "minimum to maximum", "area"), LegendItem("mean", "mean")]
    if low is not None or high is not None:
        legend.append(LegendItem("limit", "limit"))
    if alarms:
        legend.append(LegendItem("alarm", f"alarm ({len(alarms)} in this period)", "area"))
    if gaps:
        legend.append(LegendItem("gap", f"monitoring gap ({len(gaps)} in this period)", "hatch"))
    zone_name = getattr(zone, "key", None) or str(zone)
    chart = Chart(width, height, x_range=(float(t0), float(t1)), y_range=(vmin, vmax), x_ticks=x_ticks,
                  y_ticks=y_ticks, x_caption=f"time ({zone_name})", y_caption=f"{title} ({unit})" if unit else title,
                  legend=legend, font_size=font_size, marks_lane=bool(alarms or gaps))
    for a_start, a_end in alarms:
        chart.period(float(to_us(a_start)), float(to_us(a_end or end)), "alarm", "alarm")
    for g_start, g_end in gaps:
        chart.period(float(to_us(g_start)), float(to_us(g_end or end)), "gap", "gap")
    for kind, limit in (("low", low), ("high", high)):
        if limit is not None:
            chart.limit(limit, f"{kind} limit {format_number(limit)} {unit}".rstrip())
    # split into runs wherever buckets are missing, so gaps in the data stay visible as gaps
    step = (bucket_s * 1e6) if bucket_s else _typical_step([to_us(p.at) for p in points])
    runs: list[list[ChartPoint]] = []
    last_us: int | None = None
    for point in points:
        us = to_us(point.at)
        if last_us is None or us - last_us > step * 2.5:
            runs.append([])
        runs[-1].append(point)
        last_us = us
    for run in runs:
        chart.band([(float(to_us(p.at)), p.maximum) for p in run], [(float(to_us(p.at)), p.minimum) for p in run])
    for run in runs:
        chart.line([(float(to_us(p.at)), p.mean) for p in run], "mean", width=1.5)
    if not points:
        chart.message("No data in this period")
    return chart.drawing


def telemetry_chart_drawing(sess: Session, asset: Asset, tag: Tag, start: datetime, end: datetime,
                            width: float = WIDTH, height: float = HEIGHT, *, low: object = TAG_LIMITS,
                            high: object = TAG_LIMITS, zone: tzinfo | None = None,
                            font_size: float = SCREEN_FONT_SIZE) -> Drawing:
    """One parameter of an asset over [start, end) as a reportlab Drawing (a flowable for PDFs).

    Reads at most one bucket per unit of plot width (rollups for any window of ten hours or more), the
    alarms of that parameter and the gaps of the asset or of that parameter. low/high default to the
    tag's alarm limits; pass None to draw no limit, or a number (e.g. the recipe's) to draw that one."""
    if tag.asset_id != asset.id:
        raise ValueError("That parameter belongs to other equipment.")
    max_points = points_for(width)
    points = chart_series(sess, tag.id, start, end, max_points=max_points)
    gaps = [(g.started_at, g.ended_at) for g in gaps_in_window(sess, asset.id, start, end)
            if g.tag_id in (None, tag.id)]
    alarms = [(a.raised_at, a.cleared_at) for a in alarms_in_window(sess, asset.id, start, end) if a.tag_id == tag.id]
    return build_telemetry_chart(
        points, start, end, title=f"{asset.code} {tag.parameter}", unit=tag.unit,
        low=tag.low_limit if low is TAG_LIMITS else low,  # type: ignore[arg-type]
        high=tag.high_limit if high is TAG_LIMITS else high,  # type: ignore[arg-type]
        gaps=gaps, alarms=alarms, bucket_s=bucket_seconds(start, end, max_points), zone=zone, width=width,
        height=height, font_size=font_size)


def telemetry_chart_drawings(sess: Session, asset: Asset, start: datetime, end: datetime, width: float = WIDTH,
                             height: float = HEIGHT, *, zone: tzinfo | None = None,
                             font_size: float = SCREEN_FONT_SIZE) -> list[tuple[Tag, Drawing]]:
    """A chart for each monitored parameter of the asset over the window (e.g. an occupancy), tags in order."""
    tags = sorted(asset.tags, key=lambda t: t.id)
    return [(tag, telemetry_chart_drawing(sess, asset, tag, start, end, width, height, zone=zone,
                                          font_size=font_size)) for tag in tags]


def chart_title(asset: Asset, tag: Tag) -> str:
    return f"Telemetry of {asset.code} {tag.parameter}: band minimum to maximum, line mean, with limits, alarms and gaps"


def telemetry_chart_svg(drawing: Drawing, asset: Asset, tag: Tag) -> Markup:
    """The chart as inline SVG for a page."""
    return drawing_to_svg(drawing, title=chart_title(asset, tag), css_class="chart telemetry-chart")


def telemetry_chart_svg_document(drawing: Drawing, asset: Asset, tag: Tag) -> str:
    """The chart as a standalone SVG file."""
    return drawing_to_svg_document(drawing, title=chart_title(asset, tag))


def _time_ticks(t0: int, t1: int, zone: tzinfo, width: float, font_size: float) -> list[Tick]:
    """Five evenly spaced times, written with the date when the window spans days."""
    span_s = (t1 - t0) / 1e6
    fmt = "%H:%M:%S" if span_s <= 600 else "%H:%M" if span_s <= 20 * 3600 else "%d %b %H:%M"
    count = 5
    sample = from_us(t0).astimezone(zone).strftime(fmt)
    while count > 2 and stringWidth(sample, FONT, font_size) * 1.4 * count > width:
        count -= 1
    ticks = []
    for i in range(count):
        us = t0 + (t1 - t0) * i // (count - 1)
        ticks.append(Tick(float(us), from_us(us).astimezone(zone).strftime(fmt)))
    return ticks


def _typical_step(times: list[int]) -> float:
    if len(times) < 2:
        return float("inf")
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    return float(steps[len(steps) // 2])
