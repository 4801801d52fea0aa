"""Demo data for `make run`: the seed recipes and a few released material lots (idempotent)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

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
