"""REST: patients and weights with the visibility rule, and dose availability for a weight and protocol."""
from __future__ import annotations

from app.db import utcnow


def body(**kw):
    data = dict(study_id="MSNK-01-001", hospital_id="H0001", initials="AB", date_of_birth="1970-05-01",
                protocol="MsNK", consent_date="2026-11-01")
    data.update(kw)
    return data


def test_patients_and_weights(client, care, api_headers):
    h1, h2 = api_headers(care["clin1"]), api_headers(care["clin2"])
    r = client.post("/api/v1/patients", json=body(), headers=h1)
    assert r.status_code == 201, r.get_json()
    pid = r.get_json()["id"]
    r = client.post(f"/api/v1/patients/{pid}/weights", json={"weight_kg": "70.5", "measured_on": utcnow().date().isoformat()},
                    headers=h1)
    assert r.status_code == 201, r.get_json()
    assert [w["weight_kg"] for w in client.get(f"/api/v1/patients/{pid}/weights", headers=h1).get_json()] == [70.5]
    assert client.get("/api/v1/patients", headers=h2).get_json() == []
    assert client.get(f"/api/v1/patients/{pid}", headers=h2).status_code == 404
    assert client.post(f"/api/v1/patients/{pid}/weights", json={"weight_kg": "60", "measured_on": "2026-11-02"},
                       headers=h2).status_code == 404
    assert len(client.get("/api/v1/patients", headers=api_headers(care["pharm"])).get_json()) == 1
    r = client.post(f"/api/v1/patients/{pid}/weights", json={"weight_kg": "-3", "measured_on": "2026-11-02"}, headers=h1)
    assert r.status_code == 422 and "outside 0.5 to 400 kg" in r.get_data(as_text=True)
    r = client.post("/api/v1/patients", json=body(study_id="OTHER"), headers=h1)
    assert r.status_code == 422 and "Hospital ID H0001 is already registered" in r.get_data(as_text=True)


def test_dose_availability_for_weight_and_protocol(client, care, regimens, api_headers):
    h = api_headers(care["clin1"])
    r = client.get("/api/v1/dose-availability?weight_kg=70&protocol=NKG2D-CAR-NK", headers=h)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()
    assert data["available"] is False
    assert [i["viable_cells_needed"] for i in data["infusions"]] == [2.1e9] * 3
    r = client.get("/api/v1/dose-availability?weight_kg=abc&protocol=MsNK", headers=h)
    assert r.status_code == 422
    r = client.get("/api/v1/dose-availability?protocol=MsNK", headers=h)
    assert r.status_code == 422 and "Give a patient, or a weight" in r.get_data(as_text=True)
    assert client.get("/api/v1/dose-availability?weight_kg=70&protocol=MsNK",
                      headers=api_headers(care["clin1"], "wrong")).status_code == 401
