"""The growth curve of a batch, drawn once: total cells (log scale) at the time elapsed since the start,
against the recipe's expected curve. The batch page shows it as inline SVG and the executed batch record
places the same Drawing in its PDF."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from markupsafe import Markup
from reportlab.graphics.shapes import Drawing
from sqlalchemy.orm import Session

from app.charts import SCREEN_FONT_SIZE, Chart, LegendItem, Tick, drawing_to_svg, power_ticks

if TYPE_CHECKING:
    from batches.execution.models import Batch
    from batches.execution.overview import CurvePoint

WIDTH, HEIGHT = 680, 400  # shown at this size or larger on the batch page (see execution.css)
TITLE = "Growth curve: total cells against days since the batch started, actual against expected"
CLASS_WORDS = {"green": "within limits", "none": "within limits", "amber": "outside the alert limit",
               "red": "outside the action limit"}


def build_growth_chart(expected: Sequence[tuple[float, float]], actual: Sequence["CurvePoint"],
                       width: float = WIDTH, height: float = HEIGHT,
                       font_size: float = SCREEN_FONT_SIZE) -> Drawing | None:
    """The chart from the expected curve (day, total cells) and the counted points; None with nothing to draw."""
    expected = [(d, v) for d, v in expected if v > 0]
    points = [p for p in actual if p.value > 0]
    values = [v for _, v in expected] + [p.value for p in points]
    if not values:
        return None
    lo = math.floor(math.log10(min(values)))
    hi = math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    max_day = max([d for d, _ in expected] + [p.day for p in points] + [14.0])
    x_ticks = [Tick(float(d), f"{d:g}") for d in range(0, int(max_day) + 1, 2)]
    legend = [LegendItem("expected", "expected (recipe)"), LegendItem("actual", "actual total cells")]
    classes = {_style(p) for p in points}
    for style in ("green", "amber", "red"):
        if style in classes:
            legend.append(LegendItem(style, f"count {CLASS_WORDS[style]}",
                                     swatch={"green": "circle", "amber": "triangle", "red": "square"}[style]))
    chart = Chart(width, height, x_range=(0.0, max_day), y_range=(10.0 ** lo, 10.0 ** hi), x_ticks=x_ticks,
                  y_ticks=power_ticks(lo, hi), x_caption="days since the batch started",
                  y_caption="total cells (log scale)", legend=legend, log_y=True, font_size=font_size)
    chart.line(expected, "expected", width=2)
    chart.line([(p.day, p.value) for p in points], "actual", width=3)
    for p in points:
        chart.marker(p.day, p.value, _style(p))
    return chart.drawing


def _style(point: "CurvePoint") -> str:
    return point.limit_class if point.limit_class in ("amber", "red") else "green"


def growth_chart_drawing(sess: Session, batch: "Batch", width: float = WIDTH, height: float = HEIGHT,
                         font_size: float = SCREEN_FONT_SIZE) -> Drawing | None:
    """The batch's growth chart as a reportlab Drawing (a flowable for PDFs); None before any count."""
    from batches.execution import operations as ops
    from batches.execution.overview import expected_growth, growth_curve

    curves = growth_curve(batch, ops.current_entries(sess, batch))
    return build_growth_chart(expected_growth(batch), curves.get("total_cells", []), width, height, font_size)


def growth_chart_svg(drawing: Drawing | None) -> Markup | None:
    """The growth chart as inline SVG for the batch page."""
    if drawing is None:
        return None
    return drawing_to_svg(drawing, title=TITLE, css_class="chart growth-chart")
