"""Factories for quality tests: the shipped specifications, and batches run through every step to
completion (which fills the bags)."""
from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any, Callable, Iterator
from unittest import mock

import pytest
from sqlalchemy import select

from app.audit import Actor, acting_as
from app.db import utcnow
from batches.execution import operations as ops
from batches.execution.models import Batch
from batches.quality.models import Specification
from batches.quality.specifications import install_seed_specifications
from tests.batches.execution.conftest import (  # noqa: F401  (fixtures re-exported for these tests)
    criteria,
    intake_data,
    make_accepted_unit,
    make_asset,
    make_batch,
    make_criteria,
    make_tag,
    make_unit,
    new_asset,
    people,
    qa_users,
    receiver,
    record,
    seed_recipes,
    sign,
    step_of,
    stock,
)

E = ops.EntryInput


@pytest.fixture()
def seed_specs(db_session: Any) -> dict[str, Specification]:
    """The shipped MsNK and NKG2D-CAR-NK specifications, approved: product -> specification."""
    with acting_as(Actor(None, "test")):
        install_seed_specifications(db_session)
    db_session.commit()
    return {s.product: s for s in db_session.execute(select(Specification).where(
        Specification.status == "approved")).scalars()}


def msnk_plan(stock: dict[str, str], assets: dict[str, Any], **fill: str) -> list[tuple[str, dict[str, Any]]]:
    added = (utcnow() - timedelta(hours=47, minutes=30)).isoformat()
    return [
        ("thaw", {"din_matches": "pass", "thaw_cabinet": assets["cabinet"].code, "bag_intact": "intact"}),
        ("mnc_isolation", {"gradient_lot": E(value=stock["FICOLL"], quantity="15"), "mnc_total_cells": "1.2x10^8",
                           "mnc_viability": "92"}),
        ("seeding", {"expansion_kit_lot": E(value=stock["NK-EXP-KIT"], quantity="1"),
                     "il2_lot": E(value=stock["IL2"], quantity="2"), "il15_lot": E(value=stock["IL15"], quantity="2"),
                     "seeded_cells": "5e7", "culture_incubator": assets["incubator"].code}),
        ("feed_day3", {"medium_lot_d3": E(value=stock["NK-MEDIUM"], quantity="100"), "vcd_d3": "5e5",
                       "viability_d3": "90", "total_cells_d3": "1.5E8"}),
        ("bioreactor_transfer", {"vcd_d7": "1e6", "viability_d7": "92", "total_cells_d7": "1e9",
                                 "bioreactor": assets["bioreactor"].code, "incubator_released": "released"}),
        ("feed_day11", {"medium_lot_d11": E(value=stock["NK-MEDIUM"], quantity="500"), "vcd_d11": "3e6",
                        "viability_d11": "93", "total_cells_d11": "5e9"}),
        ("harvest", {"total_cells_d14": "1.3x10^10", "viability_d14": "95", "purity_d14": "99",
                     "bioreactor_released": "released"}),
        ("mpb_start", {"mpb_lot": E(value=stock["MPB-SIA1"], quantity="5"), "mpb_concentration": "2.0",
                       "mpb_added_at": added}),
        ("mpb_stop", {"mpb_removed_at": utcnow().isoformat(), "cd22_ligand_pct": "99.5",
                      "viability_engineered": "90"}),
        ("formulation", {"formulation_buffer_lot": E(value=stock["FORM-BUFFER"], quantity="100"),
                         "final_viable_cells": "1.2e10", "bag_count": "4", "bag_volume_ml": "50", **fill}),
    ]


def car_plan(stock: dict[str, str], assets: dict[str, Any], **fill: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("thaw_seed", {"din_matches": "pass", "expansion_kit_lot": E(value=stock["NK-EXP-KIT"], quantity="1"),
                       "seeded_cells": "5.0x10^7", "seed_viability": "92",
                       "culture_incubator": assets["incubator"].code}),
        ("transduction", {"cells_at_transduction": "1e8", "vector_lot": E(value=stock["NKG2D-CAR-VECTOR"], quantity="2"),
                          "vector_titer": "2.5e8", "vector_volume_ml": "2",
                          "enhancer_lot": E(value=stock["TRANSDUCTION-ENHANCER"], quantity="1")}),
        ("car_check_day7", {"viability_d7": "90", "total_cells_d7": "8e8", "car_positive_pct": "45",
                            "vcn_sample_id": "VCN-2026-001"}),
        ("harvest", {"total_cells_d14": "1.2e10", "viability_d14": "92", "incubator_released": "released"}),
        ("formulation", {"formulation_buffer_lot": E(value=stock["FORM-BUFFER"], quantity="80"),
                         "final_viable_cells": "1.0e10", "bag_count": "3", **fill}),
    ]


@contextlib.contextmanager
def at_planned_time(step: Any) -> Iterator[None]:
    """Run the step as if the clock read its planned time (an hour into its window), so that a 14-day record
    made in a test is neither early nor late; the signatures keep the real time."""
    moment = ops.planned_start(step) + timedelta(hours=min(1, step.window_hours / 2))
    with mock.patch.object(ops, "utcnow", lambda: moment):
        yield


def run_plan(sess: Any, batch: Batch, plan: list[tuple[str, dict[str, Any]]], operator: Any, verifier: Any,
             stop_before: str | None = None) -> Batch:
    for key, values in plan:
        if key == stop_before:
            break
        step = step_of(batch, key)
        with at_planned_time(step):
            record(sess, step, operator, **values)
            sign(sess, step, operator)
            if step.requires_verification:
                sign(sess, step, verifier, "verified")
    sess.commit()
    return batch


@pytest.fixture()
def completed_batch(db_session: Any, make_batch: Callable[..., Batch], people: dict[str, Any], stock: dict[str, str],
                    new_asset: Callable[..., Any]) -> Callable[..., Batch]:
    """completed_batch("MSNK" | "NKG2D-CAR-NK", stop_before=None, **fill) -> a batch run through its steps
    by operator (performed) and operator2 (verified); complete unless stopped before a step."""

    def make(code: str = "MSNK", stop_before: str | None = None, operator: Any = None, verifier: Any = None,
             **fill: str) -> Batch:
        batch = make_batch(code)
        assets = {"cabinet": new_asset("biosafety_cabinet"), "incubator": new_asset("co2_incubator"),
                  "bioreactor": new_asset("rocking_bioreactor")}
        plan = msnk_plan(stock, assets, **fill) if code == "MSNK" else car_plan(stock, assets, **fill)
        return run_plan(db_session, batch, plan, operator or people["operator"], verifier or people["operator2"],
                        stop_before)

    return make


PASSING = {
    "MsNK": {"residual_cd3": "1.0e6", "endotoxin": "10", "gram_stain": "negative", "sterility": "no growth",
             "mycoplasma": "not detected", "potency": "45", "identity": "pass"},
    "NKG2D-CAR-NK": {"purity": "99.1", "residual_cd3": "8e5", "endotoxin": "7.5", "gram_stain": "negative",
                     "sterility": "no growth", "mycoplasma": "not detected", "potency": "38", "vcn": "2.1",
                     "rcl": "not detected", "identity": "pass"},
}


def complete_lot_testing(sess: Any, lot: Any, analyst: Any, reviewer: Any, skip: tuple[str, ...] = (),
                     review: bool = True) -> None:
    """Pull the in-process results, enter passing results for the other tests (but skip), review them all."""
    from batches.quality import results as res
    from tests.conftest import PASSWORD

    with acting_as(Actor(analyst.id, analyst.username)):
        res.pull_in_process_results(sess, lot)
        for key, value in PASSING[lot.product].items():
            if key not in skip:
                res.record_result(sess, lot, res.ResultInput(test_key=key, value=value))
    sess.commit()
    if review:
        with acting_as(Actor(reviewer.id, reviewer.username)):
            for result in res.results_of(sess, lot):
                if result.status == "recorded":
                    res.review_result(sess, result, username=reviewer.username, password=PASSWORD,
                                      current_user=reviewer)
        sess.commit()


