"""Demo data for `make run`: the seed recipes, a few released material lots, and two signed MsNK batches."""
from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any, Iterator
from unittest import mock

from sqlalchemy import func, select

from app.audit import Actor, acting_as
from app.db import utcnow
from batches.execution.materials import create_material, receive_lot
from batches.execution.models import Material
from batches.execution.recipes import install_seed_recipes

DEMO_CABINET = "BSC-01"
DEMO_MATERIALS = [
    ("FICOLL", "Density gradient medium", "mL"),
    ("NK-EXP-KIT", "NK cell expansion kit", "kit"),
    ("IL2", "Interleukin-2, GMP grade", "vial"),
    ("IL15", "Interleukin-15, GMP grade", "vial"),
    ("NK-MEDIUM", "NK expansion medium", "mL"),
    ("MPB-SIA1", "MPB-sia1 glyco-engineering reagent", "mL"),
    ("FORM-BUFFER", "Formulation buffer", "mL"),
    ("NKG2D-CAR-VECTOR", "NKG2D-CAR viral vector", "mL"),
    ("TRANSDUCTION-ENHANCER", "Transduction enhancer", "mL"),
]


def create_demo_data(sess: Any) -> None:
    with acting_as(Actor(None, "demo-data")):
        install_seed_recipes(sess)
        today = utcnow().date()
        for code, name, unit in DEMO_MATERIALS:
            if sess.execute(select(Material).where(Material.code == code)).scalar_one_or_none():
                continue
            material = create_material(sess, code=code, name=name, unit=unit)
            receive_lot(sess, material, lot_number=f"{code}-DEMO-01", expiry_date=today + timedelta(days=365),
                        quantity=1000, supplier="Demo supplier", qc_status="released")
            receive_lot(sess, material, lot_number=f"{code}-DEMO-OLD", expiry_date=today - timedelta(days=3),
                        quantity=100, supplier="Demo supplier", qc_status="released")
        _demo_biosafety_cabinet(sess, today)
        sess.flush()


def _demo_biosafety_cabinet(sess: Any, today: Any) -> None:
    """The cabinet the first MsNK step is done in (not on the OPC UA simulator: it has no live values)."""
    from equipment import operations as equipment

    if equipment.find_asset(sess, DEMO_CABINET) is not None:
        return
    cabinet = equipment.create_asset(sess, code=DEMO_CABINET, name="Class II biosafety cabinet 1",
                                     asset_type="biosafety_cabinet", location="Cleanroom B2")
    equipment.record_service(sess, cabinet, kind="calibration", performed_on=today - timedelta(days=30),
                             due_on=today + timedelta(days=335), result="pass", performed_by="Metrology Services",
                             certificate_ref=f"CAL-{DEMO_CABINET}-{today.year}")


# --- two demo batches, e-signed by the demo users (once: only while the demo supervisor started none) -----

DEMO_BATCH_USERS = ("supervisor", "operator", "operator2")
IN_PROGRESS_DAY = 7  # the running batch is at its day-7 step: everything planned before day 7 is done
DEMO_BATCH_LOT = "DEMO-02"  # the demo batches use their own material lots: the -DEMO-01 lots stay full for yours
IN_REVIEW_DAYS = 17  # the batch sent to QA was started this many days ago and run to formulation (day 16)


def _msnk_plan(started: Any, incubator: str) -> list[tuple[str, dict[str, Any]]]:
    from batches.execution.operations import EntryInput as E

    lot = {code: f"{code}-{DEMO_BATCH_LOT}" for code, _, _ in DEMO_MATERIALS}
    added = started + timedelta(days=14, minutes=50)  # the steps are recorded an hour into their window
    return [
        ("thaw", {"din_matches": "pass", "thaw_cabinet": DEMO_CABINET, "bag_intact": "intact"}),
        ("mnc_isolation", {"gradient_lot": E(value=lot["FICOLL"], quantity="15"), "mnc_total_cells": "1.2x10^8",
                           "mnc_viability": "92"}),
        ("seeding", {"expansion_kit_lot": E(value=lot["NK-EXP-KIT"], quantity="1"),
                     "il2_lot": E(value=lot["IL2"], quantity="2"), "il15_lot": E(value=lot["IL15"], quantity="2"),
                     "seeded_cells": "5e7", "culture_incubator": incubator}),
        ("feed_day3", {"medium_lot_d3": E(value=lot["NK-MEDIUM"], quantity="100"), "vcd_d3": "5e5",
                       "viability_d3": "90", "total_cells_d3": "1.5E8"}),
        ("bioreactor_transfer", {"vcd_d7": "1e6", "viability_d7": "92", "total_cells_d7": "1e9",
                                 "bioreactor": "BR-ROCK-01", "incubator_released": "released"}),
        ("feed_day11", {"medium_lot_d11": E(value=lot["NK-MEDIUM"], quantity="500"), "vcd_d11": "3e6",
                        "viability_d11": "93", "total_cells_d11": "5e9"}),
        ("harvest", {"total_cells_d14": "1.3x10^10", "viability_d14": "95", "purity_d14": "99",
                     "bioreactor_released": "released"}),
        ("mpb_start", {"mpb_lot": E(value=lot["MPB-SIA1"], quantity="5"), "mpb_concentration": "2.0",
                       "mpb_added_at": added.isoformat()}),
        ("mpb_stop", {"mpb_removed_at": (added + timedelta(hours=47, minutes=40)).isoformat(),
                      "cd22_ligand_pct": "99.5", "viability_engineered": "90"}),
        ("formulation", {"formulation_buffer_lot": E(value=lot["FORM-BUFFER"], quantity="100"),
                         "final_viable_cells": "1.2e10", "bag_count": "4", "bag_volume_ml": "50"}),
    ]


@contextlib.contextmanager
def _clock_at(moment: Any) -> Iterator[None]:
    """The batch operations read the clock as `moment` (the step's planned time); signatures and audit
    entries keep the real time."""
    from batches.execution import operations as ops

    with mock.patch.object(ops, "utcnow", lambda: moment):
        yield


def _run_batch(sess: Any, users: dict[str, Any], passwords: dict[str, str], unit: Any, recipe: Any, *,
               started: Any, incubator: str, stop_at_day: float | None) -> Any:
    from batches.execution import operations as ops

    supervisor, operator, verifier = (users[name] for name in DEMO_BATCH_USERS)
    with _clock_at(started), acting_as(Actor(supervisor.id, supervisor.username)):
        batch = ops.start_batch(sess, unit_id=unit.id, recipe_id=recipe.id, username=supervisor.username,
                                password=passwords[supervisor.username], current_user=supervisor,
                                comment="demo batch")
    steps = {step.step_key: step for step in batch.steps}
    for key, values in _msnk_plan(started, incubator):
        step = steps[key]
        if stop_at_day is not None and step.planned_day >= stop_at_day:
            break
        moment = ops.planned_start(step) + timedelta(hours=min(1, step.window_hours / 2))
        inputs = {k: v if isinstance(v, ops.EntryInput) else ops.EntryInput(value=str(v)) for k, v in values.items()}
        with _clock_at(moment):
            with acting_as(Actor(operator.id, operator.username)):
                ops.record_entries(sess, step, operator, inputs, expected_version=step.row_version)
                ops.sign_step(sess, step, meaning="performed", username=operator.username,
                              password=passwords[operator.username], current_user=operator,
                              expected_version=step.row_version)
            if step.requires_verification:
                with acting_as(Actor(verifier.id, verifier.username)):
                    ops.sign_step(sess, step, meaning="verified", username=verifier.username,
                                  password=passwords[verifier.username], current_user=verifier,
                                  expected_version=step.row_version)
    return batch


def create_demo_batches(sess: Any, passwords: dict[str, str]) -> None:
    """An MsNK batch at day 7 (steps before day 7 done) and one run to formulation and sent to QA review,
    each step at its planned time, performed by operator and verified by operator2, started and submitted by
    the supervisor: all with e-signatures. Only while the demo supervisor has started no batch and the demo
    passwords are known."""
    from app.users import User
    from batches.execution import operations as ops
    from batches.execution.models import Batch, Recipe
    from batches.sourcing.models import STATUS_ACCEPTED, CordBloodUnit

    started = select(func.count()).select_from(Batch).where(Batch.started_by == DEMO_BATCH_USERS[0])
    if sess.execute(started).scalar_one():
        return  # made by an earlier run (or the demo supervisor already started batches)
    if any(name not in passwords for name in DEMO_BATCH_USERS):
        return
    users = {u.username: u for u in sess.execute(select(User).where(User.username.in_(DEMO_BATCH_USERS))).scalars()}
    recipe = sess.execute(select(Recipe).where(Recipe.code == "MSNK", Recipe.status == "approved")
                          .order_by(Recipe.version.desc())).scalars().first()
    units = list(sess.execute(select(CordBloodUnit).where(CordBloodUnit.status == STATUS_ACCEPTED,
                                                          CordBloodUnit.batch_lot_number.is_(None))
                              .order_by(CordBloodUnit.id).limit(2)).scalars())
    if len(users) < len(DEMO_BATCH_USERS) or recipe is None or len(units) < 2:
        return
    now = utcnow()
    with acting_as(Actor(None, "demo-data")):
        for material in sess.execute(select(Material).where(Material.code.in_([c for c, _, _ in DEMO_MATERIALS]))
                                     ).scalars():
            receive_lot(sess, material, lot_number=f"{material.code}-{DEMO_BATCH_LOT}", quantity=1000,
                        expiry_date=now.date() + timedelta(days=365), supplier="Demo supplier", qc_status="released")
    reviewed = _run_batch(sess, users, passwords, units[0], recipe, started=now - timedelta(days=IN_REVIEW_DAYS),
                          incubator="CO2-INC-01", stop_at_day=None)
    supervisor = users["supervisor"]
    with acting_as(Actor(supervisor.id, supervisor.username)):
        ops.submit_batch_for_review(sess, reviewed, expected_version=reviewed.row_version,
                                    username=supervisor.username, password=passwords[supervisor.username],
                                    current_user=supervisor, comment="demo batch record for QA review")
    _run_batch(sess, users, passwords, units[1], recipe, started=now - timedelta(days=IN_PROGRESS_DAY, hours=1),
               incubator="CO2-INC-02", stop_at_day=IN_PROGRESS_DAY)
    sess.flush()
