"""Patients, weights and regimens: registration, the weight a dose uses, who may see a patient.

Operations flush and never commit.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import NotFound, PermissionDenied, ValidationFailed
from batches.dosing.models import PROTOCOLS, DosingRegimen, Patient, PatientWeight

ALL_PATIENT_ROLES = ("pharmacist", "qa")
DEFAULT_MAX_WEIGHT_AGE_DAYS = 7


def max_weight_age_days() -> int:
    if has_app_context():
        return int(current_app.config.get("MAX_WEIGHT_AGE_DAYS", DEFAULT_MAX_WEIGHT_AGE_DAYS))
    return DEFAULT_MAX_WEIGHT_AGE_DAYS


def dose_model() -> str:
    if has_app_context():
        return str(current_app.config.get("DOSE_MODEL", "whole_bags"))
    return "whole_bags"


# --- visibility -----------------------------------------------------------------------------------

def sees_all_patients(user: Any) -> bool:
    return any(user.has_role(role) for role in ALL_PATIENT_ROLES)


def can_see_patient(user: Any, patient: Patient) -> bool:
    """A clinician sees the patients they treat; pharmacists and QA see all."""
    return sees_all_patients(user) or patient.treating_clinician_id == user.id


def visible_patients(sess: Session, user: Any) -> list[Patient]:
    stmt = select(Patient).order_by(Patient.study_id)
    if not sees_all_patients(user):
        stmt = stmt.where(Patient.treating_clinician_id == user.id)
    return list(sess.execute(stmt).scalars())


def get_patient(sess: Session, user: Any, patient_id: int) -> Patient:
    """The patient if the user may see them; another clinician's patient is simply not found."""
    patient = sess.get(Patient, patient_id)
    if patient is None or not can_see_patient(user, patient):
        raise NotFound(f"Patient {patient_id} does not exist or is not one of yours.")
    return patient


# --- registration and weights ---------------------------------------------------------------------

def _text(value: Any, field: str, max_len: int) -> str:
    text = ("" if value is None else str(value)).strip()
    if not text:
        raise ValidationFailed(f"{field} is required.")
    if len(text) > max_len:
        raise ValidationFailed(f"{field}: at most {max_len} characters.")
    return text


def register_patient(sess: Session, user: Any, *, study_id: str, hospital_id: str, initials: str,
                     date_of_birth: date, protocol: str, consent_date: date,
                     treating_clinician_id: int | None = None) -> Patient:
    """Register a pseudonymous patient (no name is ever stored); the treating clinician defaults to the user."""
    study_id = _text(study_id, "Study subject ID", 40)
    hospital_id = _text(hospital_id, "Hospital ID", 40)
    initials = _text(initials, "Initials", 5).upper()
    if not initials.replace("-", "").isalpha():
        raise ValidationFailed("Initials are letters only (no full name is recorded).")
    if protocol not in PROTOCOLS:
        raise ValidationFailed(f"Protocol must be one of {', '.join(PROTOCOLS)}.")
    today = utcnow().date()
    if date_of_birth > today:
        raise ValidationFailed("Date of birth cannot be in the future.")
    if consent_date > today:
        raise ValidationFailed("Consent date cannot be in the future.")
    if consent_date < date_of_birth:
        raise ValidationFailed("Consent date cannot be before the date of birth.")
    if sess.execute(select(Patient.id).where(Patient.study_id == study_id)).first():
        raise ValidationFailed(f"Study subject ID {study_id} is already registered.")
    if sess.execute(select(Patient.id).where(Patient.hospital_id == hospital_id)).first():
        raise ValidationFailed(f"Hospital ID {hospital_id} is already registered.")
    patient = Patient(study_id=study_id, hospital_id=hospital_id, initials=initials, date_of_birth=date_of_birth,
                      treating_clinician_id=treating_clinician_id or user.id, protocol=protocol,
                      consent_date=consent_date, created_at=utcnow(), created_by=user.username)
    sess.add(patient)
    sess.flush()
    return patient


def checked_weight(weight_kg: Any) -> float:
    """A patient's weight in kg as a number within what a patient can weigh, or a message saying why not."""
    try:
        weight = float(weight_kg)
    except (TypeError, ValueError):
        raise ValidationFailed("Weight must be a number of kg.") from None
    if not 0.5 <= weight <= 400:
        raise ValidationFailed(f"Weight {weight:g} kg is outside 0.5 to 400 kg.")
    return weight


def record_weight(sess: Session, user: Any, patient: Patient, weight_kg: float, measured_on: date) -> PatientWeight:
    if not can_see_patient(user, patient):
        raise PermissionDenied("Only the treating clinician, a pharmacist or QA may record this patient's weight.")
    weight = checked_weight(weight_kg)
    if measured_on > utcnow().date():
        raise ValidationFailed("A weight cannot be measured in the future.")
    row = PatientWeight(patient_id=patient.id, weight_kg=weight, measured_on=measured_on,
                        recorded_by=user.username, recorded_at=utcnow())
    sess.add(row)
    sess.flush()
    sess.expire(patient, ["weights"])
    return row


def weight_for_infusion(sess: Session, patient: Patient, when: datetime | date,
                        max_age_days: int | None = None) -> PatientWeight:
    """The weight measured closest to, and not after, the infusion day; one more than MAX_WEIGHT_AGE_DAYS
    days before the infusion is refused with a message."""
    day = when.date() if isinstance(when, datetime) else when
    max_age = max_weight_age_days() if max_age_days is None else max_age_days
    weight = sess.execute(select(PatientWeight).where(PatientWeight.patient_id == patient.id,
                                                      PatientWeight.measured_on <= day)
                          .order_by(PatientWeight.measured_on.desc(), PatientWeight.id.desc()).limit(1)).scalar()
    if weight is None:
        raise ValidationFailed(f"No weight is recorded for {patient.study_id} on or before {day.isoformat()}: "
                               "record a weight first.")
    age = (day - weight.measured_on).days
    if age > max_age:
        raise ValidationFailed(f"The latest weight of {patient.study_id} ({weight.weight_kg:g} kg on "
                               f"{weight.measured_on.isoformat()}) is {age} days before the infusion on "
                               f"{day.isoformat()}; at most {max_age} days are allowed: record a new weight.")
    return weight


# --- regimens -------------------------------------------------------------------------------------

def current_regimen(sess: Session, protocol: str) -> DosingRegimen | None:
    """The approved regimen of a protocol now (at most one approved version per code)."""
    return sess.execute(select(DosingRegimen).where(DosingRegimen.protocol == protocol,
                                                    DosingRegimen.status == "approved")
                        .order_by(DosingRegimen.version.desc()).limit(1)).scalar()


def get_regimen(sess: Session, regimen_id: int) -> DosingRegimen:
    regimen = sess.get(DosingRegimen, regimen_id)
    if regimen is None:
        raise NotFound(f"Dosing regimen {regimen_id} does not exist.")
    return regimen


def infusion_times(regimen: DosingRegimen, first_at: datetime) -> list[datetime]:
    return [first_at + timedelta(days=regimen.interval_days * i) for i in range(regimen.infusions)]
