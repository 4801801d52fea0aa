"""Pharmacy issue: the reserved bags leave the pharmacy for the ward with their custody (who, when, where).

The bag's expiry and its lot's status are checked again at the moment of issue, after the bags are
locked: a recall or an expiry since the reservation stops the issue. Operations flush and never commit.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.audit import audit_reason
from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from batches.dosing.care_models import DoseReservation, ReservedBag
from batches.dosing.reservations import lock_units, record_custody
from batches.quality.models import QualityLot
from batches.quality.operations import unit_issue_problem

LOCATION_MAX = ReservedBag.__table__.c.issued_to.type.length
ISSUABLE_LOT_STATUSES = ("released", "conditionally_released")


def issue_problems(sess: Session, reservation: DoseReservation) -> list[str]:
    """Why the reservation's bags cannot be issued now (empty if they can)."""
    from sqlalchemy import select

    problems = []
    if reservation.status != "reserved":
        problems.append(f"Reservation {reservation.number} is {reservation.status_label}, not waiting for issue.")
    lot = sess.execute(select(QualityLot).where(QualityLot.batch_id == reservation.batch_id)).scalar_one_or_none()
    if lot is None or lot.status not in ISSUABLE_LOT_STATUSES:
        status = lot.status.replace("_", " ") if lot else "without a quality record"
        problems.append(f"Lot {reservation.lot_number} is {status}: its bags cannot be issued.")
    now = utcnow()
    for bag in reservation.bags:
        problem = unit_issue_problem(bag.unit)
        if problem:
            problems.append(problem)
        elif bag.unit.expires_at <= now:
            problems.append(f"{bag.unit.product_identifier} expired.")
    return problems


def issue_reservation(sess: Session, reservation: DoseReservation, *, location: str, current_user: Any
                      ) -> DoseReservation:
    """Issue every bag of the reservation to the named ward or bed: each bag moves to 'issued'."""
    location = (location or "").strip()
    if not location:
        raise ValidationFailed("Name where the bags go (ward, room or bed).", errors={"location": ["Required."]})
    if len(location) > LOCATION_MAX:
        raise ValidationFailed(f"A location has at most {LOCATION_MAX} characters.",
                               errors={"location": [f"At most {LOCATION_MAX} characters."]})
    lock_units(sess, [bag.unit_id for bag in reservation.bags])
    sess.refresh(reservation)
    problems = issue_problems(sess, reservation)
    if problems:
        raise Conflict("Not issued: " + " ".join(problems), errors={"_": problems})
    now = utcnow()
    with audit_reason(sess, f"issued to {location}"):
        reservation.status = "issued"
        for bag in reservation.bags:
            bag.state = "issued"
            bag.issued_at = now
            bag.issued_by = current_user.username
            bag.issued_to = location
            record_custody(sess, bag, "issued", location=location,
                           note=f"issued by {current_user.full_name}")
    sess.flush()
    return reservation
