"""When a dose will be available: batches in progress whose in-process total cell counts, fitted
log-linearly (ln cells = a + b x day), project enough viable cells by harvest; the projected harvest date
and a range from the fit's uncertainty (about 95%: +/- 2 standard errors of the prediction in log space).
The same projection made on completed batches from the counts before harvest, against their actual yield,
shows how far off it has been.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from batches.execution.models import Batch
from batches.execution.operations import current_entries
from batches.execution.overview import growth_curve

IN_PROGRESS = ("in_progress", "on_hold")
COMPLETED = ("completed", "in_review", "released")
DEFAULT_VIABILITY = 0.9
# Spread of ln(cells) used when fewer than three counts allow no estimate of it from the fit.
FALLBACK_LOG_SD = 0.35
HARVEST_ENTRY = "viable_cells_d14"


@dataclass
class Fit:
    intercept: float
    slope: float  # per day
    log_se: float  # standard error of a prediction at the harvest day, ln units
    points: int
    from_fit: bool


@dataclass
class Projection:
    batch_id: int
    lot_number: str
    product: str
    harvest_day: float
    harvest_at: datetime
    viable_cells: float
    low: float
    high: float
    points: int
    enough_for: int  # whole infusions of the asked dose the projected (low) harvest covers
    note: str


def fit_log_linear(points: list[tuple[float, float]], at_day: float) -> Fit | None:
    """Least squares of ln(value) on day; the prediction's standard error at at_day (t-free, 2-sided ~95%
    range taken as +/- 2 se). None without two counts on different days."""
    pts = [(d, math.log(v)) for d, v in points if v > 0]
    days = {d for d, _ in pts}
    if len(pts) < 2 or len(days) < 2:
        return None
    n = len(pts)
    mx = sum(d for d, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((d - mx) ** 2 for d, _ in pts)
    slope = sum((d - mx) * (y - my) for d, y in pts) / sxx
    intercept = my - slope * mx
    if n >= 3:
        resid = sum((y - intercept - slope * d) ** 2 for d, y in pts)
        s = math.sqrt(resid / (n - 2))
        se = s * math.sqrt(1 + 1 / n + (at_day - mx) ** 2 / sxx)
        return Fit(intercept, slope, max(se, 0.05), n, True)
    return Fit(intercept, slope, FALLBACK_LOG_SD * (1 + abs(at_day - mx) / 7), n, False)


def harvest_day(batch: Batch) -> float:
    expected = batch.recipe.spec.get("expected_growth") or []
    return max([float(p["day"]) for p in expected] + [14.0])


def _viability(curves: dict[str, list[Any]]) -> float:
    points = curves.get("viability") or []
    return points[-1].value / 100 if points else DEFAULT_VIABILITY


def project_batch(sess: Session, batch: Batch, *, before_day: float | None = None) -> Projection | None:
    """The projected viable cells at harvest of one batch, from its total cell counts (those before
    before_day only, to test the projection on a completed batch)."""
    curves = growth_curve(batch, current_entries(sess, batch))
    day = harvest_day(batch)
    counts = [(p.day, p.value) for p in curves.get("total_cells", []) if before_day is None or p.day < before_day]
    fit = fit_log_linear(counts, day)
    if fit is None:
        return None
    viability = _viability(curves)
    mid = math.exp(fit.intercept + fit.slope * day) * viability
    low, high = mid * math.exp(-2 * fit.log_se), mid * math.exp(2 * fit.log_se)
    note = (f"log-linear fit of {fit.points} counts" if fit.from_fit else
            f"{fit.points} counts only: the range is a fixed spread, not estimated from the fit")
    return Projection(batch.id, batch.lot_number, batch.product, day,
                      batch.started_at + timedelta(days=day), mid, low, high, fit.points, 0, note)


def projections(sess: Session, protocol: str, cells_per_infusion: float) -> list[Projection]:
    """Batches in progress of the protocol projected to cover at least one infusion (on the fit's middle
    value), soonest harvest first; enough_for counts infusions on the low end of the range."""
    out = []
    for batch in sess.execute(select(Batch).where(Batch.product == protocol, Batch.status.in_(IN_PROGRESS))
                              .order_by(Batch.started_at)).scalars():
        p = project_batch(sess, batch)
        if p is not None and p.viable_cells >= cells_per_infusion:
            p.enough_for = int(p.low // cells_per_infusion)
            out.append(p)
    out.sort(key=lambda p: p.harvest_at)
    return out


@dataclass
class Backtest:
    lot_number: str
    projected: float
    low: float
    high: float
    actual: float
    error_pct: float
    within_range: bool


def backtest(sess: Session, protocol: str | None = None, limit: int = 50) -> list[Backtest]:
    """For completed batches: the projection from the counts before harvest against the viable cells
    actually harvested."""
    stmt = select(Batch).where(Batch.status.in_(COMPLETED)).order_by(Batch.started_at.desc()).limit(limit)
    if protocol:
        stmt = stmt.where(Batch.product == protocol)
    out = []
    for batch in sess.execute(stmt).scalars():
        entries = current_entries(sess, batch)
        harvest = entries.get(HARVEST_ENTRY)
        if harvest is None or not harvest.value_number:
            continue
        p = project_batch(sess, batch, before_day=harvest_day(batch) - 0.5)
        if p is None:
            continue
        actual = harvest.value_number
        out.append(Backtest(batch.lot_number, p.viable_cells, p.low, p.high, actual,
                            100 * (p.viable_cells - actual) / actual, p.low <= actual <= p.high))
    return out


def backtest_summary(rows: list[Backtest]) -> dict[str, Any] | None:
    if not rows:
        return None
    errors = sorted(abs(r.error_pct) for r in rows)
    return {"batches": len(rows), "median_abs_error_pct": errors[len(errors) // 2],
            "max_abs_error_pct": errors[-1], "within_range": sum(r.within_range for r in rows)}
