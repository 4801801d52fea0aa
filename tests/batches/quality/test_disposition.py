"""The lot review (computed) and disposition: refused with each blocking reason, allowed when all clear,
never by someone involved in the batch; conditional release with sterility pending, then a positive
result puts the lot on recall and blocks its bags; rejection marks the bags for destruction."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit import Actor, acting_as
from app.errors import Conflict, PermissionDenied, ValidationFailed
from app.signatures import signatures_for
from batches.execution import deviations as deviation_ops
from batches.execution import operations as exec_ops
from batches.execution.exceptions import exceptions_of, review_exceptions
from batches.quality import operations as ops
from batches.quality import results as res
from batches.quality import review as rev
from batches.quality.models import LotDisposition
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import E, complete_lot_testing, step_of
from tests.conftest import PASSWORD


@pytest.fixture()
def qc(make_user):
    return {"analyst": make_user("qc_analyst"), "reviewer": make_user("qc_analyst")}


@pytest.fixture()
def ready_lot(db_session, completed_batch, seed_specs, qc):
    """make(code="MSNK", skip=(), review=True) -> a completed lot with passing, reviewed results."""

    def make(code="MSNK", skip=(), review=True, **kw):
        lot = ops.lot_of_batch(db_session, completed_batch(code, **kw))
        complete_lot_testing(db_session, lot, qc["analyst"], qc["reviewer"], skip=skip, review=review)
        return lot

    return make


def release(sess, lot, qa):
    with as_user(qa):
        return rev.release_lot(sess, lot, username=qa.username, password=PASSWORD, current_user=qa)


def codes(lot, sess):
    return [b.code.split(":")[0] for b in rev.build_lot_review(sess, lot).blockers]


def test_a_clean_msnk_lot_is_released_and_its_bags_become_available(db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    review = rev.build_lot_review(db_session, lot)
    assert review.blockers == []
    assert {s.state for s in review.standings} == {"pass"}
    assert review.yield_percent == pytest.approx(123.5)
    disposition = release(db_session, lot, people["qa"])
    assert lot.status == "released" and lot.batch.status == "released"
    [sig] = signatures_for(db_session, disposition)
    assert sig.signature.meaning == "released" and sig.valid
    assert all(u.status == "available" and u.issuable for u in ops.units_of_batch(db_session, lot.batch_id))


def test_a_clean_car_nk_lot_is_released(db_session, ready_lot, people):
    lot = ready_lot("NKG2D-CAR-NK")
    release(db_session, lot, people["qa"])
    assert lot.status == "released"


def test_release_refused_while_a_release_gating_result_is_pending(db_session, ready_lot, people):
    lot = ready_lot("MSNK", skip=("potency",))
    with pytest.raises(Conflict, match="Potency.*no result yet") as refused:
        release(db_session, lot, people["qa"])
    assert refused.value.errors["_"] == [b.message for b in rev.build_lot_review(db_session, lot).blockers]
    assert lot.status == "in_testing"


def test_release_refused_with_an_open_oos_investigation(db_session, ready_lot, qc, people):
    lot = ready_lot("MSNK", skip=("potency",))
    with as_user(qc["analyst"]):
        res.record_result(db_session, lot, res.ResultInput(test_key="potency", value="12"))
    assert "investigation" in codes(lot, db_session)
    with pytest.raises(Conflict, match="OOS investigation .* is open"):
        release(db_session, lot, people["qa"])


def test_release_refused_with_a_failing_reportable_result(db_session, ready_lot, qc, people):
    lot = ready_lot("MSNK", skip=("potency",))
    with as_user(qc["analyst"]):
        original = res.record_result(db_session, lot, res.ResultInput(test_key="potency", value="12"))
    [inv] = res.investigations_of(db_session, lot)
    qa = people["qa"]
    with as_user(qa):
        res.record_phase1(db_session, inv, assessment="no lab error", laboratory_error=False)
        res.record_phase2(db_session, inv, assessment="weak effector function", root_cause="culture")
        res.close_investigation(db_session, inv, conclusion="confirmed", conclusion_text="OOS confirmed",
                                reportable_result_id=original.id, username=qa.username, password=PASSWORD,
                                current_user=qa)
    with pytest.raises(Conflict, match="Potency.*fails"):
        release(db_session, lot, qa)


def test_release_refused_with_an_unreviewed_result(db_session, ready_lot, people):
    lot = ready_lot("MSNK", review=False)
    assert "result_unreviewed" in codes(lot, db_session)
    with pytest.raises(Conflict, match="not reviewed by a second QC person"):
        release(db_session, lot, people["qa"])


def test_release_refused_with_an_unreviewed_exception_then_allowed(db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    from batches.execution.exceptions import raise_exception

    with as_user(people["operator"]):
        exc = raise_exception(db_session, lot.batch, "comment", source_table="step_entry", source_id="x1",
                              description="Bag 3 label reprinted")
    with pytest.raises(Conflict, match="Exception not reviewed: comment"):
        release(db_session, lot, people["qa"])
    with as_user(people["qa"]):
        review_exceptions(db_session, lot.batch, [exc.id], "label reprint acceptable", username=people["qa"].username,
                          password=PASSWORD, current_user=people["qa"])
    release(db_session, lot, people["qa"])


@pytest.mark.parametrize("classification, blocks", [(None, True), ("major", True), ("critical", True),
                                                    ("minor", False)])
def test_open_deviations_block_unless_minor(db_session, ready_lot, people, classification, blocks):
    lot = ready_lot("MSNK")
    with as_user(people["qa"]):
        deviation = deviation_ops.open_deviation(db_session, title="Cabinet airflow alarm", description="seen",
                                                 batch=lot.batch, classification=classification)
        if classification:
            deviation.impact_assessment = "assessed"
        open_ids = [exc.id for exc in exceptions_of(db_session, lot.batch) if exc.reviewed_at is None]
        if open_ids:
            review_exceptions(db_session, lot.batch, open_ids, "seen", username=people["qa"].username,
                              password=PASSWORD, current_user=people["qa"])
    if blocks:
        with pytest.raises(Conflict, match=f"deviation {deviation.number}"):
            release(db_session, lot, people["qa"])
    else:
        release(db_session, lot, people["qa"])
        assert lot.status == "released"


def test_release_refused_when_the_record_is_not_complete(db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    batch = lot.batch
    step = step_of(batch, "feed_day3")
    entry = exec_ops.current_entries(db_session, batch)["viability_d3"]
    with as_user(people["operator"]):
        exec_ops.correct_entry(db_session, entry, people["operator"], E(value="91"), reason="transcription error",
                               expected_version=step.row_version)
    assert batch.status == "in_progress"  # the corrected step must be signed again
    with pytest.raises(Conflict, match="batch record is not complete"):
        release(db_session, lot, people["qa"])


def test_release_refused_when_a_signed_record_changed_after_signing(db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    step = step_of(lot.batch, "harvest")
    from app.audit import audit_reason

    with audit_reason(db_session, "test: a change behind the signatures"):
        step.title = "Harvest (edited)"
    db_session.flush()
    assert "signature" in codes(lot, db_session)
    with pytest.raises(Conflict, match="record changed after signature"):
        release(db_session, lot, people["qa"])


def test_release_refused_without_a_specification(db_session, completed_batch, people):
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    with pytest.raises(Conflict, match="no approved specification"):
        release(db_session, lot, people["qa"])


def test_someone_who_performed_a_step_cannot_release(db_session, completed_batch, seed_specs, qc, make_user, people):
    qa_operator = make_user("operator", "qa")
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK", verifier=qa_operator))
    complete_lot_testing(db_session, lot, qc["analyst"], qc["reviewer"])
    with pytest.raises(PermissionDenied, match="another QA person"):
        release(db_session, lot, qa_operator)
    release(db_session, lot, people["qa"])


def test_conditional_release_with_sterility_pending_then_a_positive_result_recalls(db_session, ready_lot, qc,
                                                                                  people):
    lot = ready_lot("MSNK", skip=("sterility",))
    qa = people["qa"]
    with pytest.raises(Conflict, match="Sterility"):
        release(db_session, lot, qa)
    with as_user(qa):
        with pytest.raises(ValidationFailed, match="justification"):
            rev.conditionally_release_lot(db_session, lot, pending_tests=["sterility"], justification="",
                                          username=qa.username, password=PASSWORD, current_user=qa)
        with pytest.raises(ValidationFailed, match="must pass before release"):
            rev.conditionally_release_lot(db_session, lot, pending_tests=["potency"], justification="urgent",
                                          username=qa.username, password=PASSWORD, current_user=qa)
        disposition = rev.conditionally_release_lot(
            db_session, lot, pending_tests=["sterility"], justification="fresh product; Gram stain and endotoxin pass",
            username=qa.username, password=PASSWORD, current_user=qa)
    assert disposition.pending_keys == ["sterility"] and lot.status == "conditionally_released"
    units = ops.units_of_batch(db_session, lot.batch_id)
    assert all(u.status == "conditionally_available" and u.issuable for u in units)
    with as_user(qc["analyst"]):
        res.record_result(db_session, lot, res.ResultInput(test_key="sterility", value="growth"))
    assert lot.status == "on_recall"
    assert all(u.status == "blocked" and not u.issuable for u in ops.units_of_batch(db_session, lot.batch_id))
    [inv] = res.investigations_of(db_session, lot)
    assert inv.after_disposition
    decisions = [d.decision for d in db_session.execute(select(LotDisposition).where(
        LotDisposition.lot_id == lot.id).order_by(LotDisposition.id)).scalars()]
    assert decisions == ["conditionally_released", "on_recall"]


def test_a_rejected_lot_marks_its_bags_for_destruction(db_session, ready_lot, people):
    lot = ready_lot("MSNK", skip=("potency",))
    qa = people["qa"]
    with as_user(qa):
        with pytest.raises(ValidationFailed):
            rev.reject_lot(db_session, lot, reason=" ", username=qa.username, password=PASSWORD, current_user=qa)
        disposition = rev.reject_lot(db_session, lot, reason="potency assay failed twice", username=qa.username,
                                     password=PASSWORD, current_user=qa)
    assert signatures_for(db_session, disposition)[0].signature.meaning == "rejected"
    assert lot.status == "rejected" and lot.batch.status == "rejected"
    assert all(u.status == "for_destruction" for u in ops.units_of_batch(db_session, lot.batch_id))
    with pytest.raises(Conflict):
        release(db_session, lot, qa)


def test_the_review_lists_materials_equipment_changes_and_chain(db_session, ready_lot, people):
    lot = ready_lot("MSNK")
    fill = step_of(lot.batch, "formulation")
    entry = exec_ops.current_entries(db_session, lot.batch)["fill_remarks"] if False else None
    assert entry is None
    review = rev.build_lot_review(db_session, lot)
    assert review.materials and all(not m["problems"] for m in review.materials)
    assert {e["occupancy"].asset_code[:3] for e in review.equipment} == {"INC", "BR-"}
    assert review.cord_blood_unit.din == lot.batch.cord_blood_din and len(review.units) == 4
    assert review.changes_after_entry == []
    with acting_as(Actor(people["operator"].id, people["operator"].username)):
        count = exec_ops.current_entries(db_session, lot.batch)["bag_volume_ml"]
        exec_ops.correct_entry(db_session, count, people["operator"], E(value="49"), reason="scale re-read",
                               expected_version=fill.row_version)
    db_session.flush()
    review = rev.build_lot_review(db_session, lot)
    assert any(c.table_name == "step_entry" and c.reason == "scale re-read" for c in review.changes_after_entry)
