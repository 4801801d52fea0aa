"""Dose reservations: a clinician holds the bags of one lot for one planned infusion of a patient, with a
Part 11 signature ('reserved'); a reservation ends when it is released with a reason, when it expires
(a stated time after the planned infusion, by the `flask dosing expire-reservations` command or the
"reservations" service), when a recall blocks its bags, or when its bags are infused.

Never a double booking: the bags are locked in id order (PostgreSQL ``FOR UPDATE``; SQLite writers
already hold the database write lock from BEGIN), the holds read after the lock decide, and a partial
unique index on ``reserved_bag.unit_id`` where ``active`` is the database's backstop. The loser gets a
409 that names the reservation holding the bags. Operations flush and never commit.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from app.signatures import sign_record
from batches.dosing.care_models import (
    LIVE_RESERVATION_STATUSES,
    BagCustodyEvent,
    DoseReservation,
    ReservedBag,
)
from batches.dosing.models import Patient
from batches.quality.models import FinalProductUnit, QualityLot
from batches.quality.operations import unit_issue_problem

DEFAULT_HOLD_HOURS_AFTER_INFUSION = 24.0
MAX_BAGS_PER_INFUSION = 20


# --- who may see which patient ------------------------------------------------------------------

def may_see_patient(user: Any, patient: Patient) -> bool:
    """Clinicians see their own patients; pharmacists and QA see every patient (the one rule of dosing)."""
    from batches.dosing.operations import can_see_patient

    return can_see_patient(user, patient)


def check_patient_visible(user: Any, patient: Patient) -> None:
    if not may_see_patient(user, patient):
        raise PermissionDenied("This patient is not one of your patients: only the treating clinician, "
                               "pharmacists and QA see this patient.")


def get_patient(sess: Session, patient_id: int, user: Any) -> Patient:
    patient = sess.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"Patient {patient_id} does not exist.")
    check_patient_visible(user, patient)
    return patient


def visible_patient_ids(sess: Session, user: Any) -> list[int] | None:
    """The ids of the patients the user may see, None meaning all."""
    from batches.dosing.operations import sees_all_patients

    if sees_all_patients(user):
        return None
    return list(sess.execute(select(Patient.id).where(Patient.treating_clinician_id == user.id)).scalars())


# --- reading ------------------------------------------------------------------------------------

def get_reservation(sess: Session, reservation_id: int, user: Any) -> DoseReservation:
    reservation = sess.get(DoseReservation, reservation_id)
    if reservation is None:
        raise NotFound(f"Reservation {reservation_id} does not exist.")
    check_patient_visible(user, sess.get(Patient, reservation.patient_id))
    return reservation


def reservations_of(sess: Session, patient: Patient) -> list[DoseReservation]:
    return list(sess.execute(select(DoseReservation).where(DoseReservation.patient_id == patient.id)
                             .order_by(DoseReservation.planned_at, DoseReservation.id)).scalars())


def list_reservations(sess: Session, user: Any, statuses: Iterable[str] | None = None) -> list[DoseReservation]:
    stmt = select(DoseReservation).order_by(DoseReservation.planned_at, DoseReservation.id)
    ids = visible_patient_ids(sess, user)
    if ids is not None:
        stmt = stmt.where(DoseReservation.patient_id.in_(ids))
    if statuses:
        stmt = stmt.where(DoseReservation.status.in_(tuple(statuses)))
    return list(sess.execute(stmt).scalars())


def held_unit_ids(sess: Session) -> set[int]:
    """Bags held by a live reservation (reserved, issued or infused): availability leaves them out."""
    return set(sess.execute(select(ReservedBag.unit_id).where(ReservedBag.active.is_(True))).scalars())


def active_hold(sess: Session, unit_id: int) -> ReservedBag | None:
    return sess.execute(select(ReservedBag).where(ReservedBag.unit_id == unit_id, ReservedBag.active.is_(True))
                        ).scalar_one_or_none()


def describe_hold(sess: Session, hold: ReservedBag) -> str:
    """Who holds the bag, in words the other clinician can act on."""
    from app.users import User

    reservation = hold.reservation
    holder = sess.get(User, reservation.reserved_by_id) if reservation.reserved_by_id else None
    who = f"{holder.full_name} ({holder.username})" if holder else reservation.reserved_by
    state = {"held": "reserved", "issued": "issued by the pharmacy", "infused": "infused"}[hold.state]
    return (f"{hold.unit.product_identifier} is already {state}: reservation {reservation.number} by {who} at "
            f"{_hhmm(reservation.reserved_at)} UTC for infusion {reservation.infusion_number}")


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def hold_hours(config: Any = None) -> float:
    from flask import current_app, has_app_context

    if config is None and has_app_context():
        config = current_app.config
    value = (config or {}).get("RESERVATION_HOLD_HOURS") if config is not None else None
    return float(value) if value not in (None, "") else DEFAULT_HOLD_HOURS_AFTER_INFUSION


def record_custody(sess: Session, bag: ReservedBag, event: str, *, location: str | None = None,
                   note: str | None = None) -> BagCustodyEvent:
    entry = BagCustodyEvent(unit_id=bag.unit_id, reservation_id=bag.reservation_id, event=event,
                            occurred_at=utcnow(), performed_by=current_actor().username, location=location,
                            note=note)
    sess.add(entry)
    return entry


def custody_of(sess: Session, unit_id: int) -> list[BagCustodyEvent]:
    return list(sess.execute(select(BagCustodyEvent).where(BagCustodyEvent.unit_id == unit_id)
                             .order_by(BagCustodyEvent.id)).scalars())


def lock_units(sess: Session, unit_ids: list[int]) -> list[FinalProductUnit]:
    """The bags, locked until the transaction ends, in id order (every dosing path locks this way), and
    read again after the lock so that what another transaction committed meanwhile counts."""
    sess.flush()
    stmt = select(FinalProductUnit).where(FinalProductUnit.id.in_(unit_ids)).order_by(FinalProductUnit.id)
    if sess.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=FinalProductUnit)
    return list(sess.execute(stmt.execution_options(populate_existing=True)).unique().scalars())


# --- reserving ----------------------------------------------------------------------------------

def check_dose(sess: Session, patient: Patient, *, lot_number: str, unit_ids: list[int], infusion_number: int,
               planned_at: datetime) -> Any:
    """The chosen bags make this patient's dose for that infusion: weight for the planned day, the approved
    regimen and the site dose model, by the rules of the availability answer; else 422 with the figures."""
    from batches.dosing.availability import check_chosen_bags
    from batches.dosing.operations import current_regimen, weight_for_infusion

    weight = weight_for_infusion(sess, patient, planned_at)
    regimen = current_regimen(sess, patient.protocol)
    if regimen is None:
        raise ValidationFailed(f"No approved dosing regimen for {patient.protocol}: QA must approve one before bags "
                               "are reserved.")
    return check_chosen_bags(sess, regimen=regimen, weight_kg=weight.weight_kg, protocol=patient.protocol,
                             lot_number=lot_number, unit_ids=unit_ids, infusion_number=infusion_number,
                             planned_at=planned_at)


def reserve_bags(sess: Session, patient: Patient, *, infusion_number: int, planned_at: datetime,
                 unit_ids: list[int], username: str, password: str, current_user: Any,
                 comment: str | None = None, note: str | None = None) -> DoseReservation:
    """Hold the named bags (one lot) for one planned infusion of the patient, signed 'reserved'."""
    check_patient_visible(current_user, patient)
    unit_ids = list(dict.fromkeys(int(u) for u in unit_ids or []))
    if not unit_ids:
        raise ValidationFailed("Choose the bags to reserve.", errors={"unit_ids": ["Choose at least one bag."]})
    if len(unit_ids) > MAX_BAGS_PER_INFUSION:
        raise ValidationFailed(f"At most {MAX_BAGS_PER_INFUSION} bags make one infusion.",
                               errors={"unit_ids": ["Too many bags."]})
    if infusion_number < 1:
        raise ValidationFailed("The infusion number starts at 1.", errors={"infusion_number": ["At least 1."]})
    now = utcnow()
    if planned_at < now - timedelta(hours=1):
        raise ValidationFailed("The planned infusion time is in the past.", errors={"planned_at": ["In the past."]})
    units = lock_units(sess, unit_ids)
    missing = set(unit_ids) - {u.id for u in units}
    if missing:
        raise NotFound(f"No infusion bag has the id {', '.join(str(m) for m in sorted(missing))}.")
    lots = sorted({u.lot_number for u in units})
    if len(lots) > 1:
        raise ValidationFailed(f"One infusion never mixes lots: the bags come from lots {', '.join(lots)}. Choose "
                               "bags of one lot.", errors={"unit_ids": ["Bags of one lot only."]})
    held = [h for h in (active_hold(sess, u.id) for u in units) if h is not None]
    if held:
        raise Conflict("Not reserved: " + "; ".join(describe_hold(sess, h) for h in held) +
                       ". Nothing was booked; choose other bags.", errors={"unit_ids": ["Already reserved."]})
    for unit in units:
        problem = unit_issue_problem(unit)
        if problem:
            raise Conflict(f"Not reserved: {problem}", errors={"unit_ids": [problem]})
        if unit.expires_at <= planned_at:
            raise Conflict(f"Not reserved: {unit.product_identifier} expires at {_hhmm(unit.expires_at)} UTC, before "
                           f"the planned infusion at {_hhmm(planned_at)} UTC.", errors={"unit_ids": ["Expires first."]})
    check_dose(sess, patient, lot_number=lots[0], unit_ids=[u.id for u in units], infusion_number=infusion_number,
               planned_at=planned_at)
    existing = sess.execute(select(DoseReservation).where(
        DoseReservation.patient_id == patient.id, DoseReservation.infusion_number == infusion_number,
        DoseReservation.status.in_(LIVE_RESERVATION_STATUSES))).scalar_one_or_none()
    if existing is not None:
        raise Conflict(f"Infusion {infusion_number} of patient {patient.study_id} is already covered by reservation "
                       f"{existing.number} ({existing.status_label}); release it first to choose other bags.")
    first = units[0]
    reservation = DoseReservation(
        patient_id=patient.id, infusion_number=infusion_number, planned_at=planned_at, batch_id=first.batch_id,
        lot_number=first.lot_number, product=first.product, viable_cells=sum(u.viable_cells for u in units),
        status="reserved", reserved_at=now, reserved_by=current_user.username, reserved_by_id=current_user.id,
        expires_at=planned_at + timedelta(hours=hold_hours()), note=(note or "").strip() or None)
    sess.add(reservation)
    try:
        with sess.begin_nested():
            sess.flush()
            for unit in units:
                bag = ReservedBag(reservation_id=reservation.id, unit_id=unit.id, state="held", active=True)
                bag.unit = unit
                reservation.bags.append(bag)
            sess.flush()
    except IntegrityError:
        # Only reachable if a writer skipped the lock: the index refused the second hold.
        held = [h for h in (active_hold(sess, u.id) for u in units) if h is not None]
        raise Conflict("Not reserved: " + ("; ".join(describe_hold(sess, h) for h in held) or
                                           "another reservation took these bags first") + ".") from None
    for bag in reservation.bags:
        record_custody(sess, bag, "reserved", note=f"for {patient.study_id}, infusion {infusion_number}")
    sess.flush()
    sign_record(sess, reservation, meaning="reserved", username=username, password=password,
                current_user=current_user, comment=comment)
    return reservation


# --- ending a reservation -----------------------------------------------------------------------

def _end(sess: Session, reservation: DoseReservation, status: str, bag_state: str, reason: str) -> None:
    with audit_reason(sess, reason):
        reservation.status = status
        reservation.ended_at = utcnow()
        reservation.ended_by = current_actor().username
        reservation.end_reason = reason
        for bag in reservation.bags:
            if bag.active:
                bag.state = bag_state
                bag.active = False
                record_custody(sess, bag, bag_state, note=reason)
    sess.flush()


def release_reservation(sess: Session, reservation: DoseReservation, reason: str, current_user: Any
                        ) -> DoseReservation:
    """Give the bags back to availability, with the reason; an issued reservation goes back to the pharmacy first."""
    check_patient_visible(current_user, _patient(sess, reservation))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Releasing a reservation needs the reason.", errors={"reason": ["Why is it released?"]})
    locked = sess.execute(select(DoseReservation).where(DoseReservation.id == reservation.id)
                          .with_for_update().execution_options(populate_existing=True)).scalar_one() \
        if sess.get_bind().dialect.name == "postgresql" else reservation
    if locked.status != "reserved":
        raise Conflict(f"Reservation {locked.number} is {locked.status_label}: only a reservation whose bags are still "
                       "in the pharmacy can be released.")
    _end(sess, locked, "released", "released", f"released: {reason}")
    return locked


def expire_reservations(sess: Session, now: datetime | None = None) -> list[DoseReservation]:
    """End the reservations not issued by their expiry (planned infusion + RESERVATION_HOLD_HOURS)."""
    now = now or utcnow()
    due = list(sess.execute(select(DoseReservation).where(DoseReservation.status == "reserved",
                                                          DoseReservation.expires_at <= now)
                            .order_by(DoseReservation.id)).scalars())
    for reservation in due:
        _end(sess, reservation, "expired", "expired",
             f"expired: not issued by {_hhmm(reservation.expires_at)} UTC "
             f"({hold_hours():g} h after the planned infusion)")
    return due


def _patient(sess: Session, reservation: DoseReservation) -> Patient:
    return sess.get(Patient, reservation.patient_id)


# --- recall ---------------------------------------------------------------------------------------

def block_recalled_lot(sess: Session, lot: QualityLot) -> list[DoseReservation]:
    """A recalled lot's reserved and issued bags are blocked at once; who has to act is notified, with the
    patients affected named by study ID (infused ones included: they need follow-up)."""
    from app.users import User
    from batches.quality.notifications import notify, users_with_role

    reservations = list(sess.execute(select(DoseReservation).where(
        DoseReservation.batch_id == lot.batch_id, DoseReservation.status.in_(LIVE_RESERVATION_STATUSES))
        .order_by(DoseReservation.id)).scalars())
    if not reservations:
        return []
    blocked, infused = [], []
    for reservation in reservations:
        if reservation.status == "infused":
            infused.append(reservation)
            continue
        _end(sess, reservation, "blocked", "blocked", f"blocked: lot {lot.lot_number} is on recall")
        blocked.append(reservation)
    patients = {r.id: _patient(sess, r) for r in reservations}

    def names(items: list[DoseReservation]) -> str:
        return ", ".join(f"{patients[r.id].study_id} (infusion {r.infusion_number}, {r.number})" for r in items)

    body = f"Lot {lot.lot_number} ({lot.product}) is on recall. "
    if blocked:
        body += f"Blocked, do not infuse: {names(blocked)}; issued bags must go back to the pharmacy. "
    if infused:
        body += f"Already infused, follow the patient up: {names(infused)}. "
    clinician_ids = {p.treating_clinician_id for p in patients.values()} | {r.reserved_by_id for r in reservations
                                                                          if r.reserved_by_id}
    clinicians = [sess.get(User, uid) for uid in sorted(clinician_ids)]
    recipients = [u for u in clinicians if u is not None] + users_with_role(sess, "qa")
    recipients += users_with_role(sess, "pharmacist")
    study_ids = sorted({patients[r.id].study_id for r in reservations})
    notify(sess, recipients, subject=f"RECALL lot {lot.lot_number}: patients {', '.join(study_ids)}",
           body=body.strip(), link=f"/care/recalls/{lot.id}")
    return blocked


def on_lot_disposition_changed(lot: QualityLot, sess: Session, previous: str | None = None, **_: Any) -> None:
    """Receiver of batches.quality lot_disposition_changed: a recall blocks the lot's reservations."""
    if lot.status == "on_recall":
        block_recalled_lot(sess, lot)


def reservations_of_lot(sess: Session, lot: QualityLot) -> list[DoseReservation]:
    return list(sess.execute(select(DoseReservation).where(DoseReservation.batch_id == lot.batch_id)
                             .order_by(DoseReservation.id)).scalars())
