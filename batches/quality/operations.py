"""Final product units and quality lots: the bags a batch's fill step produces, their chain of identity,
quarantine until the lot's disposition allows their use, and the binding of each lot to the
specification version in force when its testing started.

Operations flush and never commit.
"""
from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ReasonRequired, ValidationFailed
from batches.execution.models import Batch, BatchStep
from batches.quality.models import (
    ISSUABLE_UNIT_STATUSES,
    UNIT_STATUS_FOR_LOT,
    FinalProductUnit,
    QualityLot,
)
from batches.quality.specifications import per_kg_limits, specification_in_force

LOCATION_MAX = FinalProductUnit.__table__.c.storage_location.type.length


# --- quality lots ---------------------------------------------------------------------------------

def lot_of_batch(sess: Session, batch: Batch) -> QualityLot | None:
    return sess.execute(select(QualityLot).where(QualityLot.batch_id == batch.id)).scalar_one_or_none()


def get_lot(sess: Session, lot_id: int) -> QualityLot:
    lot = sess.get(QualityLot, lot_id)
    if lot is None:
        raise NotFound(f"Lot {lot_id} does not exist.")
    return lot


def open_quality_lot(sess: Session, batch: Batch) -> QualityLot:
    """The batch's quality lot, made on first need; bound to the specification in force if there is one."""
    lot = lot_of_batch(sess, batch)
    if lot is None:
        lot = QualityLot(batch_id=batch.id, lot_number=batch.lot_number, product=batch.product, status="in_testing",
                         created_at=utcnow())
        lot.batch = batch
        sess.add(lot)
        sess.flush()
    if lot.specification_id is None and specification_in_force(sess, batch.product) is not None:
        start_lot_testing(sess, lot)
    return lot


def start_lot_testing(sess: Session, lot: QualityLot) -> QualityLot:
    """Testing starts: the lot is judged from now on against the specification version in force now, even
    if a later version is approved while it is tested; its per-kg limits are kept with it."""
    if lot.specification_id is not None:
        return lot
    spec = specification_in_force(sess, lot.product)
    if spec is None:
        raise Conflict(f"There is no approved specification for {lot.product}: QA must approve one before the "
                       f"testing of lot {lot.lot_number} can start.")
    lot.specification_id = spec.id
    lot.specification = spec
    lot.testing_started_at = utcnow()
    lot.per_kg_limits = json.dumps(per_kg_limits(spec), sort_keys=True)
    sess.flush()
    return lot


def list_lots(sess: Session, statuses: tuple[str, ...] | None = None) -> list[QualityLot]:
    stmt = select(QualityLot).order_by(QualityLot.created_at.desc(), QualityLot.id.desc())
    if statuses:
        stmt = stmt.where(QualityLot.status.in_(statuses))
    return list(sess.execute(stmt).scalars())


def apply_lot_status(sess: Session, lot: QualityLot, status: str, reason: str) -> None:
    """Change the lot's disposition state; its bags follow at once (quarantined, available, blocked ...)."""
    with audit_reason(sess, reason):
        lot.status = status
        for unit in units_of_batch(sess, lot.batch_id):
            target = UNIT_STATUS_FOR_LOT[status]
            if unit.status != target:
                unit.status = target
    sess.flush()


# --- final product units --------------------------------------------------------------------------

def product_identifier(batch: Batch, division: int) -> str:
    """ISBT 128 style: the batch's chain of identity (cord blood DIN and lot number) plus the division."""
    return f"{batch.cord_blood_din}-{batch.lot_number}-D{division:02d}"


def units_of_batch(sess: Session, batch_id: int, *, include_voided: bool = False) -> list[FinalProductUnit]:
    stmt = select(FinalProductUnit).where(FinalProductUnit.batch_id == batch_id)
    if not include_voided:
        stmt = stmt.where(FinalProductUnit.voided_at.is_(None))
    return list(sess.execute(stmt.order_by(FinalProductUnit.division)).scalars())


def units_of_cord_blood_unit(sess: Session, cord_blood_unit_id: int) -> list[FinalProductUnit]:
    """Every bag made from a cord blood unit, over all its batches (donor to product tracing)."""
    return list(sess.execute(select(FinalProductUnit).where(
        FinalProductUnit.cord_blood_unit_id == cord_blood_unit_id, FinalProductUnit.voided_at.is_(None))
        .order_by(FinalProductUnit.batch_id, FinalProductUnit.division)).scalars())


def get_unit(sess: Session, unit_id: int) -> FinalProductUnit:
    unit = sess.get(FinalProductUnit, unit_id)
    if unit is None:
        raise NotFound(f"Product unit {unit_id} does not exist.")
    return unit


def find_unit_by_scan(sess: Session, scanned: str) -> FinalProductUnit:
    """The bag whose product identifier was scanned or typed (a leading '=' data identifier is ignored)."""
    text = (scanned or "").strip().upper()
    if text.startswith("="):
        text = text[1:]
    if not text:
        raise ValidationFailed("Scan the product identifier on the bag.", errors={"identifier": ["Scan."]})
    unit = sess.execute(select(FinalProductUnit).where(
        func.upper(FinalProductUnit.product_identifier) == text)).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"No infusion bag has the product identifier {text}.")
    return unit


def _fill_values(sess: Session, batch: Batch) -> tuple[int, float, float | None]:
    from batches.execution.operations import current_entries

    entries = current_entries(sess, batch)
    count_entry, cells_entry = entries.get("bag_count"), entries.get("final_viable_cells")
    if count_entry is None or cells_entry is None or count_entry.value_number is None:
        raise ValidationFailed("The fill step needs the number of bags and the viable cells formulated.")
    count = count_entry.value_number
    if count != math.floor(count) or count < 1:
        raise ValidationFailed(f"The number of infusion bags must be a whole number; {count_entry.value_text} was "
                               "recorded. Correct it before signing.", errors={"bag_count": ["Whole number."]})
    volume = entries.get("bag_volume_ml")
    return int(count), float(cells_entry.value_number or 0.0), volume.value_number if volume is not None else None


def create_final_units(sess: Session, batch: Batch, fill_step: BatchStep) -> list[FinalProductUnit]:
    """The bags of the fill step, in quarantine; signing the fill step again after a correction voids the
    earlier bags (kept, with the reason) when their contents changed."""
    spec = batch.recipe.spec
    count, cells, volume = _fill_values(sess, batch)
    per_bag = cells / count
    existing = units_of_batch(sess, batch.id)
    if existing and len(existing) == count and all(u.viable_cells == per_bag and u.volume_ml == volume
                                                   for u in existing):
        return existing
    lot = open_quality_lot(sess, batch)
    if existing:
        if lot.status != "in_testing":
            raise Conflict(f"Lot {batch.lot_number} is {lot.status.replace('_', ' ')}: its bags cannot be refilled.")
        reason = "The fill step was corrected and signed again: these bags are replaced."
        with audit_reason(sess, reason):
            for unit in existing:
                unit.voided_at = utcnow()
                unit.voided_by = current_actor().username
                unit.void_reason = reason
    first = (sess.execute(select(func.max(FinalProductUnit.division)).where(
        FinalProductUnit.batch_id == batch.id)).scalar_one() or 0) + 1
    filled_at = fill_step.completed_at or utcnow()
    expires_at = filled_at + timedelta(hours=float(spec["shelf_life_hours"]))
    units = []
    for division in range(first, first + count):
        unit = FinalProductUnit(
            product_identifier=product_identifier(batch, division), batch_id=batch.id,
            cord_blood_unit_id=batch.cord_blood_unit_id, cord_blood_din=batch.cord_blood_din,
            lot_number=batch.lot_number, product=batch.product, division=division, volume_ml=volume,
            viable_cells=per_bag, viable_cells_source=f"formulated total / {count} bags", filled_at=filled_at,
            filled_by=current_actor().username, expires_at=expires_at,
            storage_condition=spec.get("storage_condition") or "as labelled",
            status=UNIT_STATUS_FOR_LOT[lot.status])
        sess.add(unit)
        units.append(unit)
    sess.flush()
    return units


def on_step_completed(step: BatchStep, sess: Session, **_: Any) -> None:
    """Receiver of batches.execution step_completed: the fill step makes the final product units."""
    spec = step.batch.recipe.spec
    if spec.get("fill_step") and step.step_key == spec["fill_step"]:
        create_final_units(sess, step.batch, step)


def record_storage_location(sess: Session, unit: FinalProductUnit, location: str, reason: str | None = None
                            ) -> FinalProductUnit:
    """Where the bag is stored; moving a stored bag needs a reason."""
    location = (location or "").strip()
    if not location:
        raise ValidationFailed("Enter or scan the storage location.", errors={"storage_location": ["Required."]})
    if len(location) > LOCATION_MAX:
        raise ValidationFailed(f"A storage location has at most {LOCATION_MAX} characters.",
                               errors={"storage_location": [f"At most {LOCATION_MAX} characters."]})
    if unit.voided_at is not None:
        raise Conflict(f"{unit.product_identifier} was replaced and is no longer a product unit.")
    if unit.storage_location and not (reason or "").strip():
        raise ReasonRequired("Moving a stored bag needs a reason.", errors={"reason": ["Why is it moved?"]})
    with audit_reason(sess, (reason or "").strip() or "storage location recorded"):
        unit.storage_location = location
    sess.flush()
    return unit


def unit_issue_problem(unit: FinalProductUnit) -> str | None:
    """Why a bag cannot be reserved or issued now (None if it can)."""
    if unit.voided_at is not None:
        return f"{unit.product_identifier} was replaced and is no longer a product unit."
    if unit.status not in ISSUABLE_UNIT_STATUSES:
        words = {"quarantined": "in quarantine until QA's disposition of the lot",
                 "blocked": "blocked: the lot is on recall", "for_destruction": "rejected and marked for destruction"}
        return f"{unit.product_identifier} is {words.get(unit.status, unit.status_label)}."
    if unit.expires_at <= utcnow():
        return f"{unit.product_identifier} expired."
    return None


def check_unit_issuable(unit: FinalProductUnit) -> None:
    """Refuse reserving or issuing a bag its lot's disposition does not allow."""
    problem = unit_issue_problem(unit)
    if problem:
        raise Conflict(problem)


def chain_of_identity(sess: Session, unit: FinalProductUnit) -> dict[str, Any]:
    """Bag -> batch -> cord blood unit, and back: every bag of the same unit."""
    from batches.sourcing.models import CordBloodUnit

    cbu = sess.get(CordBloodUnit, unit.cord_blood_unit_id)
    return {"unit": unit, "batch": unit.batch, "cord_blood_unit": cbu,
            "sibling_units": units_of_cord_blood_unit(sess, unit.cord_blood_unit_id)}
