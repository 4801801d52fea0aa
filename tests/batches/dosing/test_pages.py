"""Dosing pages: availability answers at once for a weight and protocol, bad input gets a 422 message;
patients and weights through the pages, another clinician's patient is not found."""
from __future__ import annotations

from app.db import utcnow


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
