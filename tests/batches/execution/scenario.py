"""A ready-to-use shop floor on an empty, migrated database: users with a known password, the seed
recipes, released material lots, calibrated equipment and batches in progress.

Used by the headless-browser test and by the benchmark, which run the app in a separate process."""
from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.audit import Actor, acting_as
from app.db import utcnow
from app.users import create_user

PASSWORD = "scenario-password-2026"
_sequence = itertools.count(200001)


def _intake(storage_slot: int) -> dict[str, Any]:
    from batches.sourcing import operations as sourcing
    from batches.sourcing.isbt128 import check_character

    din = f"G1234{utcnow():%y}{next(_sequence):06d}"
    today = utcnow().date()
    data = {
        "din": din + check_character(din), "product_code": "S1362V00", "source_bank": "Madrid Cord Blood Bank",
        "collection_date": (today - timedelta(days=200)).isoformat(), "volume_ml": "25.0", "tnc_cells": "1.5x10^9",
        "cd34_cells": "4.2e6", "viability_percent": "92", "abo_rh": "O+", "hla_a": "A*02:01, A*24:02",
        "hla_b": "B*07:02, B*44:02", "hla_drb1": "DRB1*15:01, DRB1*04:01",
        "maternal_sample_date": (today - timedelta(days=199)).isoformat(), "shipper_temperature_c": "-180",
        "data_logger_reviewed": "yes", "seal_intact": "yes", "received_at": (utcnow() - timedelta(hours=1)).isoformat(),
        "storage_freezer": "LN2-01", "storage_rack": "1", "storage_box": "S", "storage_slot": str(storage_slot),
        "received_by": "floor-op0",
    }
    data.update({f"marker_{key}": "non_reactive" for key in sourcing.MARKERS})
    return data


def build(sess: Session, *, batches: int = 1, operators: int = 2, car_batches: int = 0) -> dict[str, Any]:
    """Create the floor; returns user names and the ids of the batches and their equipment."""
    from batches.execution import operations as ops
    from batches.execution.demo import create_demo_data
    from batches.execution.models import Recipe
    from batches.sourcing import operations as sourcing
    from batches.sourcing.models import CRITERIA_APPROVED
    from batches.sourcing.schemas import CordBloodUnitIntakeSchema
    from equipment import operations as equipment

    with acting_as(Actor(None, "scenario")):
        users = {"supervisor": create_user(sess, username="floor-supervisor", full_name="Sam Supervisor",
                                           password=PASSWORD, roles=["supervisor", "operator"]),
                 "qa": create_user(sess, username="floor-qa", full_name="Quentin QA", password=PASSWORD, roles=["qa"]),
                 "qc": create_user(sess, username="floor-qc", full_name="Quinn QC", password=PASSWORD,
                                   roles=["qc_analyst"]),
                 "clinician": create_user(sess, username="floor-clinician", full_name="Chris Clinician",
                                          password=PASSWORD, roles=["clinician"]),
                 "pharmacist": create_user(sess, username="floor-pharmacist", full_name="Pat Pharmacist",
                                           password=PASSWORD, roles=["pharmacist"]),
                 "admin": create_user(sess, username="floor-admin", full_name="Alex Admin", password=PASSWORD,
                                      roles=["admin"])}
        for n in range(operators):
            users[f"operator{n}"] = create_user(sess, username=f"floor-op{n}", full_name=f"Operator {n}",
                                                password=PASSWORD, roles=["operator"])
        create_demo_data(sess)
        criteria = sourcing.create_criteria_draft(sess, {})
        criteria.status = CRITERIA_APPROVED
        criteria.approved_at = utcnow() - timedelta(days=30)
        criteria.approved_by = "scenario"
        sess.flush()
        msnk = sess.query(Recipe).filter_by(code="MSNK", status="approved").one()
        car = sess.query(Recipe).filter_by(code="NKG2D-CAR-NK", status="approved").one()
        qa = users["qa"]
        created = []
        for n in range(batches + car_batches):
            recipe = msnk if n < batches else car
            unit = sourcing.receive_unit(sess, CordBloodUnitIntakeSchema().load(_intake(n + 1)))
            for to in ("quarantine", "accepted"):
                sourcing.change_status(sess, unit, to, reason="scenario", username=qa.username, password=PASSWORD,
                                       current_user=qa)
            assets = {}
            for kind, prefix in (("biosafety_cabinet", "BSC"), ("co2_incubator", "INC"),
                                 ("rocking_bioreactor", "BR")):
                asset = equipment.create_asset(sess, code=f"{prefix}-{n:04d}", name=f"{prefix} {n}", asset_type=kind,
                                               location="Cleanroom B2")
                today = utcnow().date()
                equipment.record_service(sess, asset, kind="calibration", performed_on=today - timedelta(days=10),
                                         due_on=today + timedelta(days=180), result="pass", performed_by="Metrology")
                assets[prefix] = asset.code
            supervisor = users["supervisor"]
            with acting_as(Actor(supervisor.id, supervisor.username)):
                batch = ops.start_batch(sess, unit_id=unit.id, recipe_id=recipe.id, username=supervisor.username,
                                        password=PASSWORD, current_user=supervisor)
            created.append({"batch_id": batch.id, "lot_number": batch.lot_number, "recipe": recipe.code,
                            "cabinet": assets["BSC"],
                            "incubator": assets["INC"], "bioreactor": assets["BR"],
                            "steps": [s.id for s in batch.steps]})
        sess.flush()
    return {"password": PASSWORD, "users": {k: u.username for k, u in users.items()}, "batches": created}
