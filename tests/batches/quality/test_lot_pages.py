"""Whole lots from completed batch record to release through the QC and QA pages, the OOS pages, and the
disposition refused with the review page's blocking list."""
from __future__ import annotations

import pytest

from app import db
from batches.quality import operations as ops
from batches.quality import results as res
from batches.quality.models import QualityLot
from tests.batches.quality.conftest import PASSING
from tests.conftest import PASSWORD


@pytest.fixture()
def qc(make_user):
    return {"analyst": make_user("qc_analyst"), "reviewer": make_user("qc_analyst")}


def names(people, qc):
    return {k: v.username for k, v in {**people, **qc}.items()}


def qc_through_pages(client, login, lot_id, product, analyst, reviewer, skip=()):
    login(analyst)
    assert client.get(f"/quality/lots/{lot_id}").status_code == 200
    assert client.post(f"/quality/lots/{lot_id}/pull").status_code == 302
    assert client.post(f"/quality/lots/{lot_id}/samples", data={"tests": ["sterility", "gram_stain"]}).status_code == 302
    lot = db.session.get(QualityLot, lot_id)
    sample = res.samples_of(db.session, lot)[0].sample_identifier
    for key, value in PASSING[product].items():
        if key in skip:
            continue
        data = {"test_key": key, "value": value, "method": "SOP-QC"}
        if key in ("sterility", "gram_stain"):
            data["sample_identifier"] = sample
        response = client.post(f"/quality/lots/{lot_id}/results", data=data)
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    login(reviewer)
    for result in res.results_of(db.session, db.session.get(QualityLot, lot_id)):
        if result.status == "recorded":
            response = client.post(f"/quality/results/{result.id}/review",
                                   data={"sign_username": reviewer.username, "sign_password": PASSWORD})
            assert response.status_code == 302, response.get_data(as_text=True)[:2000]


@pytest.mark.parametrize("code, product", [("MSNK", "MsNK"), ("NKG2D-CAR-NK", "NKG2D-CAR-NK")])
def test_whole_lot_from_completed_record_to_release_through_the_pages(client, login, completed_batch, seed_specs,
                                                                      people, qc, code, product):
    batch = completed_batch(code)
    lot_id = ops.lot_of_batch(db.session, batch).id
    qa = people["qa"]
    qc_through_pages(client, login, lot_id, product, qc["analyst"], qc["reviewer"])
    login(qa)
    page = client.get(f"/quality/lots/{lot_id}/review").get_data(as_text=True)
    assert "Nothing blocks the release" in page and "Chain of identity" in page and "None" not in page
    assert batch.cord_blood_din in page
    response = client.post(f"/quality/lots/{lot_id}/disposition", data={
        "decision": "released", "sign_username": qa.username, "sign_password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    lot = db.session.get(QualityLot, lot_id)
    assert lot.status == "released"
    assert all(u.status == "available" for u in ops.units_of_batch(db.session, lot.batch_id))
    batch_page = client.get(f"/batches/{lot.batch_id}").get_data(as_text=True)
    assert "released" in batch_page and "available" in batch_page
    review = client.get(f"/quality/lots/{lot_id}/review").get_data(as_text=True)
    assert "Disposition history" in review and qa.username in review


def test_release_refused_on_the_page_with_the_blocking_list(client, login, completed_batch, seed_specs, people, qc):
    batch = completed_batch("MSNK")
    lot_id = ops.lot_of_batch(db.session, batch).id
    qc_through_pages(client, login, lot_id, "MsNK", qc["analyst"], qc["reviewer"], skip=("sterility", "potency"))
    qa = people["qa"]
    login(qa)
    page = client.get(f"/quality/lots/{lot_id}/review").get_data(as_text=True)
    assert "Potency: specific lysis" in page and "no result yet" in page
    refused = client.post(f"/quality/lots/{lot_id}/disposition", data={
        "decision": "released", "sign_username": qa.username, "sign_password": PASSWORD})
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "Potency" in text and "Sterility" in text
    assert db.session.get(QualityLot, lot_id).status == "in_testing"
    conditional = client.post(f"/quality/lots/{lot_id}/disposition", data={
        "decision": "conditionally_released", "pending_tests": ["sterility"], "justification": "fresh product",
        "sign_username": qa.username, "sign_password": PASSWORD})
    assert conditional.status_code == 409 and "Potency" in conditional.get_data(as_text=True)


def test_conditional_release_and_recall_through_the_pages(client, login, completed_batch, seed_specs, people, qc):
    batch = completed_batch("MSNK")
    lot_id = ops.lot_of_batch(db.session, batch).id
    qc_through_pages(client, login, lot_id, "MsNK", qc["analyst"], qc["reviewer"], skip=("sterility",))
    qa = people["qa"]
    login(qa)
    page = client.get(f"/quality/lots/{lot_id}/review").get_data(as_text=True)
    assert "Conditional release" in page
    response = client.post(f"/quality/lots/{lot_id}/disposition", data={
        "decision": "conditionally_released", "pending_tests": ["sterility"],
        "justification": "fresh product, Gram stain negative", "sign_username": qa.username,
        "sign_password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    unit = ops.units_of_batch(db.session, batch.id)[0]
    assert "conditionally available" in client.get(f"/quality/units/{unit.id}").get_data(as_text=True)
    login(qc["analyst"])
    assert client.post(f"/quality/lots/{lot_id}/results", data={"test_key": "sterility", "value": "growth"}
                       ).status_code == 302
    assert db.session.get(QualityLot, lot_id).status == "on_recall"
    page = client.get(f"/quality/units/{unit.id}").get_data(as_text=True)
    assert "blocked" in page and "recall" in page


def test_oos_investigation_through_the_pages(client, login, completed_batch, seed_specs, people, qc):
    batch = completed_batch("MSNK")
    lot_id = ops.lot_of_batch(db.session, batch).id
    login(qc["analyst"])
    response = client.post(f"/quality/lots/{lot_id}/results", data={"test_key": "mycoplasma", "value": "detected"})
    assert response.status_code == 302
    [inv] = res.investigations_of(db.session, db.session.get(QualityLot, lot_id))
    page = client.get(f"/quality/investigations/{inv.id}").get_data(as_text=True)
    assert inv.number in page and "Phase I" in page and "None" not in page
    again = client.post(f"/quality/lots/{lot_id}/results", data={"test_key": "mycoplasma", "value": "not detected"})
    assert again.status_code == 409 and "under OOS investigation" in again.get_data(as_text=True)
    assert client.post(f"/quality/investigations/{inv.id}/phase1", data={
        "phase1_assessment": "negative control amplified", "laboratory_error": "yes"}).status_code == 302
    assert client.post(f"/quality/investigations/{inv.id}/invalidate", data={"reason": "plate contaminated"}
                       ).status_code == 302
    retest = client.post(f"/quality/lots/{lot_id}/results", data={
        "test_key": "mycoplasma", "value": "not detected", "investigation_id": inv.id})
    assert retest.status_code == 302
    results = res.investigation_results(db.session, res.get_investigation(db.session, inv.id))
    qa = people["qa"]
    login(qa)
    closed = client.post(f"/quality/investigations/{inv.id}/close", data={
        "conclusion": "invalidated", "reportable_result_id": results[1].id, "conclusion_text": "lab error",
        "sign_username": qa.username, "sign_password": PASSWORD})
    assert closed.status_code == 302, closed.get_data(as_text=True)[:2000]
    page = client.get(f"/quality/investigations/{inv.id}").get_data(as_text=True)
    assert "Closed by" in page and "plate contaminated" in page and "reportable" in page
    assert client.get("/quality/investigations/").status_code == 200


def test_result_entry_errors_are_shown_on_the_page(client, login, completed_batch, seed_specs, qc):
    lot_id = ops.lot_of_batch(db.session, completed_batch("MSNK")).id
    login(qc["analyst"])
    response = client.post(f"/quality/lots/{lot_id}/results", data={"test_key": "potency", "value": "1,500"})
    assert response.status_code == 422 and "could be read as" in response.get_data(as_text=True)
    assert res.results_of(db.session, db.session.get(QualityLot, lot_id)) == []


def test_disposition_pages_need_qa(client, login, completed_batch, seed_specs, qc):
    lot_id = ops.lot_of_batch(db.session, completed_batch("MSNK")).id
    login(qc["analyst"])
    assert client.get(f"/quality/lots/{lot_id}/review").status_code == 403
    assert client.post(f"/quality/lots/{lot_id}/disposition", data={"decision": "released"}).status_code == 403
