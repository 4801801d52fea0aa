"""The bedside identity check: the bag's product identifier and the patient's wristband are scanned, and
both must match a reservation issued for that patient; anything else is a hard stop with its reason.

A passed check is recorded in the bag's custody (who, when, where); the infusion can only be recorded
once every bag of the reservation has passed it. Operations flush and never commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, ValidationFailed
from batches.dosing.care_models import BagCustodyEvent, DoseReservation, ReservedBag
from batches.dosing.models import Patient
from batches.dosing.reservations import check_patient_visible, record_custody
from batches.quality.operations import find_unit_by_scan, unit_issue_problem


class BedsideStop(Conflict):
    """A hard stop at the bedside: do not infuse."""

    title = "STOP: do not infuse"


@dataclass
class BedsideResult:
    reservation: DoseReservation
    bag: ReservedBag
    patient: Patient
    checked: set[int]

    @property
    def complete(self) -> bool:
        return all(b.unit_id in self.checked for b in self.reservation.bags)


def _scanned(text: str | None) -> str:
    value = (text or "").strip().upper()
    return value[1:] if value.startswith("=") else value


def find_patient_by_wristband(sess: Session, scanned: str) -> Patient | None:
    return sess.execute(select(Patient).where(func.upper(Patient.hospital_id) == _scanned(scanned))
                        ).scalar_one_or_none()


def checked_units(sess: Session, reservation: DoseReservation) -> set[int]:
    """The bags of the reservation that passed the bedside check since they were issued."""
    issued_at = min((b.issued_at for b in reservation.bags if b.issued_at), default=None)
    if issued_at is None:
        return set()
    return set(sess.execute(select(BagCustodyEvent.unit_id).where(
        BagCustodyEvent.reservation_id == reservation.id, BagCustodyEvent.event == "bedside_check",
        BagCustodyEvent.occurred_at >= issued_at)).scalars())


def check_at_bedside(sess: Session, *, wristband: str, bag_identifier: str, current_user: Any,
                     location: str | None = None, reservation_id: int | None = None) -> BedsideResult:
    """Match the scanned bag and wristband against the bag's reservation; refuse with the reason otherwise."""
    if not _scanned(wristband):
        raise ValidationFailed("Scan the patient's wristband.", errors={"wristband": ["Scan the wristband."]})
    if not _scanned(bag_identifier):
        raise ValidationFailed("Scan the product identifier on the bag.", errors={"bag_identifier": ["Scan the bag."]})
    unit = find_unit_by_scan(sess, bag_identifier)
    bag = sess.execute(select(ReservedBag).where(ReservedBag.unit_id == unit.id, ReservedBag.active.is_(True))
                       ).scalar_one_or_none()
    patient = find_patient_by_wristband(sess, wristband)
    if bag is None:
        last = sess.execute(select(ReservedBag).where(ReservedBag.unit_id == unit.id)
                            .order_by(ReservedBag.id.desc()).limit(1)).scalar_one_or_none()
        why = (f"its reservation {last.reservation.number} was {last.state_label}" if last is not None
               else "it is not reserved for any patient")
        raise BedsideStop(f"STOP: bag {unit.product_identifier} must not be infused: {why}.",
                          errors={"bag_identifier": ["Not reserved."]})
    reservation = bag.reservation
    owner = sess.get(Patient, reservation.patient_id)
    check_patient_visible(current_user, owner)
    if patient is None:
        raise BedsideStop(f"STOP: wristband {_scanned(wristband)} belongs to no patient in this system. Bag "
                          f"{unit.product_identifier} is reserved for patient {owner.study_id}; check the wristband.",
                          errors={"wristband": ["Unknown wristband."]})
    if patient.id != owner.id:
        raise BedsideStop(f"STOP: wrong patient. Bag {unit.product_identifier} is reserved for patient "
                          f"{owner.study_id} ({owner.initials}), but the wristband is that of patient "
                          f"{patient.study_id} ({patient.initials}).", errors={"wristband": ["Wrong patient."]})
    if reservation_id is not None and reservation.id != reservation_id:
        expected = sess.get(DoseReservation, reservation_id)
        meant = f"infusion {expected.infusion_number} ({expected.number})" if expected else f"reservation {reservation_id}"
        raise BedsideStop(f"STOP: wrong bag. Bag {unit.product_identifier} belongs to infusion "
                          f"{reservation.infusion_number} ({reservation.number}), not to {meant}.",
                          errors={"bag_identifier": ["Wrong bag for this infusion."]})
    if bag.state == "held":
        raise BedsideStop(f"STOP: bag {unit.product_identifier} was not issued by the pharmacy; it must be issued "
                          "before it is infused.", errors={"bag_identifier": ["Not issued."]})
    if bag.state == "infused":
        raise BedsideStop(f"STOP: bag {unit.product_identifier} was already infused (reservation "
                          f"{reservation.number}).", errors={"bag_identifier": ["Already infused."]})
    problem = unit_issue_problem(unit)
    if problem:
        raise BedsideStop(f"STOP: {problem}", errors={"bag_identifier": [problem]})
    record_custody(sess, bag, "bedside_check", location=(location or "").strip() or bag.issued_to,
                   note=f"wristband {patient.hospital_id} matched patient {patient.study_id}")
    sess.flush()
    return BedsideResult(reservation=reservation, bag=bag, patient=patient,
                         checked=checked_units(sess, reservation))
