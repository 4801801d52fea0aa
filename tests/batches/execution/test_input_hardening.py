"""Bad input is refused at the schema with a message and nothing saved: control characters, identifiers
outside ASCII, bodies that are too large or not JSON (never a 500)."""
from __future__ import annotations

from sqlalchemy import select

from app import db
from batches.execution.models import MaterialLot
from tests.conftest import PASSWORD, basic_auth


def lot_id(stock, code="CD3-OKT3"):
    lot_number = next(iter(stock.values())) if code not in stock else stock[code]
    return db.session.execute(select(MaterialLot.id).where(MaterialLot.lot_number == lot_number)).scalar_one()


def test_a_nul_in_a_reason_is_refused_at_the_schema(client, make_user, stock):
    qa = make_user("qa").username
    lot = lot_id(stock)
    for reason in ("bad\u0000reason", "escape\u001b[31m", "\ud800 lone surrogate"):
        response = client.put(f"/api/v1/materials/lots/{lot}/qc-status", headers=basic_auth(qa),
                              json={"qc_status": "rejected", "reason": reason, "username": qa,
                                    "password": PASSWORD})
        assert response.status_code == 422, response.json
        assert "Control characters" in response.json["errors"]["reason"][0]
    assert db.session.get(MaterialLot, lot).qc_status == "released"
    response = client.put(f"/api/v1/materials/lots/{lot}/qc-status", headers=basic_auth(qa),
                          json={"qc_status": "rejected", "reason": "contaminated\r\nsee deviation\tD-1",
                                "username": qa, "password": PASSWORD})
    assert response.status_code == 200, response.json  # line breaks and tabs are fine in long text


def test_control_characters_in_short_text_and_forms_are_refused(client, make_user, login):
    admin = make_user("admin")
    name = admin.username
    response = client.post("/api/v1/users", headers=basic_auth(name),
                           json={"username": "ctl", "full_name": "Line\nBreak", "password": "x" * 20,
                                 "roles": ["operator"]})
    assert response.status_code == 422 and "full_name" in response.json["errors"]
    client.post("/login", data={"username": name, "password": "correct-horse-battery-staple"})
    response = client.post("/admin/users/new", data={"username": "ctl2", "full_name": "Null\u0000Name",
                                                     "password": "x" * 20, "roles": ["operator"]})
    assert response.status_code == 422 and "Control characters" in response.get_data(as_text=True)


def test_identifiers_take_ascii_only(client, make_user, stock):
    supervisor = make_user("supervisor")
    code = next(iter(stock))
    response = client.post("/api/v1/materials/lots", headers=basic_auth(supervisor.username),
                           json={"material_code": code, "lot_number": "LOT-\u0663\u0664", "quantity_received": 5,
                                 "expiry_date": "2099-01-01"})
    assert response.status_code == 422, response.json
    assert "lot_number" in response.json["errors"]
    response = client.post("/api/v1/equipment/assets", headers=basic_auth(make_user("admin").username),
                           json={"code": "INC-\u0663", "name": "x", "asset_type": "co2_incubator", "location": "A"})
    assert response.status_code == 422, response.json


def test_a_request_too_large_is_refused_with_413_before_it_is_read(app, client, make_user):
    admin = make_user("admin")
    body = '{"reason": "' + "x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + '"}'
    response = client.post("/api/v1/users", headers={**basic_auth(admin.username), "Content-Type": "application/json"},
                           data=body)
    assert response.status_code == 413 and "nothing was saved" in response.json["message"]


def test_a_body_that_is_not_json_gets_415(client, make_user):
    admin = make_user("admin").username
    response = client.post("/api/v1/users", headers=basic_auth(admin),
                           data={"username": "formuser", "full_name": "F", "password": "x" * 20})
    assert response.status_code == 415 and "JSON" in response.json["message"]
    response = client.post("/api/v1/users", headers={**basic_auth(admin), "Content-Type": "text/plain"},
                           data="username=x")
    assert response.status_code == 415
