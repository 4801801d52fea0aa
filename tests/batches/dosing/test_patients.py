"""Patients are pseudonymous and seen by their treating clinician (pharmacists and QA see all); the dose
uses the weight measured closest to the infusion, never one older than MAX_WEIGHT_AGE_DAYS."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from app.db import utcnow
from app.errors import NotFound, PermissionDenied, ValidationFailed
from batches.dosing import operations as ops
from batches.dosing.models import Patient


def new_patient(sess, user, n=1, protocol="MsNK"):
    return ops.register_patient(sess, user, study_id=f"MSNK-01-{n:03d}", hospital_id=f"H{n:06d}", initials="ab",
                                date_of_birth=date(1970, 5, 1), protocol=protocol, consent_date=date(2026, 11, 1))


def test_register_patient_pseudonymous(db_session, care):
    p = new_patient(db_session, care["clin1"])
    assert p.initials == "AB" and p.treating_clinician_id == care["clin1"].id
    assert not any("name" in c.name for c in Patient.__table__.columns)


@pytest.mark.parametrize("change, message", [
    ({"study_id": " "}, "Study subject ID is required"),
    ({"initials": "John Smith"}, "Initials: at most 5 characters"),
    ({"protocol": "CAR-T"}, "Protocol must be one of"),
    ({"consent_date": date(1960, 1, 1)}, "Consent date cannot be before the date of birth"),
])
def test_register_patient_refuses_bad_input(db_session, care, change, message):
    fields = dict(study_id="S-1", hospital_id="H-1", initials="AB", date_of_birth=date(1970, 5, 1),
                  protocol="MsNK", consent_date=date(2026, 11, 1))
    fields.update(change)
    with pytest.raises(ValidationFailed, match=message):
        ops.register_patient(db_session, care["clin1"], **fields)


def test_duplicate_hospital_id_refused(db_session, care):
    new_patient(db_session, care["clin1"], 1)
    with pytest.raises(ValidationFailed, match="Hospital ID H000001 is already registered"):
        ops.register_patient(db_session, care["clin1"], study_id="OTHER", hospital_id="H000001", initials="CD",
                             date_of_birth=date(1980, 1, 1), protocol="MsNK", consent_date=date(2026, 11, 1))


def test_a_clinician_cannot_see_another_clinicians_patients(db_session, care):
    mine = new_patient(db_session, care["clin1"], 1)
    theirs = new_patient(db_session, care["clin2"], 2)
    assert ops.visible_patients(db_session, care["clin1"]) == [mine]
    assert ops.visible_patients(db_session, care["clin2"]) == [theirs]
    with pytest.raises(NotFound):
        ops.get_patient(db_session, care["clin1"], theirs.id)
    with pytest.raises(PermissionDenied):
        ops.record_weight(db_session, care["clin1"], theirs, 70, utcnow().date())
    for role in ("pharm", "qa"):
        assert {p.id for p in ops.visible_patients(db_session, care[role])} == {mine.id, theirs.id}


def test_weight_closest_before_infusion_and_stale_weight_refused(db_session, care):
    p = new_patient(db_session, care["clin1"])
    today = utcnow().date()
    ops.record_weight(db_session, care["clin1"], p, 72, today - timedelta(days=20))
    ops.record_weight(db_session, care["clin1"], p, 70.5, today - timedelta(days=3))
    infusion = datetime.combine(today + timedelta(days=2), datetime.min.time(), tzinfo=timezone.utc)
    assert ops.weight_for_infusion(db_session, p, infusion, max_age_days=7).weight_kg == 70.5
    with pytest.raises(ValidationFailed, match=r"70.5 kg on .* is 11 days before the infusion .* at most 7 days"):
        ops.weight_for_infusion(db_session, p, infusion + timedelta(days=6), max_age_days=7)
    # a weight measured after the infusion day is never used for it
    with pytest.raises(ValidationFailed, match="No weight is recorded"):
        ops.weight_for_infusion(db_session, p, today - timedelta(days=25))


@pytest.mark.parametrize("weight", [0, -5, 1000, "heavy"])
def test_bad_weight_refused(db_session, care, weight):
    p = new_patient(db_session, care["clin1"])
    with pytest.raises(ValidationFailed):
        ops.record_weight(db_session, care["clin1"], p, weight, utcnow().date())
    assert p.weights == []
