"""What a new user hit on the floor: the wrong equipment type accepted, steps done days ahead of plan,
unsigned starts, submissions and review decisions, material QC status changed by production, and GMP
words ("hold", "release") used for claiming a step."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.errors import Conflict, ReasonRequired, SignatureRefused, ValidationFailed
from app.signatures import STATUS_CHANGED, signatures_for
from batches.execution import materials as material_ops
from batches.execution import operations as ops
from batches.execution import recipes
from batches.execution.exceptions import exceptions_of, review_exceptions
from batches.execution.models import Batch, BatchException, ExceptionReview, MaterialLot
from tests.batches.execution.conftest import as_user, record, sign, step_of
from tests.batches.execution.test_recipes import MINIMAL, approve
from tests.batches.sourcing.conftest import sign_as
from tests.conftest import PASSWORD


def _complete_steps_before(db_session, batch, key):
    for step in batch.steps:
        if step.step_key == key:
            break
        step.status = "complete"
    db_session.flush()


# --- 3: the equipment type of a scan ----------------------------------------------------------------

def test_an_incubator_is_refused_for_the_biosafety_cabinet_scan(db_session, make_batch, people, new_asset):
    batch = make_batch("MSNK")
    incubator, cabinet = new_asset("co2_incubator"), new_asset("biosafety_cabinet")
    thaw = step_of(batch, "thaw")
    with pytest.raises(ValidationFailed, match=f"{incubator.code} is a co2 incubator, not a biosafety cabinet") as no:
        record(db_session, thaw, people["operator"], thaw_cabinet=incubator.code)
    assert "thaw_cabinet" in no.value.errors
    record(db_session, thaw, people["operator"], thaw_cabinet=cabinet.code)
    assert ops.current_entries(db_session, batch)["thaw_cabinet"].asset_code == cabinet.code


def test_a_recipe_names_only_known_asset_types_and_only_on_equipment_entries():
    bad_type = MINIMAL.replace('type = "number"', 'type = "equipment"\nasset_types = ["toaster"]').replace(
        'unit = "cells"\nhard_low = 1e6\n', '')
    with pytest.raises(ValidationFailed, match="toaster"):
        recipes.parse_recipe_text(bad_type)
    with pytest.raises(ValidationFailed, match="only an equipment entry"):
        recipes.parse_recipe_text(MINIMAL + 'asset_types = ["co2_incubator"]\n')


def test_demo_data_registers_a_calibrated_biosafety_cabinet(db_session):
    from batches.execution.demo import DEMO_CABINET, create_demo_data
    from equipment.operations import check_asset_usable

    create_demo_data(db_session)
    usable = check_asset_usable(db_session, DEMO_CABINET)
    assert usable.usable and usable.asset.asset_type == "biosafety_cabinet"


# --- 4: steps before their planned window ------------------------------------------------------------

def test_a_step_before_its_planned_day_needs_a_reason_and_becomes_an_exception(db_session, make_batch, people,
                                                                               stock):
    batch = make_batch("MSNK")
    _complete_steps_before(db_session, batch, "feed_day3")
    day3 = step_of(batch, "feed_day3")
    with as_user(people["operator"]), pytest.raises(ReasonRequired, match="before its planned time"):
        ops.take_step(db_session, day3, people["operator"])
    with pytest.raises(ReasonRequired, match="before its planned time"):
        record(db_session, day3, people["operator"], vcd_d3="5e5")
    record(db_session, day3, people["operator"], reason="Counted early to plan the day-7 transfer", vcd_d3="5e5")
    early = [e for e in exceptions_of(db_session, batch) if e.kind == "early"]
    assert len(early) == 1 and "Counted early to plan the day-7 transfer" in early[0].description
    assert early[0].step_id == day3.id


def test_a_step_in_its_window_needs_no_reason(db_session, make_batch, people):
    batch = make_batch("MSNK")
    record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass")
    assert exceptions_of(db_session, batch) == []


def test_a_hard_earliest_start_in_the_recipe_refuses_even_with_a_reason(db_session, people, make_accepted_unit):
    text = MINIMAL.replace('day = 0.0', 'day = 2.0\nearliest_start_hours = 36.0')
    with as_user(people["supervisor"]):
        recipe = recipes.create_recipe_draft(db_session, text)
    approve(db_session, recipe, people["supervisor"], people["qa"])
    unit = make_accepted_unit()
    with as_user(people["supervisor"]):
        batch = ops.start_batch(db_session, unit_id=unit.id, recipe_id=recipe.id, **sign_as(people["supervisor"]))
    step = batch.steps[0]
    with as_user(people["operator"]), pytest.raises(Conflict, match="hard earliest start"):
        ops.take_step(db_session, step, people["operator"], reason="We are ready now")
    assert step.status == "pending"


# --- 6: signatures to start, to send to QA, and on QA's review decisions ----------------------------

def test_starting_a_batch_is_signed_by_the_supervisor(db_session, seed_recipes, people, make_accepted_unit):
    unit = make_accepted_unit()
    supervisor = people["supervisor"]
    with as_user(supervisor), pytest.raises(SignatureRefused):
        ops.start_batch(db_session, unit_id=unit.id, recipe_id=seed_recipes["MSNK"].id, username=supervisor.username,
                        password="not-the-password", current_user=supervisor)
    db_session.rollback()
    assert db_session.execute(select(Batch).where(Batch.cord_blood_unit_id == unit.id)).first() is None
    with as_user(supervisor):
        batch = ops.start_batch(db_session, unit_id=unit.id, recipe_id=seed_recipes["MSNK"].id, **sign_as(supervisor))
    [started] = signatures_for(db_session, batch)
    assert started.valid and started.signature.meaning == "started"
    assert started.signature.signer_full_name == supervisor.full_name


def test_the_start_page_asks_for_the_signature(client, login, people, seed_recipes, make_accepted_unit):
    unit = make_accepted_unit()
    login(people["supervisor"])
    page = client.get("/batches/start").get_data(as_text=True)
    assert 'name="sign_password"' in page
    unsigned = client.post("/batches/start", data={"unit_id": unit.id, "recipe_id": seed_recipes["MSNK"].id})
    assert unsigned.status_code in (401, 403, 422) and "password" in unsigned.get_data(as_text=True).lower()


def _completed_batch_with_exceptions(db_session, make_batch, people):
    """A batch whose steps are all signed, with a comment and an early step among its exceptions."""
    batch = make_batch("MSNK")
    record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass",
           bag_intact=ops.EntryInput(value="intact", comment="Small crease on the bag"))
    for step in batch.steps:
        step.status = "complete"
    batch.status = "completed"
    db_session.flush()
    return batch


def test_sending_to_qa_is_signed_and_qa_signs_one_decision_over_several_exceptions(db_session, make_batch, people,
                                                                                   stock):
    batch = make_batch("MSNK")
    _complete_steps_before(db_session, batch, "feed_day3")
    record(db_session, step_of(batch, "feed_day3"), people["operator"], reason="Counted a day early",
           vcd_d3=ops.EntryInput(value="5e5", comment="Counter recalibrated this morning"))
    for step in batch.steps:
        step.status = "complete"
    batch.status = "completed"
    db_session.commit()
    supervisor, qa = people["supervisor"], people["qa"]
    with as_user(supervisor), pytest.raises(SignatureRefused):
        ops.submit_batch_for_review(db_session, batch, batch.row_version, username=supervisor.username,
                                    password="wrong-password", current_user=supervisor)
    db_session.rollback()
    batch = db_session.get(Batch, batch.id)
    with as_user(supervisor):
        ops.submit_batch_for_review(db_session, batch, batch.row_version, **sign_as(supervisor))
    assert batch.status == "in_review"
    assert [v.signature.meaning for v in signatures_for(db_session, batch)] == ["started", "submitted"]

    open_ones = exceptions_of(db_session, batch, open_only=True)
    assert {e.kind for e in open_ones} == {"early", "comment"}
    with as_user(qa):
        review = review_exceptions(db_session, batch, [e.id for e in open_ones], "Both explained; no impact",
                                   **sign_as(qa))
    assert exceptions_of(db_session, batch, open_only=True) == []
    assert all(e.review_id == review.id and e.reviewed_by == qa.username for e in open_ones)
    [signed] = signatures_for(db_session, review)
    assert signed.valid and signed.signature.meaning == "reviewed"
    for exc in open_ones:  # the list is part of what was signed
        assert f"#{exc.id} {exc.kind}: {exc.description}" in review.covered
    with pytest.raises(Conflict, match="already reviewed"):
        with as_user(qa):
            review_exceptions(db_session, batch, [open_ones[0].id], "again", **sign_as(qa))
    from app.audit import audit_reason

    with audit_reason(db_session, "test: the covered list is altered"):
        review.covered = review.covered.splitlines()[0]
        db_session.flush()
    assert signatures_for(db_session, review)[0].status == STATUS_CHANGED


def test_a_review_decision_is_refused_without_a_valid_signature_or_for_another_batch(db_session, make_batch, people):
    batch = _completed_batch_with_exceptions(db_session, make_batch, people)
    other = make_batch("MSNK")
    qa = people["qa"]
    exc = exceptions_of(db_session, batch)[0]
    with as_user(qa), pytest.raises(SignatureRefused):
        review_exceptions(db_session, batch, [exc.id], "ok", username=qa.username, password="nope", current_user=qa)
    db_session.rollback()
    with as_user(qa), pytest.raises(ValidationFailed, match="not part of this batch"):
        review_exceptions(db_session, other, [exc.id], "ok", **sign_as(qa))
    with as_user(qa), pytest.raises(ValidationFailed, match="Choose the exceptions"):
        review_exceptions(db_session, batch, [], "ok", **sign_as(qa))
    assert db_session.get(BatchException, exc.id).reviewed_at is None
    assert db_session.execute(select(ExceptionReview)).first() is None


def test_qa_reviews_several_exceptions_on_the_batch_page_with_one_signature(client, login, db_session, make_batch,
                                                                            people):
    batch = make_batch("MSNK")
    record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass",
           bag_intact=ops.EntryInput(value="intact", comment="Small crease on the bag"))
    record(db_session, step_of(batch, "mnc_isolation"), people["operator"], reason="Thaw signed on paper first",
           mnc_viability=ops.EntryInput(value="92", comment="Counted twice"))
    db_session.commit()
    ids = [e.id for e in exceptions_of(db_session, batch)]
    assert len(ids) == 3  # two comments and the step done out of order
    login(people["qa"])
    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)
    assert page.count('name="exception_id"') == 3 and 'id="review-form"' in page
    response = client.post(f"/batches/{batch.id}/exception-reviews", data={
        "exception_id": [str(i) for i in ids], "review_comment": "Comments read; no impact",
        "sign_username": people["qa"].username, "sign_password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert db_session.execute(select(ExceptionReview)).scalars().one().covered.count("\n") == 2
    page = client.get(f"/batches/{batch.id}").get_data(as_text=True)
    assert "Reviewed by" in page and "Comments read; no impact" in page


# --- 7: a material lot's QC status belongs to QC/QA, e-signed ------------------------------------------

def test_production_cannot_change_a_lot_qc_status_and_qc_signs_it(client, login, db_session, make_user, people):
    from batches.execution.models import Material

    material = db_session.execute(select(Material)).scalars().first() or material_ops.create_material(
        db_session, code="IL21", name="IL-21", unit="vial")
    lot = material_ops.receive_lot(db_session, material, lot_number="QC-1",
                                   expiry_date=(ops.utcnow() + timedelta(days=90)).date(), quantity=5)
    db_session.commit()
    login(people["supervisor"])
    assert "Change QC status" not in client.get("/materials/").get_data(as_text=True)
    refused = client.post(f"/materials/lots/{lot.id}/status", data={"qc_status": "released", "reason": "CoA ok"})
    assert refused.status_code == 403
    analyst = make_user("qc_analyst")
    login(analyst)
    page = client.get("/materials/").get_data(as_text=True)
    assert "Change QC status" in page and 'name="sign_password"' in page
    unsigned = client.post(f"/materials/lots/{lot.id}/status", data={"qc_status": "released", "reason": "CoA ok"})
    assert unsigned.status_code in (401, 403, 422)
    assert db_session.get(MaterialLot, lot.id).qc_status == "quarantined"
    signed = client.post(f"/materials/lots/{lot.id}/status", data={
        "qc_status": "released", "reason": "CoA reviewed", "sign_username": analyst.username,
        "sign_password": PASSWORD})
    assert signed.status_code == 302
    lot = db_session.get(MaterialLot, lot.id)
    assert lot.qc_status == "released"
    [sig] = signatures_for(db_session, lot)
    assert sig.valid and sig.signature.meaning == "released" and sig.signature.comment == "CoA reviewed"


def test_a_lot_received_on_the_page_is_quarantined_whatever_the_form_says(client, login, db_session, people):
    material_ops.create_material(db_session, code="IL21", name="IL-21", unit="vial")
    db_session.commit()
    login(people["supervisor"])
    response = client.post("/materials/lots/new", data={"material_code": "IL21", "lot_number": "R-1",
                                                        "expiry_date": "2031-01-01", "quantity": "5",
                                                        "qc_status": "released"})
    assert response.status_code == 302
    lot = db_session.execute(select(MaterialLot).where(MaterialLot.lot_number == "R-1")).scalar_one()
    assert lot.qc_status == "quarantined"


# --- 8: taking a step, not holding or releasing it ------------------------------------------------------

def test_claiming_a_step_never_says_hold_or_release(client, login, make_batch, people, api_headers):
    batch = make_batch("MSNK")
    step = step_of(batch, "thaw")
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}/steps/{step.id}").get_data(as_text=True)
    assert "Take this step" in page
    assert not re.search(r"\b(hold|release)\b", page.split("</header>", 1)[1], re.IGNORECASE)
    taken = client.post(f"/api/v1/batches/{batch.id}/steps/{step.id}/take",
                        json={"version": step.row_version})
    assert taken.status_code == 200, taken.get_json()
    assert taken.get_json()["taken_by"] == people["operator"].username
    page = client.get(f"/batches/{batch.id}/steps/{step.id}").get_data(as_text=True)
    assert "Let go of this step" in page and not re.search(r"\bhold\b", page.split("</header>", 1)[1], re.I)
    assert client.post(f"/api/v1/batches/{batch.id}/steps/{step.id}/hold",
                       json={}).status_code == 404
    let_go = client.post(f"/api/v1/batches/{batch.id}/steps/{step.id}/let-go",
                         json={})
    assert let_go.status_code == 200 and let_go.get_json()["taken_by"] is None
    spec = client.get("/api/v1/openapi.json").get_json()
    step_paths = [p for p in spec["paths"] if "/steps/" in p]
    assert not [p for p in step_paths if re.search(r"hold|release", p)]


# --- 11: clinicians see only what they need ------------------------------------------------------------

def test_clinicians_see_no_cord_blood_units_donor_eligibility_or_freezer_positions(client, login, make_user,
                                                                                   make_accepted_unit):
    unit = make_accepted_unit()
    login(make_user("clinician"))
    home = client.get("/").get_data(as_text=True)
    assert "Cord blood units" not in home and "Receive" not in home
    assert client.get("/sourcing/units").status_code == 403
    assert client.get(f"/sourcing/units/{unit.id}").status_code == 403


def test_record_history_names_a_batch_by_its_lot_number(client, login, make_batch, people):
    batch = make_batch("MSNK")
    login(people["operator"])
    page = client.get(f"/records/batch/{batch.id}/history").get_data(as_text=True)
    assert f"History of batch {batch.lot_number}" in page and f"batch {batch.id}<" not in page
    step = batch.steps[0]
    page = client.get(f"/records/batch_step/{step.id}/history").get_data(as_text=True)
    assert f"batch {batch.lot_number} step 1" in page


# --- 9: what the pages say ----------------------------------------------------------------------------

def test_numbers_limits_and_formulas_read_the_same_way_everywhere(seed_recipes):
    from app.web import format_number
    from batches.execution.limits import limits_text, readable_formula

    assert [format_number(v) for v in (3e7, 300000, 92.0, 37.25, 2.0, 0.0, 1e-5, None)] == [
        "3 x 10^7", "3 x 10^5", "92", "37.25", "2", "0", "1 x 10^-5", ""]
    text = limits_text({"unit": "cells", "target": 5e7, "alert_low": 4e7, "alert_high": 6e7, "hard_low": 2e7})
    assert text == "target 5 x 10^7 cells; alert 4 x 10^7–6 x 10^7; hard ≥ 2 x 10^7"
    labels = {k: s["label"] for k, s in recipes.entry_specs(seed_recipes["MSNK"]).items()}
    assert readable_formula("total_cells_d3 / seeded_cells", labels) == (
        f"{labels['total_cells_d3']} ÷ {labels['seeded_cells']}")
    assert readable_formula("(a - b) * 24", {"a": "Stop", "b": "Start"}) == "(Stop - Start) × 24"


def test_the_step_page_names_units_windows_and_only_typed_missing_entries(client, login, db_session, make_batch,
                                                                          people, stock):
    batch = make_batch("MSNK")
    _complete_steps_before(db_session, batch, "feed_day3")
    step = step_of(batch, "feed_day3")
    record(db_session, step, people["operator"], reason="Counted early", medium_lot_d3=ops.EntryInput(
        value=stock["NK-MEDIUM"], quantity="100"))
    db_session.commit()
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}/steps/{step.id}").get_data(as_text=True)
    assert "100 mL used" in page
    assert "Calculated: total_cells_d3" not in page and "Calculated: Total cells ÷ Viable cells seeded" in page
    missing = re.search(r"To sign as performed, record: ([^<]*)\.", page).group(1)
    assert "Fold expansion" not in missing and "Viable cell density" in missing
    start, end = ops.planned_start(step), ops.due_by(step)
    assert f"{end:%a %d %b %H:%M}" in page  # a 24 h window names the day it ends
    assert "None" not in page.split("</header>", 1)[1] and "e+0" not in page


def test_the_confirm_box_is_offered_only_for_a_refusal_it_can_override(client, login, make_batch, people):
    batch = make_batch("MSNK")
    step = step_of(batch, "mnc_isolation")
    login(people["operator"])
    page = client.get(f"/batches/{batch.id}/steps/{step.id}").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    typo = client.post(f"/batches/{batch.id}/steps/{step.id}/entries", data={
        "version": version, "reason": "thaw on paper", "mnc_viability": "ninety"})
    assert typo.status_code == 422 and "I checked the value" not in typo.get_data(as_text=True)
    low = client.post(f"/batches/{batch.id}/steps/{step.id}/entries", data={
        "version": version, "reason": "thaw on paper", "mnc_viability": "50"})
    assert low.status_code == 422 and "I checked the value: it is right" in low.get_data(as_text=True)


# --- 5: the growth curve on elapsed time ---------------------------------------------------------------

def test_growth_curve_plots_the_time_since_the_start_not_the_recipe_day(db_session, make_batch, people, stock):
    from app.audit import audit_reason
    from batches.execution.overview import growth_curve

    batch = make_batch("MSNK")
    with audit_reason(db_session, "test: the batch started two days ago"):
        batch.started_at = ops.utcnow() - timedelta(days=2)
        db_session.flush()
    _complete_steps_before(db_session, batch, "feed_day3")
    record(db_session, step_of(batch, "feed_day3"), people["operator"], reason="Counted a day early",
           total_cells_d3="1.5e8")
    [point] = growth_curve(batch, ops.current_entries(db_session, batch))["total_cells"]
    assert point.day == pytest.approx(2.0, abs=0.01)  # counted 2 days in, although the recipe plans day 3
