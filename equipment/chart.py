"""Server-side SVG telemetry charts: min/max band from rollups, mean line, gaps drawn as gaps, alarm
periods and limits shaded. No script, so it works under the strict CSP and on any tablet."""
from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Sequence

from equipment.telemetry import ChartPoint, from_us, to_us

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 960, 320, 64, 16, 16, 40


def render_svg(points: Sequence[ChartPoint], start: datetime, end: datetime, *, title: str, unit: str,
               low: float | None, high: float | None, gaps: Sequence[tuple[datetime, datetime | None]] = (),
               alarms: Sequence[tuple[datetime, datetime | None]] = (), bucket_hint_s: float | None = None,
               time_format: str = "%m-%d %H:%M", zone: object = None) -> str:
    t0, t1 = to_us(start), max(to_us(end), to_us(start) + 1)
    values = [p.minimum for p in points] + [p.maximum for p in points]
    values += [v for v in (low, high) if v is not None]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 1, vmax + 1
    pad = (vmax - vmin) * 0.08
    vmin, vmax = vmin - pad, vmax + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime | int) -> float:
        us = at if isinstance(at, int) else to_us(at)
        return LEFT + (min(max(us, t0), t1) - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        return TOP + (vmax - value) / (vmax - vmin) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" class="telemetry-chart">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#d0d4d9"/>']
    for a_start, a_end in alarms:
        x0, x1 = x(a_start), x(a_end or end)
        parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" '
                     f'fill="#fbe0de" opacity="0.8"><title>alarm</title></rect>')
    for g_start, g_end in gaps:
        x0, x1 = x(g_start), x(g_end or end)
        parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" '
                     f'fill="url(#hatch)" stroke="#5f6368" stroke-dasharray="3 3"><title>telemetry gap</title></rect>')
    parts.insert(1, '<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
                    'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f1f3f4"/>'
                    '<line x1="0" y1="0" x2="0" y2="8" stroke="#9aa0a6" stroke-width="2"/></pattern></defs>')
    for limit, label in ((low, "low"), (high, "high")):
        if limit is not None:
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
                         f'stroke="#b3261e" stroke-dasharray="6 4"><title>{label} limit {limit:g} {escape(unit)}</title></line>')
    # split into runs wherever buckets are missing, so gaps in the data stay visible as gaps
    step = _typical_step([to_us(p.at) for p in points]) if bucket_hint_s is None else bucket_hint_s * 1e6
    runs: list[list[ChartPoint]] = []
    last_us: int | None = None
    for point in points:
        us = to_us(point.at)
        if last_us is None or us - last_us > step * 2.5:
            runs.append([])
        runs[-1].append(point)
        last_us = us
    for run in runs:
        upper = " ".join(f"{x(p.at):.1f},{y(p.maximum):.1f}" for p in run)
        lower = " ".join(f"{x(p.at):.1f},{y(p.minimum):.1f}" for p in reversed(run))
        parts.append(f'<polygon points="{upper} {lower}" fill="#c6dafc" stroke="#8ab4f8" stroke-width="0.5"/>')
        mean = " ".join(f"{x(p.at):.1f},{y(p.mean):.1f}" for p in run)
        parts.append(f'<polyline points="{mean}" fill="none" stroke="#0b57d0" stroke-width="1.5"/>')
    for i in range(5):
        value = vmin + (vmax - vmin) * i / 4
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="12">{value:.4g}</text>')
    for i in range(5):
        us = t0 + (t1 - t0) * i // 4
        stamp = from_us(us)
        if zone is not None:
            stamp = stamp.astimezone(zone)  # type: ignore[arg-type]
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"  # keep the end labels inside
        parts.append(f'<text x="{x(us):.1f}" y="{HEIGHT - 14}" text-anchor="{anchor}" font-size="12">'
                     f'{escape(stamp.strftime(time_format))}</text>')
    parts.append(f'<text x="{LEFT}" y="{TOP - 3}" font-size="12">{escape(title)} ({escape(unit)})</text>')
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="16" fill="#5f6368">'
                     'No data in this period</text>')
    parts.append("</svg>")
    return "".join(parts)


def _typical_step(times: list[int]) -> float:
    if len(times) < 2:
        return float("inf")
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    return float(steps[len(steps) // 2])
