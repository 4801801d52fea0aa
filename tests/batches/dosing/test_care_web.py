"""The dosing care pages and API with the test client: the timeline, reserving with a signature, the
pharmacy issue, the bedside scan with a wrong bag refused (409, STOP), the infusion with two signatures,
the worklist, the recall page and the chain of identity; refusals are 4xx pages that save nothing."""
from __future__ import annotations

from datetime import timedelta

from app.db import utcnow
from batches.dosing.care_models import DoseReservation
from tests.batches.dosing.care_support import *  # noqa: F401,F403  (fixtures)
from tests.batches.dosing.care_support import bags
from tests.conftest import PASSWORD


def local(moment):
    from app.web import site_zone

    return moment.astimezone(site_zone()).strftime("%Y-%m-%dT%H:%M")


def test_the_dosing_path_through_the_pages(app, client, login, db_session, released_lot, clinicians, make_patient):
    lot = released_lot()
    units = bags(db_session, lot)
    a = clinicians["a"]
    p1, p2 = make_patient(a), make_patient(a)
    login(a)
    with app.test_request_context():
        page = client.get(f"/care/patients/{p1.id}")
        assert page.status_code == 200 and "Reserve bags" in page.get_data(as_text=True)
        form = {"infusion_number": "1", "planned_at": local(utcnow() + timedelta(hours=2)),
                "unit_ids": [str(units[0].id)], "sign_username": a.username, "sign_password": PASSWORD}
        refused = client.post(f"/care/patients/{p1.id}/reservations", data={**form, "sign_password": "wrong"})
        assert refused.status_code == 422
        assert db_session.query(DoseReservation).count() == 0
        done = client.post(f"/care/patients/{p1.id}/reservations", data=form)
        assert done.status_code == 302, done.get_data(as_text=True)
        r1 = db_session.query(DoseReservation).one()
        again = client.post(f"/care/patients/{p2.id}/reservations", data=form)
        assert again.status_code == 409 and r1.number in again.get_data(as_text=True)
        client.post(f"/care/patients/{p2.id}/reservations", data={**form, "unit_ids": [str(units[1].id)]})
        assert client.get("/care/pharmacy").status_code == 403  # the pharmacist issues
        login(clinicians["pharmacist"])
        assert client.get("/care/pharmacy").status_code == 200
        for r in db_session.query(DoseReservation).all():
            assert client.post(f"/care/reservations/{r.id}/issue", data={"location": "Ward 7"}).status_code == 302
        login(a)
        wrong = client.post("/care/bedside", data={"wristband": p1.hospital_id,
                                                   "bag_identifier": units[1].product_identifier})
        assert wrong.status_code == 409 and "STOP" in wrong.get_data(as_text=True)
        ok = client.post("/care/bedside", data={"wristband": p1.hospital_id,
                                                "bag_identifier": units[0].product_identifier})
        assert ok.status_code == 302 and f"/care/reservations/{r1.id}/infusion" in ok.headers["Location"]
        infusion = {"started_at": local(utcnow() - timedelta(minutes=30)), "ended_at": local(utcnow()),
                    "volume_ml": "45", "reaction": "no", "sign_username": a.username, "sign_password": PASSWORD,
                    "witness_username": clinicians["witness"].username, "witness_password": PASSWORD}
        same = client.post(f"/care/reservations/{r1.id}/infusion", data={**infusion, "witness_username": a.username})
        assert same.status_code == 422
        recorded = client.post(f"/care/reservations/{r1.id}/infusion", data=infusion)
        assert recorded.status_code == 302, recorded.get_data(as_text=True)
        timeline = client.get(f"/care/patients/{p1.id}").get_data(as_text=True)
        assert "Week 12 visit" in timeline and "witnessed by" in timeline
        assert "DLT and adverse event window" in client.get("/care/follow-up").get_data(as_text=True)
        chain = client.get(f"/care/chain-of-identity?study_id={p1.study_id}").get_data(as_text=True)
        assert units[0].product_identifier in chain and p1.study_id in chain
        assert client.get(f"/care/reservations/{r1.id}").status_code == 200
        assert client.get(f"/care/recalls/{lot.id}").status_code == 200


def test_another_clinicians_patient_is_not_shown(client, login, db_session, clinicians, make_patient):
    theirs = make_patient(clinicians["b"])
    login(clinicians["a"])
    assert client.get(f"/care/patients/{theirs.id}").status_code == 403
    assert theirs.study_id not in client.get("/care/").get_data(as_text=True)


def test_odd_digits_and_bad_dates_in_care_forms_are_refused_in_words(app, client, login, db_session, clinicians,
                                                                    make_patient):
    """Characters that look like digits ('²') and impossible dates are 4xx messages that save nothing."""
    from batches.dosing.care_models import AdverseEvent

    patient = make_patient(clinicians["a"])
    login(clinicians["a"])
    with app.test_request_context():
        reserve = client.post(f"/care/patients/{patient.id}/reservations",
                              data={"infusion_number": "1", "planned_at": local(utcnow() + timedelta(hours=2)),
                                    "unit_ids": ["²"], "sign_username": clinicians["a"].username,
                                    "sign_password": PASSWORD})
        assert reserve.status_code == 422 and "Choose bags from the list" in reserve.get_data(as_text=True)
        event = client.post(f"/care/patients/{patient.id}/adverse-events",
                            data={"term": "Fever", "onset_on": "2026-02-30", "ctcae_grade": "²", "relation": "possible",
                                  "serious": "no", "dose_limiting": "no"})
        assert event.status_code == 422 and "is not a date" in event.get_data(as_text=True)
    assert db_session.query(DoseReservation).count() == 0
    assert db_session.query(AdverseEvent).count() == 0
