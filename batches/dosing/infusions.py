"""The infusion record: start and end, volume infused, any reaction, and two e-signatures by two different
clinicians ('administered' by the one logged in, 'witnessed' by a second one who signs with their own user
ID and password on the same device). It closes the chain of identity cord blood unit -> batch -> bag ->
patient; the first infusion of a patient creates the trial follow-up schedule. Operations flush and never
commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason
from app.db import utcnow
from app.errors import Conflict, SignatureRefused, ValidationFailed
from app.signatures import sign_record
from batches.dosing.bedside import checked_units
from batches.dosing.care_models import DoseReservation, Infusion
from batches.dosing.models import Patient
from batches.dosing.reservations import check_patient_visible, record_custody
from batches.quality.operations import unit_issue_problem

CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class InfusionInput:
    started_at: datetime | None
    ended_at: datetime | None
    volume_ml: float | None
    reaction: bool = False
    reaction_description: str | None = None


def infusion_of(sess: Session, reservation: DoseReservation) -> Infusion | None:
    return sess.execute(select(Infusion).where(Infusion.reservation_id == reservation.id)).scalar_one_or_none()


def infusions_of(sess: Session, patient: Patient) -> list[Infusion]:
    return list(sess.execute(select(Infusion).where(Infusion.patient_id == patient.id)
                             .order_by(Infusion.started_at)).scalars())


def _witness(sess: Session, username: str) -> Any:
    from app.users import User

    name = (username or "").strip().lower()
    if not name:
        raise ValidationFailed("The witnessing clinician signs with their user ID and password.",
                               errors={"witness_username": ["Witness user ID."]})
    user = sess.execute(select(User).where(User.username == name)).scalar_one_or_none()
    if user is None or not user.active:
        raise SignatureRefused("The witness's user ID or password is not correct.",
                               errors={"witness_username": ["Not a user."]})
    if "clinician" not in user.role_names and "pharmacist" not in user.role_names:
        raise SignatureRefused(f"{user.full_name} is not a clinician: a clinician witnesses the infusion.",
                               errors={"witness_username": ["Not a clinician."]})
    return user


def record_infusion(sess: Session, reservation: DoseReservation, data: InfusionInput, *, username: str,
                    password: str, current_user: Any, witness_username: str, witness_password: str) -> Infusion:
    """Record the infusion of an issued, bedside-checked reservation, signed by two different clinicians."""
    from batches.dosing.followup import create_follow_up_schedule

    patient = sess.get(Patient, reservation.patient_id)
    check_patient_visible(current_user, patient)
    errors: dict[str, list[str]] = {}
    now = utcnow()
    if data.started_at is None:
        errors["started_at"] = ["When did the infusion start?"]
    if data.ended_at is None:
        errors["ended_at"] = ["When did it end?"]
    if data.volume_ml is None or data.volume_ml <= 0:
        errors["volume_ml"] = ["The volume infused, in mL, above 0."]
    if data.started_at and data.ended_at and data.ended_at < data.started_at:
        errors["ended_at"] = ["The end is before the start."]
    if data.ended_at and data.ended_at > now + CLOCK_SKEW:
        errors["ended_at"] = ["The end is in the future: record the infusion when it has ended."]
    if data.reaction and not (data.reaction_description or "").strip():
        errors["reaction_description"] = ["Describe the reaction."]
    capacity = sum(b.unit.volume_ml for b in reservation.bags if b.unit.volume_ml)
    if data.volume_ml and capacity and all(b.unit.volume_ml for b in reservation.bags) and data.volume_ml > capacity * 1.05:
        errors["volume_ml"] = [f"More than the {capacity:g} mL the bags hold."]
    if errors:
        raise ValidationFailed("Please correct the infusion record: " + " ".join(m for v in errors.values() for m in v),
                               errors=errors)
    if reservation.status != "issued":
        raise Conflict(f"Reservation {reservation.number} is {reservation.status_label}: only issued bags that "
                       "passed the bedside check can be infused.")
    missing = [b.unit.product_identifier for b in reservation.bags if b.unit_id not in checked_units(sess, reservation)]
    if missing:
        raise Conflict("Scan at the bedside first: " + ", ".join(missing) + " did not pass the bedside identity check.")
    for bag in reservation.bags:
        problem = unit_issue_problem(bag.unit)
        if problem:
            raise Conflict(f"STOP: {problem}")
    witness = _witness(sess, witness_username)
    if witness.id == current_user.id:
        raise SignatureRefused("The witness must be a second clinician, not the one who administers.",
                               errors={"witness_username": ["A different person."]})
    first = sess.execute(select(func.count(Infusion.id)).where(Infusion.patient_id == patient.id)).scalar_one() == 0
    infusion = Infusion(reservation_id=reservation.id, patient_id=patient.id,
                        infusion_number=reservation.infusion_number, started_at=data.started_at,
                        ended_at=data.ended_at, volume_ml=float(data.volume_ml or 0), reaction=bool(data.reaction),
                        reaction_description=(data.reaction_description or "").strip() or None,
                        administered_by_id=current_user.id, administered_by=current_user.username,
                        witnessed_by_id=witness.id, witnessed_by=witness.username, recorded_at=now)
    sess.add(infusion)
    with audit_reason(sess, f"infused into {patient.study_id}"):
        reservation.status = "infused"
        for bag in reservation.bags:
            bag.state = "infused"
            record_custody(sess, bag, "infused", location=bag.issued_to,
                           note=f"infused into {patient.study_id}, infusion {reservation.infusion_number}")
    sess.flush()
    sign_record(sess, infusion, meaning="administered", username=username, password=password,
                current_user=current_user)
    sign_record(sess, infusion, meaning="witnessed", username=witness_username, password=witness_password,
                current_user=witness)
    if first:
        create_follow_up_schedule(sess, patient, data.started_at)
    return infusion


# --- chain of identity ----------------------------------------------------------------------------

def walk_chain_of_identity(sess: Session, user: Any, *, identifier: str | None = None, din: str | None = None,
                           lot_number: str | None = None, study_id: str | None = None) -> dict[str, Any]:
    """Cord blood unit -> batch -> bag -> patient, from any one of them, both ways: every cord blood unit
    reached, each with its batches, their bags and where each bag went (the patient it was reserved for or
    infused into). Patients the user may not see are shown without their study ID."""
    from batches.execution.models import Batch
    from batches.quality.models import FinalProductUnit
    from batches.quality.operations import find_unit_by_scan
    from batches.dosing.care_models import ReservedBag
    from batches.dosing.reservations import may_see_patient
    from batches.sourcing.models import CordBloodUnit
    from app.errors import NotFound

    given = [v for v in (identifier, din, lot_number, study_id) if (v or "").strip()]
    if len(given) != 1:
        raise ValidationFailed("Give one of: a bag's product identifier, a cord blood DIN, a lot number or a "
                               "patient's study ID.", errors={"identifier": ["One starting point."]})
    cbu_ids: set[int] = set()
    start = ""
    if identifier:
        unit = find_unit_by_scan(sess, identifier)
        cbu_ids.add(unit.cord_blood_unit_id)
        start = f"bag {unit.product_identifier}"
    elif din:
        text = din.strip().upper().lstrip("=")
        cbu = sess.execute(select(CordBloodUnit).where(CordBloodUnit.din == text[:13])).scalar_one_or_none()
        if cbu is None:
            raise NotFound(f"No cord blood unit has the DIN {text}.")
        cbu_ids.add(cbu.id)
        start = f"cord blood unit {cbu.din}"
    elif lot_number:
        batch = sess.execute(select(Batch).where(func.upper(Batch.lot_number) == lot_number.strip().upper())
                             ).scalar_one_or_none()
        if batch is None:
            raise NotFound(f"No batch has the lot number {lot_number.strip()}.")
        cbu_ids.add(batch.cord_blood_unit_id)
        start = f"batch {batch.lot_number}"
    else:
        patient = sess.execute(select(Patient).where(func.upper(Patient.study_id) == study_id.strip().upper())
                               ).scalar_one_or_none()
        if patient is None:
            raise NotFound(f"No patient has the study ID {study_id.strip()}.")
        check_patient_visible(user, patient)
        cbu_ids |= set(sess.execute(select(FinalProductUnit.cord_blood_unit_id).join(
            ReservedBag, ReservedBag.unit_id == FinalProductUnit.id).join(
            DoseReservation, DoseReservation.id == ReservedBag.reservation_id).where(
            DoseReservation.patient_id == patient.id)).scalars())
        start = f"patient {patient.study_id}"
    units_out = []
    for cbu_id in sorted(cbu_ids):
        cbu = sess.get(CordBloodUnit, cbu_id)
        batches = list(sess.execute(select(Batch).where(Batch.cord_blood_unit_id == cbu_id).order_by(Batch.id)).scalars())
        batch_out = []
        for batch in batches:
            bags = list(sess.execute(select(FinalProductUnit).where(FinalProductUnit.batch_id == batch.id,
                                                                    FinalProductUnit.voided_at.is_(None))
                                     .order_by(FinalProductUnit.division)).scalars())
            bag_out = []
            for bag in bags:
                holds = list(sess.execute(select(ReservedBag).where(ReservedBag.unit_id == bag.id)
                                          .order_by(ReservedBag.id)).scalars())
                current = next((h for h in holds if h.active), holds[-1] if holds else None)
                patient_view = None
                if current is not None:
                    owner = sess.get(Patient, current.reservation.patient_id)
                    visible = may_see_patient(user, owner)
                    patient_view = {"id": owner.id if visible else None,
                                    "study_id": owner.study_id if visible else None, "visible": visible,
                                    "state": current.state, "reservation_id": current.reservation_id if visible else None,
                                    "infusion_number": current.reservation.infusion_number}
                bag_out.append({"unit": bag, "patient": patient_view})
            batch_out.append({"batch": batch, "bags": bag_out})
        units_out.append({"cord_blood_unit": cbu, "batches": batch_out})
    return {"start": start, "cord_blood_units": units_out}
