"""Bedside identity check, infusion with two signatures, the chain of identity walked both ways, and the
follow-up schedule made after the first infusion with its due / overdue / done states and adverse events."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.errors import Conflict, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.dosing import bedside, followup, infusions
from batches.dosing.bedside import BedsideStop
from tests.batches.dosing.care_support import *  # noqa: F401,F403  (fixtures)
from tests.batches.dosing.care_support import bags, infuse, issue, reserve, scan
from tests.batches.execution.conftest import as_user
from tests.conftest import PASSWORD


@pytest.fixture()
def issued(db_session, released_lot, clinicians, make_patient):
    """Two patients of clinician a, each with one issued bag of the same lot; the lot's last two bags free."""
    lot = released_lot()
    units = bags(db_session, lot)
    p1, p2 = make_patient(clinicians["a"]), make_patient(clinicians["a"])
    r1 = issue(db_session, clinicians["pharmacist"], reserve(db_session, clinicians["a"], p1, units[:1]))
    r2 = issue(db_session, clinicians["pharmacist"], reserve(db_session, clinicians["a"], p2, units[1:2]))
    return {"lot": lot, "units": units, "p1": p1, "p2": p2, "r1": r1, "r2": r2}


def test_wrong_bag_at_the_bedside_is_a_hard_stop(db_session, issued, clinicians):
    a, units, p1 = clinicians["a"], issued["units"], issued["p1"]
    with pytest.raises(BedsideStop, match="wrong patient") as stop:
        scan(db_session, a, p1, units[1])  # p2's bag at p1's bedside
    assert issued["p2"].study_id in stop.value.message and p1.study_id in stop.value.message
    with pytest.raises(BedsideStop, match="not reserved for any patient"):
        scan(db_session, a, p1, units[3])
    with pytest.raises(BedsideStop, match="belongs to no patient"):
        with as_user(a):
            bedside.check_at_bedside(db_session, wristband="H-NOBODY", bag_identifier=units[0].product_identifier,
                                     current_user=a)
    with pytest.raises(BedsideStop, match="wrong bag"):
        scan(db_session, a, issued["p2"], units[1], reservation_id=issued["r1"].id)
    assert bedside.checked_units(db_session, issued["r1"]) == set()
    with pytest.raises(Conflict, match="Scan at the bedside first"):
        infuse(db_session, a, clinicians["witness"], issued["r1"])
    result = scan(db_session, a, p1, units[0])
    assert result.complete and result.reservation.id == issued["r1"].id


def test_a_bag_not_issued_is_stopped_at_the_bedside(db_session, issued, clinicians, make_patient):
    patient = make_patient(clinicians["a"])
    reserve(db_session, clinicians["a"], patient, issued["units"][2:3])
    with pytest.raises(BedsideStop, match="not issued by the pharmacy"):
        scan(db_session, clinicians["a"], patient, issued["units"][2])


def test_infusion_needs_two_different_clinicians_and_closes_the_chain(db_session, issued, clinicians):
    a, r1, p1, unit = clinicians["a"], issued["r1"], issued["p1"], issued["units"][0]
    scan(db_session, a, p1, unit)
    with pytest.raises(SignatureRefused, match="second clinician"):
        infuse(db_session, a, a, r1)
    with pytest.raises(ValidationFailed, match="above 0"):
        infuse(db_session, a, clinicians["witness"], r1, volume=0)
    with pytest.raises(ValidationFailed, match="More than the 50 mL"):
        infuse(db_session, a, clinicians["witness"], r1, volume=80)
    infusion = infuse(db_session, a, clinicians["witness"], r1, volume=48)
    assert r1.status == "infused" and r1.bags[0].state == "infused"
    views = signatures_for(db_session, infusion)
    assert [(v.signature.meaning, v.signature.signer_username) for v in views] == [
        ("administered", a.username), ("witnessed", clinicians["witness"].username)]
    assert all(v.valid for v in views)
    with pytest.raises(BedsideStop, match="already infused"):
        scan(db_session, a, p1, unit)
    # walked from each link: bag, donor unit, lot, patient
    for start in ({"identifier": unit.product_identifier}, {"din": unit.cord_blood_din},
                  {"lot_number": unit.lot_number}, {"study_id": p1.study_id}):
        chain = infusions.walk_chain_of_identity(db_session, a, **start)
        [cbu] = chain["cord_blood_units"]
        assert cbu["cord_blood_unit"].din == unit.cord_blood_din
        [batch] = cbu["batches"]
        by_bag = {b["unit"].id: b["patient"] for b in batch["bags"]}
        assert by_bag[unit.id]["study_id"] == p1.study_id and by_bag[unit.id]["state"] == "infused"
        assert by_bag[issued["units"][3].id] is None
    # another clinician sees that the bag went to a patient, not which one
    other = infusions.walk_chain_of_identity(db_session, clinicians["b"], identifier=unit.product_identifier)
    seen = {b["unit"].id: b["patient"] for b in other["cord_blood_units"][0]["batches"][0]["bags"]}
    assert seen[unit.id]["visible"] is False and seen[unit.id]["study_id"] is None


def test_a_wrong_witness_password_saves_nothing(db_session, issued, clinicians):
    a, r1 = clinicians["a"], issued["r1"]
    scan(db_session, a, issued["p1"], issued["units"][0])
    with as_user(a):
        with pytest.raises(SignatureRefused):
            infusions.record_infusion(
                db_session, r1, infusions.InfusionInput(started_at=r1.bags[0].issued_at,
                                                        ended_at=r1.bags[0].issued_at + timedelta(minutes=1),
                                                        volume_ml=40),
                username=a.username, password=PASSWORD, current_user=a,
                witness_username=clinicians["witness"].username, witness_password="not-the-password")
    db_session.expire_all()
    assert infusions.infusion_of(db_session, r1) is None


def test_the_first_infusion_creates_the_follow_up_schedule(db_session, issued, clinicians):
    a, p1 = clinicians["a"], issued["p1"]
    scan(db_session, a, p1, issued["units"][0])
    infusion = infuse(db_session, a, clinicians["witness"], issued["r1"])
    visits = followup.visits_of(db_session, p1)
    day0 = followup._local_date(infusion.started_at)
    summary = sorted((v.kind, v.week, (v.due_on - day0).days) for v in visits)
    assert summary == sorted([("dlt_window", 4, 28), ("visit", 12, 84), ("visit", 24, 168), ("visit", 36, 252),
                              ("visit", 52, 364), ("response", 4, 28), ("response", 12, 84), ("response", 24, 168),
                              ("response", 52, 364)])
    week12 = next(v for v in visits if v.kind == "visit" and v.week == 12)
    assert followup.visit_state(week12, day0) == "scheduled"
    assert followup.visit_state(week12, week12.due_on) == "due"
    assert followup.visit_state(week12, week12.closes_on + timedelta(days=1)) == "overdue"
    dlt = next(v for v in visits if v.kind == "dlt_window")
    assert followup.visit_state(dlt, day0) == "due"
    assert [i.visit.kind for i in followup.worklist(db_session, a, day0)] == ["dlt_window"]
    assert followup.worklist(db_session, clinicians["b"], day0) == []
    later = week12.due_on
    assert {(i.visit.kind, i.visit.week, i.state) for i in followup.worklist(db_session, a, later)} >= {
        ("visit", 12, "due"), ("response", 12, "due"), ("dlt_window", 4, "overdue")}
    with as_user(a):
        with pytest.raises(ValidationFailed, match="in the future"):
            followup.complete_visit(db_session, week12, done_on=date.today() + timedelta(days=400), outcome="ok",
                                    current_user=a)
        followup.complete_visit(db_session, week12, done_on=None, outcome="stable disease", current_user=a)
    assert followup.visit_state(week12, later) == "done"
    # a second infusion does not make a second schedule
    assert len(followup.create_follow_up_schedule(db_session, p1, infusion.started_at)) == len(visits)


def test_adverse_events_keep_grade_relation_and_seriousness(db_session, issued, clinicians):
    a, p1 = clinicians["a"], issued["p1"]
    with as_user(a):
        with pytest.raises(Conflict, match="has not been infused"):
            followup.record_adverse_event(db_session, p1, term="Fever", onset_on=date.today(), ctcae_grade=1,
                                          relation="possible", serious=False, seriousness=None, current_user=a)
    scan(db_session, a, p1, issued["units"][0])
    infuse(db_session, a, clinicians["witness"], issued["r1"])
    with as_user(a):
        with pytest.raises(ValidationFailed) as refused:
            followup.record_adverse_event(db_session, p1, term="", onset_on=None, ctcae_grade=6, relation="maybe",
                                          serious=True, seriousness=None, current_user=a)
        assert set(refused.value.errors) == {"term", "onset_on", "ctcae_grade", "relation", "seriousness"}
        event = followup.record_adverse_event(db_session, p1, term="Cytokine release syndrome", onset_on=date.today(),
                                              ctcae_grade=3, relation="probable", serious=True,
                                              seriousness="hospitalisation", dose_limiting=True, current_user=a)
    assert event.related and event.serious and followup.in_dlt_window(db_session, p1, event.onset_on)
