"""Quality pages and REST endpoints: bags on the batch page, scanning a bag, its chain of identity and
storage, specification versions and QA approval through the pages and the API."""
from __future__ import annotations

import re

from app import db
from batches.quality import operations as ops
from batches.quality.models import Specification
from tests.conftest import PASSWORD


def test_batch_page_lists_the_bags_and_the_lot_state(client, login, completed_batch, seed_specs, people):
    batch = completed_batch("MSNK")
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)
    units = ops.units_of_batch(db.session, batch.id)
    assert 'id="lot"' in page and "in testing" in page and "SPEC-MSNK v1" in page
    for unit in units:
        assert unit.product_identifier in page
    panel = page[page.index('id="lot"'):page.index('id="actions"')]
    assert "3 x 10^9" in panel and "50 mL" in panel and "quarantined" in panel
    assert "None" not in panel


def test_batch_page_before_the_fill_says_no_bags_yet(client, login, make_batch, people):
    batch = make_batch("MSNK")
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)
    assert "No bags yet" in page


def test_scanning_a_bag_opens_its_page_with_the_chain_of_identity(client, login, completed_batch, seed_specs, people):
    batch = completed_batch("NKG2D-CAR-NK")
    unit = ops.units_of_batch(db.session, batch.id)[1]
    login(people["operator"])
    response = client.get("/quality/units/scan", query_string={"identifier": "=" + unit.product_identifier})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/quality/units/{unit.id}")
    page = client.get(f"/quality/units/{unit.id}").get_data(as_text=True)
    assert batch.cord_blood_din in page and batch.lot_number in page and "quarantine" in page
    assert "Volume" in page and "not recorded" in page and "None" not in page
    missing = client.get("/quality/units/scan", query_string={"identifier": "NOPE-1"})
    assert missing.status_code == 404 and "No infusion bag" in missing.get_data(as_text=True)
    assert client.get("/quality/units/scan").status_code == 200


def test_storage_location_through_the_page(client, login, completed_batch, seed_specs, people):
    batch = completed_batch("MSNK")
    unit = ops.units_of_batch(db.session, batch.id)[0]
    login(people["operator"])
    assert client.post(f"/quality/units/{unit.id}/location", data={"storage_location": "FRIDGE-2"}).status_code == 302
    refused = client.post(f"/quality/units/{unit.id}/location", data={"storage_location": "FRIDGE-9"})
    assert refused.status_code == 422
    assert db.session.get(type(unit), unit.id).storage_location == "FRIDGE-2"


def test_lot_list(client, login, completed_batch, seed_specs, people):
    batch = completed_batch("MSNK")
    login(people["qa"])
    page = client.get("/quality/lots/").get_data(as_text=True)
    assert batch.lot_number in page and "SPEC-MSNK v1" in page and "in testing" in page


def test_new_specification_version_approved_through_the_pages(client, login, seed_specs, people):
    v1 = seed_specs["MsNK"]
    login(people["qa"])
    listing = client.get("/quality/specifications/").get_data(as_text=True)
    assert "SPEC-MSNK v1" in listing and "SPEC-NKG2D-CAR-NK v1" in listing
    view = client.get(f"/quality/specifications/{v1.id}").get_data(as_text=True)
    assert "Sterility (14-day culture)" in view and "may be pending" in view and "&gt; 98 %" in view
    form = client.get(f"/quality/specifications/new?from={v1.id}").get_data(as_text=True)
    text = re.search(r'<textarea[^>]*>(.*?)</textarea>', form, re.S).group(1)
    import html

    text = html.unescape(text).replace("limit = 20.0", "limit = 25.0")
    bad = client.post("/quality/specifications/new", data={"definition": "code = 1", "change_summary": "x"})
    assert bad.status_code == 422 and "does not follow" in bad.get_data(as_text=True)
    created = client.post("/quality/specifications/new", data={"definition": text,
                                                              "change_summary": "potency limit 25 %"})
    assert created.status_code == 302
    v2 = db.session.query(Specification).filter_by(code="SPEC-MSNK", version=2).one()
    assert client.post(f"/quality/specifications/{v2.id}/submit").status_code == 302
    own = client.post(f"/quality/specifications/{v2.id}/approve",
                      data={"sign_username": people["qa"].username, "sign_password": PASSWORD})
    assert own.status_code == 409
    login(people["qa2"])
    approved = client.post(f"/quality/specifications/{v2.id}/approve",
                           data={"sign_username": people["qa2"].username, "sign_password": PASSWORD})
    assert approved.status_code == 302
    page = client.get(f"/quality/specifications/{v2.id}").get_data(as_text=True)
    assert "Approved by" in page and "approved" in page
    assert db.session.get(Specification, v1.id).status == "superseded"


def test_operators_cannot_author_or_approve_specifications(client, login, seed_specs, people):
    login(people["operator"])
    assert client.get("/quality/specifications/").status_code == 200
    assert client.get("/quality/specifications/new").status_code == 403


def test_api_specifications_lots_and_units(client, api_headers, completed_batch, seed_specs, people):
    batch = completed_batch("MSNK")
    qa = api_headers(people["qa"])
    specs = client.get("/api/v1/specifications", headers=qa).get_json()
    assert {s["code"] for s in specs} == {"SPEC-MSNK", "SPEC-NKG2D-CAR-NK"}
    detail = client.get(f"/api/v1/specifications/{seed_specs['MsNK'].id}", headers=qa).get_json()
    assert any(t["key"] == "sterility" and t["gating"] == "may_be_pending" for t in detail["tests"])
    lots = client.get("/api/v1/lots", headers=qa).get_json()
    [lot] = [item for item in lots if item["batch_id"] == batch.id]
    assert {i["test"] for i in lot["per_kg_limits"]} == {"residual_cd3", "endotoxin"}
    units = client.get("/api/v1/product-units", query_string={"batch_id": batch.id}, headers=qa).get_json()
    assert len(units) == 4 and all(u["status"] == "quarantined" and not u["issuable"] for u in units)
    one = client.get("/api/v1/product-units", query_string={"identifier": units[0]["product_identifier"]},
                     headers=qa).get_json()
    assert one[0]["id"] == units[0]["id"]
    assert client.get("/api/v1/product-units", headers=qa).status_code == 422
    assert client.get("/api/v1/product-units", query_string={"identifier": "X"}, headers=qa).status_code == 404
    moved = client.post(f"/api/v1/product-units/{units[0]['id']}/storage-location", json={"storage_location": "F-1"},
                        headers=api_headers(people["operator"]))
    assert moved.status_code == 200 and moved.get_json()["storage_location"] == "F-1"


def test_api_specification_draft_submit_approve(client, api_headers, seed_specs, people):
    from batches.quality.specifications import specification_as_toml

    text = specification_as_toml(seed_specs["NKG2D-CAR-NK"]).replace("limit = 20.0", "limit = 30.0")
    author, approver = api_headers(people["qa"]), api_headers(people["qa2"])
    approver_name = people["qa2"].username
    assert client.post("/api/v1/specifications", json={"definition": text}, headers=author).status_code == 422
    created = client.post("/api/v1/specifications", json={"definition": text, "change_summary": "CAR+ >= 30 %"},
                          headers=author)
    assert created.status_code == 201, created.get_json()
    spec_id = created.get_json()["id"]
    assert client.post(f"/api/v1/specifications/{spec_id}/submission", headers=author).status_code == 200
    assert client.put(f"/api/v1/specifications/{spec_id}", json={"definition": text}, headers=author).status_code == 409
    approval = client.post(f"/api/v1/specifications/{spec_id}/approval",
                           json={"username": approver_name, "password": PASSWORD}, headers=approver)
    assert approval.status_code == 200 and approval.get_json()["status"] == "approved"
    assert client.post(f"/api/v1/specifications/{spec_id}/approval", json={"username": "x"},
                       headers=approver).status_code == 422


def test_api_results_oos_review_and_disposition(client, api_headers, completed_batch, seed_specs, people, make_user):
    from tests.batches.quality.conftest import PASSING

    batch = completed_batch("MSNK")
    lot_id = ops.lot_of_batch(db.session, batch).id
    analyst, reviewer = make_user("qc_analyst"), make_user("qc_analyst")
    a, r, qa = api_headers(analyst), api_headers(reviewer), api_headers(people["qa"])
    reviewer_name, qa_name = reviewer.username, people["qa"].username
    sample = client.post(f"/api/v1/lots/{lot_id}/samples", json={"tests": ["sterility"]}, headers=a)
    assert sample.status_code == 201 and sample.get_json()["sample_identifier"].endswith("-S01")
    pulled = client.post(f"/api/v1/lots/{lot_id}/in-process-results", headers=a).get_json()
    assert {p["source"] for p in pulled} == {"batch_record"}
    for key, value in PASSING["MsNK"].items():
        body = {"test_key": key, "value": "12" if key == "potency" else value}
        created = client.post(f"/api/v1/lots/{lot_id}/results", json=body, headers=a)
        assert created.status_code == 201, created.get_json()
    assert client.post(f"/api/v1/lots/{lot_id}/results", json={"test_key": "potency", "value": "x"},
                       headers=a).status_code in (409, 422)
    [inv] = client.get("/api/v1/investigations", headers=qa).get_json()
    assert inv["status"] == "phase_1" and inv["test_key"] == "potency"
    review = client.get(f"/api/v1/lots/{lot_id}/review", headers=qa).get_json()
    assert any(b["code"].startswith("investigation:") for b in review["blockers"])
    refused = client.post(f"/api/v1/lots/{lot_id}/disposition", json={
        "decision": "released", "username": qa_name, "password": PASSWORD}, headers=qa)
    assert refused.status_code == 409
    assert client.post(f"/api/v1/investigations/{inv['id']}/phase1", json={
        "assessment": "target cells contaminated", "laboratory_error": True}, headers=qa).status_code == 200
    assert client.post(f"/api/v1/investigations/{inv['id']}/invalidation", json={"reason": "K562 mycoplasma"},
                       headers=qa).status_code == 200
    retest = client.post(f"/api/v1/lots/{lot_id}/results", json={
        "test_key": "potency", "value": "41", "investigation_id": inv["id"]}, headers=a).get_json()
    closed = client.post(f"/api/v1/investigations/{inv['id']}/closure", json={
        "conclusion": "invalidated", "conclusion_text": "lab error", "reportable_result_id": retest["id"],
        "username": qa_name, "password": PASSWORD}, headers=qa)
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    for result in client.get(f"/api/v1/lots/{lot_id}/results", headers=a).get_json():
        if result["status"] == "recorded":
            reviewed = client.post(f"/api/v1/results/{result['id']}/review",
                                   json={"username": reviewer_name, "password": PASSWORD}, headers=r)
            assert reviewed.status_code == 200, reviewed.get_json()
    released = client.post(f"/api/v1/lots/{lot_id}/disposition", json={
        "decision": "released", "username": qa_name, "password": PASSWORD}, headers=qa)
    assert released.status_code == 201, released.get_json()
    assert client.get(f"/api/v1/lots/{lot_id}", headers=qa).get_json()["status"] == "released"
