"""A reservation holds only bags that make the patient's dose for that infusion, by the rules of the
availability answer: the weight for the planned day (a stale one refused), the approved regimen, the site
dose model; refusals give the figures and save nothing."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.errors import ValidationFailed
from batches.dosing.availability import availability_for_patient
from batches.dosing.care_models import DoseReservation, ReservedBag
from batches.dosing.models import PatientWeight
from batches.quality.models import FinalProductUnit
from tests.batches.dosing.care_support import *  # noqa: F401,F403  (fixtures)
from tests.batches.dosing.care_support import bags, reserve
from tests.conftest import PASSWORD


def _nothing_saved(sess, patient) -> None:
    patient_id = patient if isinstance(patient, int) else patient.id
    assert sess.scalar(select(func.count()).select_from(DoseReservation)
                       .where(DoseReservation.patient_id == patient_id)) == 0
    assert sess.scalar(select(func.count()).select_from(ReservedBag).where(ReservedBag.active.is_(True))) == 0


def test_bags_below_the_tolerance_are_refused_with_the_figures(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)  # 3 x 10^9 viable cells each
    patient = make_patient(clinicians["a"], weight_kg=200)  # needs 6 x 10^9, at least 5.4 x 10^9
    with pytest.raises(ValidationFailed) as refused:
        reserve(db_session, clinicians["a"], patient, units[:1])
    message = refused.value.message
    assert "3 x 10^9 viable cells" in message and "6 x 10^9 needed for 200 kg" in message, message
    assert "5.4 x 10^9 to 6.6 x 10^9" in message and lot.lot_number in message, message
    assert refused.value.status_code == 422
    _nothing_saved(db_session, patient)
    with pytest.raises(ValidationFailed, match=r"3 chosen bag\(s\) hold 9 x 10\^9"):  # and above it
        reserve(db_session, clinicians["a"], patient, units[:3])
    _nothing_saved(db_session, patient)


def test_a_stale_or_missing_weight_is_refused(db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    patient = make_patient(clinicians["a"], weight_kg=None)
    with pytest.raises(ValidationFailed, match="No weight is recorded"):
        reserve(db_session, clinicians["a"], patient, units[:1])
    db_session.add(PatientWeight(patient_id=patient.id, weight_kg=100, measured_on=utcnow().date() - timedelta(days=10),
                                 recorded_by="test"))
    db_session.commit()
    with pytest.raises(ValidationFailed, match="10 days before the infusion .* at most 7 days"):
        reserve(db_session, clinicians["a"], patient, units[:1], hours_ahead=1)
    _nothing_saved(db_session, patient)


def test_the_plan_of_the_availability_answer_is_reserved(db_session, released_lot, clinicians, make_patient):
    released_lot()
    patient = make_patient(clinicians["a"], weight_kg=200)
    planned = utcnow() + timedelta(hours=2)
    answer = availability_for_patient(db_session, patient, first_infusion_at=planned)
    first = answer.plan[0]
    assert first is not None and len(first.bags) == 2
    reservation = reserve(db_session, clinicians["a"], patient, [db_session.get(FinalProductUnit, b["id"])
                                                                 for b in first.bags])
    assert reservation.lot_number == first.lot_number
    assert {b.unit_id for b in reservation.bags} == {b["id"] for b in first.bags}
    assert reservation.viable_cells == pytest.approx(first.delivered_cells)


def test_drawn_volume_takes_only_the_bags_the_dose_is_drawn_from(db_session, released_lot, clinicians, make_patient,
                                                                 monkeypatch):
    lot = released_lot()
    units = bags(db_session, lot)
    patient = make_patient(clinicians["a"], weight_kg=150)  # 4.5 x 10^9: one bag and half of another
    monkeypatch.setattr("batches.dosing.operations.dose_model", lambda: "drawn_volume")  # the site setting
    with pytest.raises(ValidationFailed, match="not enough cells for infusion 1: 3 x 10\\^9"):
        reserve(db_session, clinicians["a"], patient, units[:1])
    with pytest.raises(ValidationFailed, match="drawn without"):
        reserve(db_session, clinicians["a"], patient, units[:3])
    _nothing_saved(db_session, patient)
    reservation = reserve(db_session, clinicians["a"], patient, units[:2])
    assert len(reservation.bags) == 2


def test_the_reserve_form_offers_the_planned_bags_of_each_infusion(client, login, db_session, released_lot,
                                                                   clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    patient = make_patient(clinicians["a"], weight_kg=200)  # two bags per infusion: four bags cover two
    login(clinicians["a"])
    page = client.get(f"/care/patients/{patient.id}").get_data(as_text=True)
    offered = [int(v) for v in re.findall(r'name="unit_ids" value="(\d+)"', page)]
    assert offered == [u.id for u in units], page  # infusions 1 and 2, two bags each, each bag once
    assert "Infusion 1 · lot " + lot.lot_number in page and "Infusion 2 · lot " in page
    assert "Infusion 3 · lot" not in page
    reserve(db_session, clinicians["a"], patient, units[:2])
    page = client.get(f"/care/patients/{patient.id}").get_data(as_text=True)
    assert [int(v) for v in re.findall(r'name="unit_ids" value="(\d+)"', page)] == [units[2].id, units[3].id]
    assert "Infusion 1 · lot" not in page and "Infusion 2 · lot" in page
    unweighed = make_patient(clinicians["a"], weight_kg=None)
    page = client.get(f"/care/patients/{unweighed.id}").get_data(as_text=True)
    assert "No weight is recorded" in page and 'name="unit_ids"' not in page


def test_the_api_refuses_a_wrong_dose_with_a_422_and_the_figures(client, api_headers, db_session, released_lot,
                                                                 clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    a = clinicians["a"]
    patient_id = make_patient(a, weight_kg=200).id
    unit_ids = [u.id for u in units]
    headers = api_headers(a)
    body = {"patient_id": patient_id, "infusion_number": 1, "planned_at": (utcnow() + timedelta(hours=2)).isoformat(),
            "unit_ids": unit_ids[:1], "username": a.username, "password": PASSWORD}
    refused = client.post("/api/v1/reservations", json=body, headers=headers)
    assert refused.status_code == 422, refused.get_json()
    assert "3 x 10^9 viable cells" in refused.get_json()["message"] and "200 kg" in refused.get_json()["message"]
    _nothing_saved(db_session, patient_id)
    done = client.post("/api/v1/reservations", json={**body, "unit_ids": unit_ids[:2]}, headers=headers)
    assert done.status_code == 201, done.get_json()
