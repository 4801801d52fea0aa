"""The tablet pages: intake form, list and search, unit page, QA disposition and custody through the web."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app import db
from app.audit import AuditEntry
from batches.sourcing.models import CbuCustodyEvent, CordBloodUnit
from tests.batches.sourcing.conftest import keyed, new_din, scanned
from tests.conftest import PASSWORD


def counts():
    return (db.session.execute(select(func.count()).select_from(CordBloodUnit)).scalar_one(),
            db.session.execute(select(func.count()).select_from(CbuCustodyEvent)).scalar_one(),
            db.session.execute(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.table_name == "cord_blood_unit")).scalar_one())


@pytest.fixture()
def operator(make_user, login):
    user = make_user("operator")
    login(user)
    return user


def test_intake_form_has_the_scanner_field_focused_first_and_numeric_keypads(client, operator, criteria):
    page = client.get("/sourcing/units/new").get_data(as_text=True)
    inputs = re.findall(r"<input id=\"f-(\w+)\"[^>]*>", page)
    assert inputs[0] == "din"
    din_input = re.search(r"<input id=\"f-din\"[^>]*>", page).group(0)
    assert "autofocus" in din_input and "data-scanner" in din_input
    for name in ("volume_ml", "tnc_cells", "cd34_cells", "viability_percent", "shipper_temperature_c"):
        assert 'inputmode="decimal"' in re.search(rf"<input id=\"f-{name}\"[^>]*>", page).group(0)
    assert operator.username in page  # received by defaults to the logged-in operator
    assert "style=" not in page and "<script>" not in page


def test_whole_intake_through_the_web_form(client, operator, criteria, intake_data):
    din = new_din()
    response = client.post("/sourcing/units/new", data=intake_data(din=scanned(din), received_by=operator.username))
    assert response.status_code == 302
    unit = db.session.execute(select(CordBloodUnit).where(CordBloodUnit.din == din)).scalar_one()
    assert response.headers["Location"].endswith(f"/sourcing/units/{unit.id}")
    assert unit.recorded_by == operator.username
    page = client.get(f"/sourcing/units/{unit.id}").get_data(as_text=True)
    for expected in ("received (awaiting quarantine)", "Donor eligibility", "eligible", "Acceptance criteria",
                     "Chain of custody", "Receipt", "Storage", "LN2-01", "Audit history", "Signatures",
                     "1.5 x 10^9"):
        assert expected in page
    assert "Sign:" not in page  # an operator sees no QA forms


def test_an_invalid_form_shows_inline_errors_keeps_the_entries_and_saves_nothing(client, operator, criteria,
                                                                                 intake_data):
    before = counts()
    data = intake_data(viability_percent="140", tnc_cells="lots", received_by=operator.username)
    response = client.post("/sourcing/units/new", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "viability must be between 0 and 100 %" in page
    assert "Write the total nucleated cell count" in page
    assert "nothing was saved" in page
    assert 'value="Madrid Cord Blood Bank"' in page  # the operator does not retype the rest
    assert counts() == before


def test_a_wrong_check_character_is_refused_with_a_message_that_says_so(client, operator, criteria, intake_data):
    din = new_din()
    right = keyed(din)[-1]
    wrong = "0" if right != "0" else "1"
    before = counts()
    response = client.post("/sourcing/units/new", data=intake_data(din=din + wrong, received_by=operator.username))
    assert response.status_code == 422
    assert f"check character &#39;{wrong}&#39; does not match" in response.get_data(as_text=True)
    assert counts() == before


def test_a_duplicate_din_is_refused_and_links_to_the_existing_unit(client, operator, make_unit, intake_data):
    existing = make_unit()
    before = counts()
    response = client.post("/sourcing/units/new", data=intake_data(din=scanned(existing.din),
                                                                   received_by=operator.username))
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert f'href="/sourcing/units/{existing.id}"' in page
    assert counts() == before


def test_missing_csrf_token_is_refused(client, operator, criteria, intake_data):
    before = counts()
    response = client.post("/sourcing/units/new", data=intake_data(received_by=operator.username), csrf=False)
    assert response.status_code == 400
    assert counts() == before


def test_list_searches_by_din_bank_status_and_date(client, operator, make_unit):
    first = make_unit(source_bank="Barcelona Bank")
    second = make_unit(source_bank="Lisbon Bank")
    page = client.get(f"/sourcing/units?din={first.din[-6:]}").get_data(as_text=True)
    assert first.din in page and second.din not in page
    page = client.get("/sourcing/units?bank=lisbon").get_data(as_text=True)
    assert second.din in page and first.din not in page
    page = client.get("/sourcing/units?status=accepted").get_data(as_text=True)
    assert first.din not in page
    today = first.received_at.date().isoformat()
    page = client.get(f"/sourcing/units?received_from={today}&received_to={today}&status=received").get_data(as_text=True)
    assert first.din in page and second.din in page
    page = client.get("/sourcing/units?received_to=2000-01-01").get_data(as_text=True)
    assert first.din not in page


def test_an_operator_cannot_accept_a_unit(client, make_unit, make_user, login):
    unit = make_unit()
    operator = make_user("operator")
    login(operator)
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "quarantine", "reason": "x", "sign_username": operator.username, "sign_password": PASSWORD})
    assert response.status_code == 403
    assert db.session.get(CordBloodUnit, unit.id).status == "received"


def test_qa_moves_a_unit_through_quarantine_to_acceptance_with_signatures(client, make_unit, make_user, login):
    unit = make_unit()
    qa = make_user("qa")
    login(qa)
    page = client.get(f"/sourcing/units/{unit.id}").get_data(as_text=True)
    assert "Sign: Received (awaiting quarantine)" not in page and "Sign: In quarantine" in page
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "quarantine", "reason": "stored in LN2", "sign_username": qa.username, "sign_password": PASSWORD})
    assert response.status_code == 302
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "accepted", "reason": "all criteria met", "sign_username": qa.username, "sign_password": PASSWORD,
        "sign_comment": "bag inspected"})
    assert response.status_code == 302
    assert db.session.get(CordBloodUnit, unit.id).status == "accepted"
    page = client.get(f"/sourcing/units/{unit.id}").get_data(as_text=True)
    assert "Quarantined by" in page and "Accepted by" in page and qa.full_name in page
    assert "all criteria met; bag inspected" in page
    assert "can be assigned to a batch" in page


def test_a_refused_transition_shows_the_reason_on_the_page_and_changes_nothing(client, make_unit, make_user, login):
    unit = make_unit(marker_syphilis="reactive")
    qa = make_user("qa")
    login(qa)
    client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "quarantine", "reason": "hold", "sign_username": qa.username, "sign_password": PASSWORD})
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "accepted", "reason": "ok", "sign_username": qa.username, "sign_password": PASSWORD})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "T. pallidum: reactive" in page and "exceptional release" in page
    assert db.session.get(CordBloodUnit, unit.id).status == "quarantine"


def test_a_wrong_password_on_the_web_changes_nothing(client, make_unit, make_user, login):
    unit = make_unit()
    qa = make_user("qa")
    login(qa)
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "quarantine", "reason": "hold", "sign_username": qa.username, "sign_password": "not-the-password"})
    assert response.status_code == 422
    assert "not correct" in response.get_data(as_text=True)
    assert db.session.get(CordBloodUnit, unit.id).status == "received"


def test_exceptional_release_through_the_web_needs_two_qa_people(client, make_unit, make_user, login):
    unit = make_unit(tnc_cells="4e8")
    first, second = make_user("qa"), make_user("qa")
    login(first)
    client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "quarantine", "reason": "hold", "sign_username": first.username, "sign_password": PASSWORD})
    response = client.post(f"/sourcing/units/{unit.id}/exceptional-release", data={
        "justification": "Only unit matching the recipient; clinician accepts lower TNC.",
        "sign_username": first.username, "sign_password": PASSWORD})
    assert response.status_code == 302
    client.post("/logout")
    login(second)
    response = client.post(f"/sourcing/units/{unit.id}/status", data={
        "status": "accepted", "reason": "exceptional release", "sign_username": second.username,
        "sign_password": PASSWORD})
    assert response.status_code == 302
    unit = db.session.get(CordBloodUnit, unit.id)
    assert unit.status == "accepted" and unit.exceptional_release
    page = client.get(f"/sourcing/units/{unit.id}").get_data(as_text=True)
    assert "NOT EVALUATED / EXCEPTIONAL RELEASE" in page
    assert "Only unit matching the recipient" in page
    listing = client.get("/sourcing/units").get_data(as_text=True)
    assert "exceptional release" in listing


def test_custody_movements_through_the_web(client, make_unit, make_user, login):
    unit = make_unit()
    operator = make_user("operator")
    login(operator)
    response = client.post(f"/sourcing/units/{unit.id}/custody", data={"action": "remove", "destination": "QC lab",
                                                                      "reason": "label check"})
    assert response.status_code == 302
    response = client.post(f"/sourcing/units/{unit.id}/custody", data={"action": "return", "storage_freezer": "ln2-02",
                                                                      "storage_rack": "2", "storage_box": "B",
                                                                      "storage_slot": "9"})
    assert response.status_code == 302
    unit = db.session.get(CordBloodUnit, unit.id)
    assert unit.storage_position == "LN2-02 / rack 2 / box B / slot 9"
    assert [(e.event_type, e.performed_by) for e in unit.custody_events][-2:] == [
        ("removal", operator.username), ("return", operator.username)]
    page = client.get(f"/sourcing/units/{unit.id}").get_data(as_text=True)
    assert "QC lab" in page and "Return" in page


def test_a_custody_movement_without_a_reason_is_refused(client, make_unit, make_user, login):
    unit = make_unit()
    login(make_user("operator"))
    response = client.post(f"/sourcing/units/{unit.id}/custody", data={"action": "dispose", "reason": ""})
    assert response.status_code == 422
    assert "needs a reason" in response.get_data(as_text=True)
    assert db.session.get(CordBloodUnit, unit.id).custody_state == "in_storage"


def test_a_returned_unit_needs_a_storage_position_in_the_intake_format(client, make_unit, make_user, login):
    unit = make_unit()
    login(make_user("operator"))
    client.post(f"/sourcing/units/{unit.id}/custody", data={"action": "remove", "destination": "QC", "reason": "check"})
    before = counts()
    response = client.post(f"/sourcing/units/{unit.id}/custody", data={
        "action": "return", "storage_freezer": "LN2 01!", "storage_rack": "1", "storage_box": "#", "storage_slot": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "equipment asset code" in page and "box is up to 20 letters or digits" in page
    assert counts() == before
    assert db.session.get(CordBloodUnit, unit.id).custody_state == "removed"


def test_a_removal_to_a_place_too_long_to_record_is_refused(client, make_unit, make_user, login):
    unit = make_unit()
    login(make_user("operator"))
    before = counts()
    response = client.post(f"/sourcing/units/{unit.id}/custody", data={
        "action": "remove", "destination": "bench " * 40, "reason": "check"})
    assert response.status_code == 422
    assert "At most 200 characters" in response.get_data(as_text=True)
    assert counts() == before


def test_search_dates_at_the_ends_of_the_calendar(client, make_unit, make_user, login):
    din = make_unit().din
    login(make_user("operator"))
    for query in ("received_to=9999-12-31", "received_from=0001-01-01", "received_from=2026-02-30"):
        response = client.get(f"/sourcing/units?{query}")
        assert response.status_code == 200, query
        assert din in response.get_data(as_text=True)


def test_ids_beyond_the_database_integer_are_404(client, make_user, login):
    login(make_user("qa"))
    huge = 2**64
    assert client.get(f"/sourcing/units/{huge}").status_code == 404
    assert client.post(f"/sourcing/units/{huge}/custody", data={"action": "dispose", "reason": "x"}).status_code == 404
    assert client.post(f"/sourcing/criteria/{huge}/approve", data={}).status_code == 404


def test_qa_drafts_and_approves_criteria_on_the_web(client, make_user, login):
    qa = make_user("qa")
    login(qa)
    assert "No version is approved yet" in client.get("/sourcing/criteria").get_data(as_text=True)
    response = client.post("/sourcing/criteria/new", data={
        "min_tnc_cells": "1.2x10^9", "min_cd34_cells": "2e6", "min_viability_percent": "75",
        "max_shipper_temperature_c": "-150", "max_collection_age_days": "3650",
        "required_markers": ["hiv_ab", "hiv_nat", "hbsag", "anti_hbc", "hcv_ab", "hcv_nat", "syphilis"],
        "change_description": "first version"})
    assert response.status_code == 302
    from batches.sourcing.models import CbuAcceptanceCriteria

    draft = db.session.execute(select(CbuAcceptanceCriteria)).scalars().one()
    assert draft.min_tnc_cells == 1.2e9 and "htlv" not in draft.required_marker_list
    response = client.post(f"/sourcing/criteria/{draft.id}/approve", data={
        "sign_username": qa.username, "sign_password": PASSWORD})
    assert response.status_code == 302
    assert "is in force since" in client.get("/sourcing/criteria").get_data(as_text=True)


def test_operator_cannot_create_criteria(client, make_user, login):
    login(make_user("operator"))
    response = client.post("/sourcing/criteria/new", data={"min_tnc_cells": "1"})
    assert response.status_code == 403


def test_home_has_the_sourcing_tile(client, make_user, login):
    login(make_user("operator"))
    assert "/sourcing/units" in client.get("/").get_data(as_text=True)
