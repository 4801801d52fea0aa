"""The REST API applies the same rules as the pages."""
from __future__ import annotations

from tests.conftest import PASSWORD


def test_api_runs_a_step_with_the_same_rules(client, api_headers, people, make_batch, new_asset, seed_recipes):
    batch = make_batch("MSNK")
    op, op2 = people["operator"], people["operator2"]
    detail = client.get(f"/api/v1/batches/{batch.id}", headers=api_headers(op)).get_json()
    thaw = detail["steps"][0]
    assert detail["lot_number"] == batch.lot_number and thaw["step_key"] == "thaw"
    url = f"/api/v1/batches/{batch.id}/steps/{thaw['id']}"
    refused = client.post(url + "/entries", headers=api_headers(op), json={
        "version": thaw["version"], "entries": {"din_matches": {"value": "fail"}}})
    assert refused.status_code == 422 and "din_matches" in refused.get_json()["errors"]
    cabinet = new_asset("biosafety_cabinet")
    saved = client.post(url + "/entries", headers=api_headers(op), json={
        "version": thaw["version"], "entries": {"din_matches": {"value": "pass"}, "thaw_cabinet": {"value": cabinet.code},
                                                "bag_intact": {"value": "intact"}}})
    assert saved.status_code == 201, saved.get_json()
    assert {e["entry_key"] for e in saved.get_json()} == {"din_matches", "thaw_cabinet", "bag_intact"}
    stale = client.post(url + "/entries", headers=api_headers(op), json={
        "version": thaw["version"], "entries": {"din_matches": {"value": "pass"}}})
    assert stale.status_code == 409 and "Reload" in stale.get_json()["message"]
    step = client.get(url, headers=api_headers(op)).get_json()
    signed = client.post(url + "/signatures", headers=api_headers(op), json={
        "meaning": "performed", "username": op.username, "password": PASSWORD, "version": step["version"]})
    assert signed.status_code == 201 and signed.get_json()["status"] == "performed"
    same = client.post(url + "/signatures", headers=api_headers(op), json={
        "meaning": "verified", "username": op.username, "password": PASSWORD})
    assert same.status_code == 422
    verified = client.post(url + "/signatures", headers=api_headers(op2), json={
        "meaning": "verified", "username": op2.username, "password": PASSWORD})
    assert verified.status_code == 201 and verified.get_json()["status"] == "complete"
    step = client.get(url, headers=api_headers(op)).get_json()
    assert [s["meaning"] for s in step["signatures"]] == ["performed", "verified"]
    entry_id = next(e["id"] for e in step["entries"] if e["entry_key"] == "bag_intact")
    corrected = client.post(f"/api/v1/entries/{entry_id}/correction", headers=api_headers(op2), json={
        "value": "leak", "confirm": True, "comment": "Seen on re-inspection", "reason": "Leak found at port",
        "version": step["version"]})
    assert corrected.status_code == 201 and corrected.get_json()["replaces_id"] == entry_id
    exceptions = client.get(f"/api/v1/batches/{batch.id}/exceptions", headers=api_headers(op)).get_json()
    assert {"correction", "out_of_limit"} <= {e["kind"] for e in exceptions}
    deviations = client.get(f"/api/v1/deviations?batch_id={batch.id}", headers=api_headers(op)).get_json()
    assert len(deviations) == 1 and deviations[0]["automatic"]


def test_api_recipes_materials_and_deviations(client, api_headers, people, seed_recipes, db_session):
    from tests.batches.execution.test_recipes import MINIMAL

    sup, qa = people["supervisor"], people["qa"]
    assert client.get("/api/v1/recipes", headers=api_headers(people["operator"])).status_code == 200
    assert client.post("/api/v1/recipes", headers=api_headers(people["operator"]),
                       json={"definition": MINIMAL}).status_code == 403
    created = client.post("/api/v1/recipes", headers=api_headers(sup), json={"definition": MINIMAL})
    assert created.status_code == 201 and created.get_json()["spec"]["code"] == "TEST-R"
    rid = created.get_json()["id"]
    assert client.post(f"/api/v1/recipes/{rid}/submission", headers=api_headers(sup)).status_code == 200
    approved = client.post(f"/api/v1/recipes/{rid}/approval", headers=api_headers(qa),
                           json={"username": qa.username, "password": PASSWORD})
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    changed = client.put(f"/api/v1/recipes/{rid}", headers=api_headers(sup), json={"definition": MINIMAL})
    assert changed.status_code == 409

    material = client.post("/api/v1/materials", headers=api_headers(sup),
                           json={"code": "IL21", "name": "IL-21", "unit": "vial"})
    assert material.status_code == 201
    bad_lot = client.post("/api/v1/materials/lots", headers=api_headers(sup),
                          json={"material_code": "IL21", "lot_number": "X", "expiry_date": "soon",
                                "quantity_received": 5})
    assert bad_lot.status_code == 422 and "expiry_date" in bad_lot.get_json()["errors"]
    lot = client.post("/api/v1/materials/lots", headers=api_headers(sup),
                      json={"material_code": "IL21", "lot_number": "X1", "expiry_date": "2031-01-01",
                            "quantity_received": 5})
    assert lot.status_code == 201 and lot.get_json()["qc_status"] == "quarantined"
    lot_status = f"/api/v1/materials/lots/{lot.get_json()['id']}/qc-status"
    by_supervisor = client.put(lot_status, headers=api_headers(sup), json={
        "qc_status": "released", "reason": "CoA reviewed", "username": sup.username, "password": PASSWORD})
    assert by_supervisor.status_code == 403  # a lot's QC status belongs to QC/QA
    unsigned = client.put(lot_status, headers=api_headers(qa), json={"qc_status": "released", "reason": "CoA reviewed"})
    assert unsigned.status_code == 422
    released = client.put(lot_status, headers=api_headers(qa), json={
        "qc_status": "released", "reason": "CoA reviewed", "username": qa.username, "password": PASSWORD})
    assert released.status_code == 200 and released.get_json()["qc_status"] == "released"
    from app.signatures import signatures_for
    from batches.execution.models import MaterialLot

    signed = signatures_for(db_session, db_session.get(MaterialLot, lot.get_json()["id"]))
    assert [(v.signature.meaning, v.signature.signer_username, v.valid) for v in signed] == [
        ("released", qa.username, True)]

    opened = client.post("/api/v1/deviations", headers=api_headers(people["operator"]),
                         json={"title": "Spill", "description": "Medium spilled in the cabinet"})
    assert opened.status_code == 201
    did = opened.get_json()["id"]
    assert client.post(f"/api/v1/deviations/{did}/closure", headers=api_headers(qa),
                       json={"username": qa.username, "password": PASSWORD}).status_code == 422
    assert client.put(f"/api/v1/deviations/{did}/assessment", headers=api_headers(qa),
                      json={"classification": "minor", "impact_assessment": "None"}).status_code == 200
    closed = client.post(f"/api/v1/deviations/{did}/closure", headers=api_headers(qa),
                         json={"username": qa.username, "password": PASSWORD})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"


def test_api_refuses_over_long_text_and_records_a_reported_deviation_for_review(client, api_headers, people,
                                                                                make_batch):
    from tests.batches.execution.test_recipes import MINIMAL

    sup, op, qa = (api_headers(people[role]) for role in ("supervisor", "operator", "qa"))
    batch_id = make_batch("MSNK").id
    long_source = client.post("/api/v1/recipes", headers=sup,
                              json={"definition": MINIMAL, "source_name": "r" * 201 + ".toml"})
    assert long_source.status_code == 422 and "source_name" in long_source.get_json()["errors"]
    long_code = client.post("/api/v1/materials", headers=sup, json={"code": "C" * 41, "name": "n", "unit": "u"})
    assert long_code.status_code == 422 and "code" in long_code.get_json()["errors"]
    assert client.post("/api/v1/materials", headers=sup,
                       json={"code": "IL21", "name": "IL-21", "unit": "vial"}).status_code == 201
    long_lot = client.post("/api/v1/materials/lots", headers=sup,
                           json={"material_code": "IL21", "lot_number": "L" * 81, "expiry_date": "2031-01-01",
                                 "quantity_received": 5})
    assert long_lot.status_code == 422 and "lot_number" in long_lot.get_json()["errors"]

    opened = client.post("/api/v1/deviations", headers=op,
                         json={"batch_id": batch_id, "title": "Door open", "description": "5 min during seeding"})
    assert opened.status_code == 201
    number = opened.get_json()["number"]
    exceptions = client.get(f"/api/v1/batches/{batch_id}/exceptions", headers=qa).get_json()
    assert [e["description"] for e in exceptions if e["source_table"] == "deviation"] == [
        f"Deviation {number} opened by hand: Door open"]
