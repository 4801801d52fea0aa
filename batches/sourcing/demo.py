"""Demo data for `make run`: approved acceptance criteria and a few units in different states."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.audit import Actor, acting_as, audit_reason
from app.db import utcnow
from batches.sourcing import operations
from batches.sourcing.isbt128 import check_character
from batches.sourcing.models import (
    CRITERIA_APPROVED,
    MARKERS,
    STATUS_ACCEPTED,
    STATUS_QUARANTINE,
    CbuAcceptanceCriteria,
    CordBloodUnit,
)
from batches.sourcing.schemas import CordBloodUnitIntakeSchema

DEMO_UNITS = [  # DIN, TNC, HTLV result, status
    ("W123426000101", "1.8e9", "non_reactive", STATUS_ACCEPTED),
    ("W123426000102", "2.4e9", "non_reactive", STATUS_ACCEPTED),
    ("W123426000103", "1.2e9", "non_reactive", STATUS_QUARANTINE),
    ("W123426000104", "1.6e9", "reactive", STATUS_QUARANTINE),
    ("W123426000105", "2.1e9", "non_reactive", STATUS_ACCEPTED),
    ("W123426000106", "1.9e9", "non_reactive", STATUS_ACCEPTED),
    ("W123426000107", "2.6e9", "non_reactive", STATUS_ACCEPTED),
]


def create_demo_units(session: Any) -> None:
    """Idempotent: criteria version 1 and four units, only when no unit exists yet."""
    if session.execute(select(func.count()).select_from(CordBloodUnit)).scalar_one():
        return
    now = utcnow()
    with acting_as(Actor(None, "demo-data")), audit_reason(session, "demo data for evaluation"):
        if not session.execute(select(CbuAcceptanceCriteria)).first():
            criteria = operations.create_criteria_draft(session, {}, change_description="initial defaults (demo)")
            criteria.status = CRITERIA_APPROVED
            criteria.approved_at = now - timedelta(days=30)
            criteria.approved_by = "qa"
        for slot, (din, tnc, htlv, status) in enumerate(DEMO_UNITS, start=1):
            collected = (now - timedelta(days=400 + slot)).date()
            data = CordBloodUnitIntakeSchema().load({
                "din": din + check_character(din), "product_code": "S1362V00", "source_bank": "Demo Public Cord Blood Bank",
                "collection_date": collected.isoformat(), "maternal_sample_date": collected.isoformat(),
                "volume_ml": "25", "tnc_cells": tnc, "cd34_cells": "5.1e6", "viability_percent": "93", "abo_rh": "O+",
                "hla_a": "A*02:01, A*24:02", "hla_b": "B*07:02, B*44:02", "hla_drb1": "DRB1*15:01, DRB1*04:01",
                **{f"marker_{key}": "non_reactive" for key in MARKERS}, "marker_htlv": htlv,
                "shipper_temperature_c": "-182", "data_logger_reviewed": "yes",
                "seal_intact": "yes", "received_by": "operator", "received_at": (now - timedelta(days=2)).isoformat(),
                "storage_freezer": "LN2-01", "storage_rack": "1", "storage_box": "A", "storage_slot": str(slot)})
            unit = operations.receive_unit(session, data)
            unit.status = status  # demo shortcut: real units are moved by QA e-signatures
