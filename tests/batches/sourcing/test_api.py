"""REST API: the same validation and messages as the form, 422 per field, 409 duplicates, OpenAPI document."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import db
from batches.sourcing.models import CbuCustodyEvent, CordBloodUnit
from tests.batches.sourcing.conftest import new_din, scanned
from tests.conftest import PASSWORD

URL = "/api/v1/cord-blood-units"


def unit_count():
    return db.session.execute(select(func.count()).select_from(CordBloodUnit)).scalar_one()


@pytest.fixture()
def operator(make_user):
    return make_user("operator")


def test_whole_intake_through_the_api(client, api_headers, operator, criteria, intake_data):
    din = new_din()
    body = intake_data(din=scanned(din), received_by=operator.username, tnc_cells=1.5e9, volume_ml=24.5,
                       seal_intact=True, data_logger_reviewed=True)
    response = client.post(URL, json=body, headers=api_headers(operator))
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["din"] == din and data["status"] == "received" and data["eligibility"] == "eligible"
    assert data["tnc_cells"] == 1.5e9 and data["criteria_passed"] is True
    assert [r["criterion"] for r in data["criterion_results"]][:2] == ["tnc", "cd34"]
    assert [e["event_type"] for e in data["custody_events"]] == ["receipt", "storage"]
    assert data["exceptional_release"] is False
    fetched = client.get(f"{URL}/{data['id']}", headers=api_headers(operator)).get_json()
    assert fetched["din"] == din and fetched["signatures"] == []


def test_api_validation_gives_the_same_messages_per_field_and_saves_nothing(client, api_headers, operator, criteria,
                                                                            intake_data):
    before = unit_count()
    body = intake_data(viability_percent="140", din="G123498654321X", received_by=operator.username)
    del body["source_bank"]
    response = client.post(URL, json=body, headers=api_headers(operator))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert "viability must be between 0 and 100 %" in errors["viability_percent"][0]
    assert "check character 'X' does not match" in errors["din"][0]
    assert errors["source_bank"] == ["Enter the source cord blood bank."]
    assert unit_count() == before


def test_api_duplicate_din_is_409_with_a_link(client, api_headers, operator, make_unit, intake_data):
    existing_id = make_unit().id
    existing_din = db.session.get(CordBloodUnit, existing_id).din
    before = unit_count()
    response = client.post(URL, json=intake_data(din=scanned(existing_din), received_by=operator.username),
                           headers=api_headers(operator))
    assert response.status_code == 409
    data = response.get_json()
    assert data["existing_unit"] == f"{URL}/{existing_id}"
    assert "already" in data["errors"]["din"][0]
    assert unit_count() == before


def test_api_search_and_assignable_query(client, api_headers, operator, make_unit, make_accepted_unit):
    received = make_unit(source_bank="Porto Bank").din
    accepted = make_accepted_unit().din
    headers = api_headers(operator)
    dins = [u["din"] for u in client.get(f"{URL}?bank=porto", headers=headers).get_json()]
    assert dins == [received]
    dins = [u["din"] for u in client.get(f"{URL}?assignable=true", headers=headers).get_json()]
    assert accepted in dins and received not in dins
    assert client.get(f"{URL}?status=bogus", headers=headers).status_code == 422


def test_api_status_change_needs_qa_and_a_signature(client, api_headers, operator, make_unit, make_user):
    unit_id = make_unit().id
    qa = make_user("qa")
    qa_name, operator_name = qa.username, operator.username
    qa_headers, operator_headers = api_headers(qa), api_headers(operator)
    body = {"status": "quarantine", "reason": "hold", "username": operator_name, "password": PASSWORD}
    assert client.post(f"{URL}/{unit_id}/status", json=body, headers=operator_headers).status_code == 403
    body = {"status": "quarantine", "reason": "hold", "username": qa_name, "password": PASSWORD}
    response = client.post(f"{URL}/{unit_id}/status", json=body, headers=qa_headers)
    assert response.status_code == 200
    data = response.get_json()
    assert data["status"] == "quarantine"
    assert [(s["meaning"], s["comment"], s["status"]) for s in data["signatures"]] == [("quarantined", "hold", "valid")]
    body = {"status": "rejected", "username": qa_name, "password": PASSWORD}
    response = client.post(f"{URL}/{unit_id}/status", json=body, headers=qa_headers)
    assert response.status_code == 422 and "reason" in response.get_json()["errors"]
    body = {"status": "quarantine", "reason": "again", "username": qa_name, "password": PASSWORD}
    response = client.post(f"{URL}/{unit_id}/status", json=body, headers=qa_headers)
    assert response.status_code == 409 and "cannot become" in response.get_json()["message"]


def test_api_custody_events(client, api_headers, operator, make_unit):
    unit_id = make_unit().id
    headers = api_headers(operator)
    response = client.post(f"{URL}/{unit_id}/custody-events", json={"action": "remove", "destination": "QC",
                                                                    "reason": "check"}, headers=headers)
    assert response.status_code == 201 and response.get_json()["event_type"] == "removal"
    response = client.post(f"{URL}/{unit_id}/custody-events", json={"action": "return", "storage_freezer": "LN2-01"},
                           headers=headers)
    assert response.status_code == 422 and "storage_slot" in response.get_json()["errors"]
    events = client.get(f"{URL}/{unit_id}/custody-events", headers=headers).get_json()
    assert [e["event_type"] for e in events] == ["receipt", "storage", "removal"]
    assert db.session.execute(select(func.count()).select_from(CbuCustodyEvent)
                              .where(CbuCustodyEvent.unit_id == unit_id)).scalar_one() == 3


def test_api_missing_unit_is_404(client, api_headers, operator):
    assert client.get(f"{URL}/99999999", headers=api_headers(operator)).status_code == 404


def test_api_criteria_draft_and_approval(client, api_headers, make_user):
    qa = make_user("qa")
    qa_name, headers = qa.username, api_headers(qa)
    response = client.post("/api/v1/cbu-acceptance-criteria", json={"min_tnc_cells": "2x10^9",
                                                                    "change_description": "raise TNC"},
                           headers=headers)
    assert response.status_code == 201
    draft = response.get_json()
    assert draft["status"] == "draft" and draft["min_tnc_cells"] == 2e9 and len(draft["required_markers"]) == 9
    response = client.post(f"/api/v1/cbu-acceptance-criteria/{draft['id']}/approve",
                           json={"username": qa_name, "password": PASSWORD}, headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "approved"


def test_endpoints_are_in_the_openapi_document(client, api_headers, operator):
    spec = client.get("/api/v1/openapi.json", headers=api_headers(operator)).get_json()
    for path in ("/api/v1/cord-blood-units", "/api/v1/cord-blood-units/{unit_id}",
                 "/api/v1/cord-blood-units/{unit_id}/status", "/api/v1/cord-blood-units/{unit_id}/custody-events",
                 "/api/v1/cbu-acceptance-criteria"):
        assert path in spec["paths"]
    assert "409" in spec["paths"]["/api/v1/cord-blood-units"]["post"]["responses"]
    intake = spec["components"]["schemas"]["CordBloodUnitIntake"]["properties"]
    assert intake["din"]["type"] == "string" and "check character" in intake["din"]["description"]
    assert intake["marker_hiv_ab"]["enum"] == ["non_reactive", "reactive", "not_done"]


def test_api_refuses_nan_cell_counts_with_a_message(client, api_headers, operator, criteria, intake_data, make_user):
    import json

    before = unit_count()
    body = json.dumps(intake_data(received_by=operator.username, tnc_cells="NAN-HERE")).replace('"NAN-HERE"', "NaN")
    response = client.post(URL, data=body, headers={**api_headers(operator), "Content-Type": "application/json"})
    assert response.status_code == 422 and "tnc_cells" in response.get_json()["errors"]
    assert unit_count() == before
    response = client.post("/api/v1/cbu-acceptance-criteria", data='{"min_tnc_cells": NaN}',
                           headers={**api_headers(make_user("qa")), "Content-Type": "application/json"})
    assert response.status_code == 422 and "min_tnc_cells" in response.get_json()["errors"]


def test_api_receipt_date_filter_at_the_ends_of_the_calendar(client, api_headers, operator, make_unit):
    din = make_unit().din
    headers = api_headers(operator)
    for query in ("received_to=9999-12-31", "received_from=0001-01-01", "received_from=0001-01-01&received_to=9999-12-31"):
        response = client.get(f"{URL}?{query}", headers=headers)
        assert response.status_code == 200, query
        assert din in [u["din"] for u in response.get_json()]


def test_api_ids_beyond_the_database_integer_are_404(client, api_headers, operator, make_user):
    huge = 2**64
    qa = make_user("qa")
    qa_name, qa_headers, headers = qa.username, api_headers(qa), api_headers(operator)
    assert client.get(f"{URL}/{huge}", headers=headers).status_code == 404
    assert client.get(f"{URL}/{huge}/custody-events", headers=headers).status_code == 404
    response = client.post(f"/api/v1/cbu-acceptance-criteria/{huge}/approve",
                           json={"username": qa_name, "password": PASSWORD}, headers=qa_headers)
    assert response.status_code == 404


def test_api_custody_positions_and_places_are_checked_like_the_intake(client, api_headers, operator, make_unit):
    unit_id = make_unit().id
    headers = api_headers(operator)

    def event_count():
        return db.session.execute(select(func.count()).select_from(CbuCustodyEvent)
                                  .where(CbuCustodyEvent.unit_id == unit_id)).scalar_one()

    response = client.post(f"{URL}/{unit_id}/custody-events", json={"action": "remove", "destination": "x" * 201,
                                                                    "reason": "check"}, headers=headers)
    assert response.status_code == 422 and "destination" in response.get_json()["errors"]
    assert event_count() == 2
    response = client.post(f"{URL}/{unit_id}/custody-events", json={"action": "remove", "destination": "QC",
                                                                    "reason": "check"}, headers=headers)
    assert response.status_code == 201
    response = client.post(f"{URL}/{unit_id}/custody-events", json={
        "action": "return", "storage_freezer": "LN2-01", "storage_rack": "r" * 21, "storage_box": "#",
        "storage_slot": "1"}, headers=headers)
    assert response.status_code == 422
    assert {"storage_rack", "storage_box"} <= set(response.get_json()["errors"])
    assert event_count() == 3
    assert db.session.get(CordBloodUnit, unit_id).custody_state == "removed"


def test_api_bank_search_takes_wildcards_literally(client, api_headers, operator, make_unit):
    make_unit(source_bank="Porto Bank")
    headers = api_headers(operator)
    assert client.get(f"{URL}?bank=%25", headers=headers).get_json() == []
    assert client.get(f"{URL}?bank=porto_bank", headers=headers).get_json() == []
    assert len(client.get(f"{URL}?bank=porto%20bank", headers=headers).get_json()) == 1
