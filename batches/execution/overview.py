"""What the batch page shows at a glance: where the batch is, what is due, open exceptions and
deviations, live equipment readings, the growth curve against the recipe's and the yield."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from batches.execution import operations as ops
from batches.execution.deviations import list_deviations
from batches.execution.exceptions import exceptions_of, occupancies_of
from batches.execution.growth_chart import build_growth_chart, growth_chart_svg
from batches.execution.limits import limits_text
from batches.execution.models import Batch, BatchStep, MaterialUsage, StepEntry
from batches.execution.recipes import entry_specs

CURVE_LABELS = {"total_cells": "Total cells", "viable_density": "Viable cell density (cells/mL)",
                "viability": "Viability (%)", "fold_expansion": "Fold expansion"}


@dataclass
class CurvePoint:
    day: float
    value: float
    key: str
    limit_class: str


def entry_view_rows(step: BatchStep, current: dict[str, StepEntry], history: list[StepEntry]) -> list[dict[str, Any]]:
    """One row per entry of the step: its definition, current value and earlier (corrected) values.

    current: the batch's live entries; history: every entry row of this step."""
    from batches.execution.limits import readable_formula

    labels = {key: spec["label"] for key, spec in entry_specs(step.batch.recipe).items()}
    rows = []
    for spec in step.spec["entries"]:
        rows.append({"spec": spec, "entry": current.get(spec["key"]), "limits": limits_text(spec),
                     "earlier": [e for e in history if e.entry_key == spec["key"] and e.is_voided],
                     "formula": readable_formula(spec["expression"], labels) if spec.get("expression") else None})
    return rows


def growth_curve(batch: Batch, current: dict[str, StepEntry]) -> dict[str, list[CurvePoint]]:
    """In-process results by metric, at the time elapsed since the batch started when each was recorded
    (not the step's planned day), to compare with the recipe's expected curve."""
    specs = entry_specs(batch.recipe)
    curves: dict[str, list[CurvePoint]] = {}
    for key, spec in specs.items():
        metric = spec.get("curve")
        entry = current.get(key)
        if metric and entry is not None and entry.value_number is not None:
            counted = entry.occurred_at or entry.recorded_at
            elapsed = max(0.0, (counted - batch.started_at).total_seconds() / 86400.0)
            curves.setdefault(metric, []).append(CurvePoint(round(elapsed, 2), entry.value_number, key,
                                                            entry.limit_class))
    for points in curves.values():
        points.sort(key=lambda p: p.day)
    return curves


def expected_growth(batch: Batch) -> list[tuple[float, float]]:
    """The recipe's expected curve: (day, total cells)."""
    return [(p["day"], p["total_cells"]) for p in batch.recipe.spec.get("expected_growth", [])]


def batch_overview(sess: Session, batch: Batch) -> dict[str, Any]:
    entries = ops.batch_entries(sess, batch)  # one query for the live values and every step's history
    current = ops.live_entries(entries)
    history: dict[int, list[StepEntry]] = {}
    for entry in entries:
        history.setdefault(entry.step_id, []).append(entry)
    spec = batch.recipe.spec
    upcoming = ops.next_step(batch)
    curves = growth_curve(batch, current)
    expected = expected_growth(batch)
    yield_entry = current.get(spec["yield_entry"])
    target = spec["target_yield_cells"]
    occupancies = occupancies_of(sess, batch)
    readings = []
    for occupancy in occupancies:
        if occupancy.ended_at is None:
            from equipment.operations import latest_readings

            readings.append({"occupancy": occupancy, "readings": latest_readings(sess, occupancy.asset_id)})
    all_exceptions = exceptions_of(sess, batch)
    deviations = list_deviations(sess, batch_id=batch.id)
    usages = list(sess.execute(select(MaterialUsage).where(MaterialUsage.batch_id == batch.id)
                               .order_by(MaterialUsage.id)).scalars())
    steps = []
    for step in batch.steps:
        steps.append({"step": step, "rows": entry_view_rows(step, current, history.get(step.id, [])),
                      "planned_start": ops.planned_start(step), "due_by": ops.due_by(step),
                      "late": step.status != "complete" and ops.is_late(step)})
    return {
        "next_step": upcoming,
        "next_due": ops.planned_start(upcoming) if upcoming else None,
        "next_due_by": ops.due_by(upcoming) if upcoming else None,
        "next_late": upcoming is not None and ops.is_late(upcoming),
        "done": sum(1 for s in batch.steps if s.status == "complete"),
        "total": len(batch.steps),
        "open_exceptions": [e for e in all_exceptions if e.reviewed_at is None],
        "exceptions": all_exceptions,
        "deviations": deviations,
        "open_deviations": [d for d in deviations if d.status == "open"],
        "equipment": readings,
        "occupancies": occupancies,
        "curves": curves,
        "curve_labels": CURVE_LABELS,
        "chart": growth_chart_svg(build_growth_chart(expected, curves.get("total_cells", []))),
        "expected": expected,
        "yield_actual": yield_entry.value_number if yield_entry else None,
        "yield_target": target,
        "yield_percent": (yield_entry.value_number / target * 100) if yield_entry and yield_entry.value_number else None,
        "usages": usages,
        "steps": steps,
    }
