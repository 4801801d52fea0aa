"""Dosing pages: availability answers at once for a weight and protocol, bad input gets a 422 message;
patients and weights through the pages, another clinician's patient is not found."""
from __future__ import annotations

from app.db import utcnow

STATUS_BAD_NUMBER = 422


def test_availability_page_answers_and_explains(client, login, care, regimens):
    login(care["clin1"])
    r = client.get("/dosing/availability")
    assert r.status_code == 200 and 'inputmode="decimal"' in r.get_data(as_text=True)
    r = client.get("/dosing/availability?weight_kg=70&protocol=MsNK")
    text = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "2.1 x 10^9 viable cells" in text and "Infusion 3" in text and "When a dose will be available" in text
    r = client.get("/dosing/availability?weight_kg=seventy&protocol=MsNK")
    assert r.status_code == 422 and "Type the weight in kg" in r.get_data(as_text=True)


def test_patient_pages(client, login, care, regimens):
    login(care["clin1"])
    r = client.post("/dosing/patients/new", data={"study_id": "MSNK-01-007", "hospital_id": "H7", "initials": "XY",
                                                 "date_of_birth": "1980-02-03", "protocol": "MsNK",
                                                 "consent_date": "2026-11-01"})
    assert r.status_code == 302, r.get_data(as_text=True)
    page = r.headers["Location"]
    r = client.post(page + "/weights", data={"weight_kg": "68.5", "measured_on": utcnow().date().isoformat()})
    assert r.status_code == 302
    text = client.get(page).get_data(as_text=True)
    assert "68.5 kg" in text and "REG-MSNK v1" in text
    r = client.post("/dosing/patients/new", data={"study_id": "", "hospital_id": "H8", "initials": "XY",
                                                 "date_of_birth": "1980-02-03", "protocol": "MsNK",
                                                 "consent_date": "2026-11-01"})
    assert r.status_code == 422 and "Study subject ID is required" in r.get_data(as_text=True)
    assert "MSNK-01-007" in client.get("/dosing/patients/").get_data(as_text=True)
    client.post("/logout")
    login(care["clin2"])
    assert client.get(page).status_code == 404
    assert "MSNK-01-007" not in client.get("/dosing/patients/").get_data(as_text=True)


def test_regimen_new_version_and_approval_through_the_pages(client, login, regimens, care, make_user):
    from tests.conftest import PASSWORD

    author, approver = care["qa"], make_user("qa")
    login(author)
    base = regimens["NKG2D-CAR-NK"]
    assert "3 x 10^7 viable cells per kg" in client.get(f"/dosing/regimens/{base.id}").get_data(as_text=True)
    r = client.post(f"/dosing/regimens/{base.id}/new-version", data={"dose_per_kg": "2.5e7", "change_summary": "lower"})
    assert r.status_code == 302, r.get_data(as_text=True)
    draft_url = r.headers["Location"]
    assert client.post(draft_url + "/submit").status_code == 302
    client.post("/logout")
    login(approver)
    r = client.post(draft_url + "/approve", data={"sign_username": approver.username, "sign_password": PASSWORD,
                                                 "sign_meaning": "approved"})
    assert r.status_code == 302, r.get_data(as_text=True)
    text = client.get(draft_url).get_data(as_text=True)
    assert "2.5 x 10^7 viable cells per kg" in text and "approved" in text
    r = client.post(f"/dosing/regimens/{base.id}/new-version", data={"dose_per_kg": "many", "change_summary": "x"})
    assert r.status_code == STATUS_BAD_NUMBER and "dose per kg: type a number" in r.get_data(as_text=True)
