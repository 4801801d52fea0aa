"""Materials inventory: materials, received lots with expiry and QC status, and scanning a lot into a
batch (expired, quarantined or rejected lots are refused)."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import audit_reason
from app.db import utcnow
from app.errors import Conflict, NotFound, ReasonRequired, ValidationFailed
from app.schemas import identifier_problem
from batches.execution.models import QC_STATUSES, Material, MaterialLot


def list_materials(sess: Session) -> list[Material]:
    return list(sess.execute(select(Material).order_by(Material.code)).scalars())


def list_lots(sess: Session) -> list[MaterialLot]:
    return list(sess.execute(select(MaterialLot).join(Material)
                             .order_by(Material.code, MaterialLot.expiry_date)).scalars())


def get_material_by_code(sess: Session, code: str) -> Material:
    material = sess.execute(select(Material).where(Material.code == code.strip().upper())).scalar_one_or_none()
    if material is None:
        raise NotFound(f"No material with code {code!r}.")
    return material


def get_lot(sess: Session, lot_id: int) -> MaterialLot:
    lot = sess.get(MaterialLot, lot_id)
    if lot is None:
        raise NotFound(f"Material lot {lot_id} does not exist.")
    return lot


def _check_lengths(errors: dict[str, list[str]], model: type, values: dict[str, str | None]) -> None:
    """A value longer than its column is refused in words (PostgreSQL would refuse it with a server error)."""
    for field, value in values.items():
        limit = model.__table__.c[field].type.length
        if value and len(value) > limit and field not in errors:
            errors[field] = [f"At most {limit} characters."]


def create_material(sess: Session, *, code: str, name: str, unit: str) -> Material:
    code = (code or "").strip().upper()
    errors: dict[str, list[str]] = {}
    if not code:
        errors["code"] = ["Enter the material code."]
    elif problem := identifier_problem(code, "material code"):
        errors["code"] = [problem]
    if not (name or "").strip():
        errors["name"] = ["Enter the material name."]
    if not (unit or "").strip():
        errors["unit"] = ["Enter the unit the quantity is counted in (mL, vial, ...)."]
    _check_lengths(errors, Material, {"code": code, "name": (name or "").strip(), "unit": (unit or "").strip()})
    if errors:
        raise ValidationFailed("Please complete the material.", errors=errors)
    if sess.execute(select(Material.id).where(Material.code == code)).first():
        raise Conflict(f"A material with code {code} already exists.", errors={"code": ["Already exists."]})
    material = Material(code=code, name=name.strip(), unit=unit.strip(), created_at=utcnow())
    sess.add(material)
    sess.flush()
    return material


def receive_lot(sess: Session, material: Material, *, lot_number: str, expiry_date: date | None,
                quantity: float | None, supplier: str | None = None, qc_status: str = "quarantined") -> MaterialLot:
    """Receive a lot; it stays quarantined until QC releases it."""
    lot_number = (lot_number or "").strip()
    supplier = (supplier or "").strip() or None
    errors: dict[str, list[str]] = {}
    if not lot_number:
        errors["lot_number"] = ["Enter or scan the lot number."]
    elif problem := identifier_problem(lot_number, "lot number"):
        errors["lot_number"] = [problem]
    if expiry_date is None:
        errors["expiry_date"] = ["Enter the expiry date."]
    if quantity is None or quantity <= 0:
        errors["quantity"] = ["Enter the quantity received (more than 0)."]
    if qc_status not in QC_STATUSES:
        errors["qc_status"] = [f"One of {', '.join(QC_STATUSES)}."]
    _check_lengths(errors, MaterialLot, {"lot_number": lot_number, "supplier": supplier})
    if errors:
        raise ValidationFailed("Please complete the lot.", errors=errors)
    if sess.execute(select(MaterialLot.id).where(MaterialLot.material_id == material.id,
                                                 MaterialLot.lot_number == lot_number)).first():
        raise Conflict(f"Lot {lot_number} of {material.code} is already received.", errors={"lot_number": ["Exists."]})
    lot = MaterialLot(material=material, lot_number=lot_number, expiry_date=expiry_date, qc_status=qc_status,
                      quantity_received=quantity, quantity_remaining=quantity, supplier=supplier,
                      received_at=utcnow())
    sess.add(lot)
    sess.flush()
    return lot


def set_lot_qc_status(sess: Session, lot: MaterialLot, qc_status: str, reason: str, *, username: str,
                      password: str, current_user: Any) -> MaterialLot:
    """QC or QA changes a lot's QC status with a reason and an e-signature whose meaning is the new status."""
    from app.signatures import sign_record

    if qc_status not in QC_STATUSES:
        raise ValidationFailed(f"QC status must be one of {', '.join(QC_STATUSES)}.", errors={"qc_status": ["Unknown."]})
    if not (reason or "").strip():
        raise ReasonRequired("Changing a lot's QC status needs a reason.", errors={"reason": ["Give the reason."]})
    if qc_status == lot.qc_status:
        raise ValidationFailed(f"Lot {lot.lot_number} is already {qc_status}.", errors={"qc_status": ["Unchanged."]})
    with audit_reason(sess, reason):
        lot.qc_status = qc_status
    sess.flush()
    sign_record(sess, lot, meaning=qc_status, username=username, password=password, current_user=current_user,
                comment=reason.strip())
    return lot


def lot_problem(lot: MaterialLot, today: date | None = None) -> str | None:
    """Why a lot may not be used, in the operator's terms, or None."""
    today = today or utcnow().date()
    if lot.is_voided:
        return f"Lot {lot.lot_number} was voided: {lot.void_reason}."
    if lot.qc_status == "quarantined":
        return f"Lot {lot.lot_number} of {lot.material.code} is quarantined: QC has not released it."
    if lot.qc_status == "rejected":
        return f"Lot {lot.lot_number} of {lot.material.code} was rejected by QC."
    if lot.expiry_date < today:
        return f"Lot {lot.lot_number} of {lot.material.code} expired on {lot.expiry_date.isoformat()}."
    return None


def find_scanned_lot(sess: Session, material_code: str, scanned: str) -> MaterialLot:
    """The lot a scan names, for the material the step expects.

    A scan is the lot number, or 'MATERIAL|LOT' as printed on the site's lot labels.
    """
    scanned = (scanned or "").strip()
    if not scanned:
        raise ValidationFailed("Scan or type the lot number.")
    code, _, lot_number = scanned.rpartition("|")
    if code and code.strip().upper() != material_code:
        raise ValidationFailed(f"The scanned label is for {code.strip().upper()}, but this step needs {material_code}.")
    lot = sess.execute(select(MaterialLot).join(Material).where(Material.code == material_code,
                                                                 MaterialLot.lot_number == lot_number.strip())
                       ).scalar_one_or_none()
    if lot is None:
        raise ValidationFailed(f"No lot {lot_number.strip()!r} of {material_code} in the materials inventory.")
    return lot


def consume(lot: MaterialLot, quantity: float) -> None:
    if quantity > lot.quantity_remaining:
        from app.web import format_number

        raise ValidationFailed(f"Only {format_number(lot.quantity_remaining)} {lot.material.unit} of lot "
                               f"{lot.lot_number} remain; {format_number(quantity)} cannot be used.")
    lot.quantity_remaining = lot.quantity_remaining - quantity
