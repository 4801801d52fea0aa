"""Fixtures for the dosing care tests: a released MsNK lot with its four bags, patients of two clinicians,
a pharmacist, and helpers that reserve, issue, check at the bedside and infuse as a given user."""
from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any, Callable

import pytest

from app.db import utcnow
from batches.dosing import bedside, dispensing, infusions, reservations
from batches.dosing.models import Patient, PatientWeight
from batches.quality import operations as quality
from batches.quality import review as rev
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import (  # noqa: F401  (fixtures re-exported for these tests)
    complete_lot_testing,
    completed_batch,
    criteria,
    intake_data,
    make_accepted_unit,
    make_asset,
    make_batch,
    make_criteria,
    make_tag,
    make_unit,
    new_asset,
    people,
    qa_users,
    receiver,
    seed_recipes,
    seed_specs,
    stock,
)
from tests.conftest import PASSWORD

_patients = itertools.count(1)


@pytest.fixture()
def clinicians(make_user: Callable[..., Any]) -> dict[str, Any]:
    return {"a": make_user("clinician", full_name="Dr Ada Alder"), "b": make_user("clinician", full_name="Dr Ben Birch"),
            "witness": make_user("clinician", full_name="Dr Wim Witness"), "pharmacist": make_user("pharmacist")}


@pytest.fixture()
def make_patient(db_session: Any, regimens: Any) -> Callable[..., Patient]:
    """make_patient(clinician, weight_kg=100) -> a patient treated by the clinician, weighed today (committed),
    with the shipped regimens approved. At 3 x 10^7 cells/kg one bag of a released_lot() (3 x 10^9 viable
    cells) is the dose for 100 kg, two bags for 200 kg; weight_kg=None records no weight."""

    def make(clinician: Any, weight_kg: float | None = 100.0, **overrides: Any) -> Patient:
        n = next(_patients)
        values = {"study_id": f"MSNK-01-{n:03d}", "hospital_id": f"H{700000 + n}", "initials": "AB",
                  "date_of_birth": date(1970, 1, 1), "treating_clinician_id": clinician.id, "protocol": "MsNK",
                  "consent_date": date(2026, 11, 1), "created_by": "test"}
        values.update(overrides)
        patient = Patient(**values)
        db_session.add(patient)
        db_session.flush()
        if weight_kg is not None:
            db_session.add(PatientWeight(patient_id=patient.id, weight_kg=weight_kg, measured_on=utcnow().date(),
                                         recorded_by="test"))
        db_session.commit()
        return patient

    return make


@pytest.fixture()
def released_lot(db_session: Any, completed_batch: Callable[..., Any], seed_specs: Any, make_user: Callable[..., Any],
                 people: dict[str, Any]) -> Callable[..., Any]:
    """released_lot() -> a released MsNK lot whose four bags are available (committed)."""

    def make(code: str = "MSNK") -> Any:
        lot = quality.lot_of_batch(db_session, completed_batch(code))
        complete_lot_testing(db_session, lot, make_user("qc_analyst"), make_user("qc_analyst"))
        qa = people["qa"]
        with as_user(qa):
            rev.release_lot(db_session, lot, username=qa.username, password=PASSWORD, current_user=qa)
        db_session.commit()
        return lot

    return make


def bags(sess: Any, lot: Any) -> list[Any]:
    return quality.units_of_batch(sess, lot.batch_id)


def reserve(sess: Any, user: Any, patient: Any, units: list[Any], infusion_number: int = 1,
            hours_ahead: float = 2.0, password: str = PASSWORD) -> Any:
    with as_user(user):
        return reservations.reserve_bags(sess, patient, infusion_number=infusion_number,
                                         planned_at=utcnow() + timedelta(hours=hours_ahead),
                                         unit_ids=[u.id for u in units], username=user.username, password=password,
                                         current_user=user)


def issue(sess: Any, pharmacist: Any, reservation: Any, location: str = "Ward 7, bed 3") -> Any:
    with as_user(pharmacist):
        return dispensing.issue_reservation(sess, reservation, location=location, current_user=pharmacist)


def scan(sess: Any, user: Any, patient: Any, unit: Any, reservation_id: int | None = None) -> Any:
    with as_user(user):
        return bedside.check_at_bedside(sess, wristband=patient.hospital_id, bag_identifier=unit.product_identifier,
                                        current_user=user, reservation_id=reservation_id)


def infuse(sess: Any, user: Any, witness: Any, reservation: Any, volume: float = 45.0) -> Any:
    now = utcnow()
    with as_user(user):
        return infusions.record_infusion(
            sess, reservation, infusions.InfusionInput(started_at=now - timedelta(minutes=40),
                                                       ended_at=now - timedelta(minutes=5), volume_ml=volume),
            username=user.username, password=PASSWORD, current_user=user, witness_username=witness.username,
            witness_password=PASSWORD)
