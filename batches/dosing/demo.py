"""Demo data for `make run`: the shipped dosing regimens, approved, and two pseudonymous patients of the
demo clinician with today's weight, so that dose availability has someone to answer for (idempotent)."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from app.audit import Actor, acting_as
from app.db import utcnow
from app.users import User
from batches.dosing.models import Patient
from batches.dosing.operations import record_weight, register_patient
from batches.dosing.regimens import install_seed_regimens

# study subject ID, hospital ID (the wristband), initials, date of birth, protocol, weight kg
DEMO_PATIENTS = (
    ("MSNK-001-0001", "H0000001", "AB", date(1968, 4, 12), "MsNK", 70.0),
    ("CAR-001-0001", "H0000002", "CD", date(1975, 9, 3), "NKG2D-CAR-NK", 40.0),
)


def create_demo_data(sess: Any) -> None:
    with acting_as(Actor(None, "demo-data")):
        install_seed_regimens(sess)
        sess.flush()
    clinician = sess.execute(select(User).where(User.username == "clinician")).scalar_one_or_none()
    if clinician is None:
        return
    today = utcnow().date()
    with acting_as(Actor(clinician.id, clinician.username)):
        for study_id, hospital_id, initials, born, protocol, weight in DEMO_PATIENTS:
            if sess.execute(select(Patient.id).where(Patient.study_id == study_id)).first():
                continue
            patient = register_patient(sess, clinician, study_id=study_id, hospital_id=hospital_id,
                                       initials=initials, date_of_birth=born, protocol=protocol,
                                       consent_date=today - timedelta(days=14))
            record_weight(sess, clinician, patient, weight, today)
    sess.flush()
