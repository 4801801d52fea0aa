"""Label and certificate pages and REST endpoints: PDF answers with a filename naming the identifier or
lot, refusals as 4xx in the user's terms, reprints with a reason."""
from __future__ import annotations

from app import db
from batches.documents.models import LabelPrint
from batches.quality import operations as ops
from batches.quality.models import QualityLot
from tests.batches.documents.conftest import release
from tests.batches.documents.scan import scan_page
from tests.conftest import basic_auth


def test_bag_page_prints_then_reprints_with_a_reason(client, login, ready_lot, people):
    lot = ready_lot("MSNK")
    bag = ops.units_of_batch(db.session, lot.batch_id)[0]
    login(people["operator"])
    page = client.get(f"/quality/units/{bag.id}").get_data(as_text=True)
    assert 'id="label-refused"' in page and "print-label" not in page
    refused = client.post(f"/documents/units/{bag.id}/label", data={"page_size": "4x4"})
    assert refused.status_code == 409 and b"in testing" in refused.data
    release(db.session, db.session.get(QualityLot, lot.id), people["qa"])
    db.session.commit()
    bag_id = bag.id
    page = client.get(f"/quality/units/{bag_id}").get_data(as_text=True)
    assert "Print the label" in page, page[page.find("id=\"label\""):][:600]
    printed = client.post(f"/documents/units/{bag.id}/label", data={"page_size": "2x1"})
    assert printed.status_code == 200 and printed.mimetype == "application/pdf"
    assert f'filename="label-{bag.product_identifier}-2x1.pdf"' in printed.headers["Content-Disposition"]
    assert scan_page(printed.data, scale=8)["Data Matrix"] == bag.product_identifier
    page = client.get(f"/quality/units/{bag.id}").get_data(as_text=True)
    assert "Reprint the label" in page and "Printed 1 time(s)" in page
    no_reason = client.post(f"/documents/units/{bag.id}/label", data={"page_size": "4x4"})
    assert no_reason.status_code == 422 and b"reprint" in no_reason.data
    again = client.post(f"/documents/units/{bag.id}/label", data={"page_size": "4x4", "reason": "Torn label"})
    assert again.status_code == 200
    rows = db.session.query(LabelPrint).order_by(LabelPrint.id).all()
    assert [(r.reprint, r.reprint_reason) for r in rows] == [(False, None), (True, "Torn label")]
    assert client.post(f"/documents/units/{bag.id}/label", data={"page_size": "9x9", "reason": "x"}).status_code == 422
    assert client.post("/documents/units/999999/label", data={}).status_code == 404


def test_cbu_page_prints_its_label(client, login, ready_lot, people):
    lot = ready_lot("MSNK")
    login(people["operator"])
    unit_id = lot.batch.cord_blood_unit_id
    page = client.get(f"/sourcing/units/{unit_id}").get_data(as_text=True)
    assert "Print the label" in page, page[page.find("id=\"label\""):][:600]
    printed = client.post(f"/documents/cord-blood-units/{unit_id}/label", data={"page_size": "4x4"})
    assert printed.status_code == 200
    assert scan_page(printed.data)["Code 128"] == lot.batch.cord_blood_din


def test_lot_review_page_and_api_give_the_certificate_and_its_versions(client, login, ready_lot, people):
    lot = ready_lot("MSNK")
    login(people["qa2"])
    assert client.get(f"/documents/lots/{lot.id}/coa").status_code == 404
    lot = db.session.get(QualityLot, lot.id)
    release(db.session, lot, people["qa"])
    db.session.commit()
    page = client.get(f"/quality/lots/{lot.id}/review").get_data(as_text=True)
    assert 'id="coa"' in page and "version 1" in page
    got = client.get(f"/documents/lots/{lot.id}/coa/v1")
    assert got.mimetype == "application/pdf" and f"CoA-{lot.lot_number}-v1.pdf" in got.headers["Content-Disposition"]
    assert client.get(f"/documents/lots/{lot.id}/coa/v7").status_code == 404
    headers = basic_auth(people["qa2"].username)
    api = client.get(f"/api/v1/documents/lots/{lot.id}/coa", headers=headers)
    assert api.status_code == 200 and api.mimetype == "application/pdf" and api.data == got.data
    versions = client.get(f"/api/v1/documents/lots/{lot.id}/coa/versions", headers=headers).get_json()
    assert [v["version"] for v in versions] == [1] and len(versions[0]["sha256"]) == 64


def test_api_prints_a_bag_label_and_refuses_a_reprint_without_reason(client, ready_lot, people):
    lot = ready_lot("MSNK")
    release(db.session, lot, people["qa"])
    db.session.commit()
    bag = ops.units_of_batch(db.session, lot.batch_id)[0]
    headers = basic_auth(people["operator"].username)
    first = client.post(f"/api/v1/documents/product-units/{bag.id}/label", json={"page_size": "4x4"}, headers=headers)
    assert first.status_code == 200 and first.mimetype == "application/pdf"
    assert bag.product_identifier in first.headers["Content-Disposition"]
    refused = client.post(f"/api/v1/documents/product-units/{bag.id}/label", json={}, headers=headers)
    assert refused.status_code == 422


def test_openapi_documents_the_pdf_answers(client, make_user):
    spec = client.get("/api/v1/openapi.json", headers=basic_auth(make_user("operator").username)).get_json()
    answer = spec["paths"]["/api/v1/documents/lots/{lot_id}/coa"]["get"]["responses"]["200"]
    assert "application/pdf" in answer["content"]


def test_qc_lot_page_prints_then_reprints_a_sample_label_with_a_reason(client, login, ready_lot, qc):
    from batches.quality import results as res
    from tests.batches.execution.conftest import as_user

    lot = ready_lot("MSNK")
    with as_user(qc["analyst"]):
        sample = res.draw_sample(db.session, lot, test_keys=["sterility"])
    db.session.commit()
    sample_id, identifier = sample.id, sample.sample_identifier
    login(qc["analyst"])
    page = client.get(f"/quality/lots/{lot.id}").get_data(as_text=True)
    card = page[page.find(f'id="sample-label-{sample_id}"'):][:1500]
    assert f'action="/documents/samples/{sample_id}/label"' in card and "Print the sample label" in card, card
    assert 'name="reason"' not in card
    printed = client.post(f"/documents/samples/{sample_id}/label", data={"page_size": "2x1"})
    assert printed.status_code == 200 and printed.mimetype == "application/pdf"
    assert scan_page(printed.data, scale=8)["Data Matrix"] == identifier
    page = client.get(f"/quality/lots/{lot.id}").get_data(as_text=True)
    card = page[page.find(f'id="sample-label-{sample_id}"'):][:1500]
    assert "Reprint the sample label" in card and "Label printed 1 time(s)" in card and 'name="reason"' in card
    no_reason = client.post(f"/documents/samples/{sample_id}/label", data={"page_size": "2x1"})
    assert no_reason.status_code == 422 and b"reprint" in no_reason.data
    again = client.post(f"/documents/samples/{sample_id}/label", data={"page_size": "2x1", "reason": "Tube relabelled"})
    assert again.status_code == 200
    rows = db.session.query(LabelPrint).filter_by(label_kind="sample").order_by(LabelPrint.id).all()
    assert [(r.subject_id, r.reprint, r.reprint_reason) for r in rows] == [
        (sample_id, False, None), (sample_id, True, "Tube relabelled")]
    page = client.get(f"/quality/lots/{lot.id}").get_data(as_text=True)
    assert "(reprint: Tube relabelled)" in page
