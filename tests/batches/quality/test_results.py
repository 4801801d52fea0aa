"""Samples, results against the specification, second-person review, in-process results pulled from the
batch record, automatic OOS investigations, retests only inside them, invalidation, related lots."""
from __future__ import annotations

import pytest

from app.errors import Conflict, PermissionDenied, SignatureRefused, ValidationFailed
from batches.quality import operations as ops
from batches.quality import results as res
from batches.quality.results import ResultInput
from tests.batches.execution.conftest import as_user
from tests.conftest import PASSWORD


@pytest.fixture()
def lot(db_session, completed_batch, seed_specs):
    return ops.lot_of_batch(db_session, completed_batch("MSNK"))


@pytest.fixture()
def qc(make_user):
    return {"analyst": make_user("qc_analyst"), "reviewer": make_user("qc_analyst")}


def enter(sess, lot, user, test_key, value, **kw):
    with as_user(user):
        return res.record_result(sess, lot, ResultInput(test_key=test_key, value=value, **kw))


def test_samples_get_identifiers_and_results_link_to_them(db_session, lot, qc):
    with as_user(qc["analyst"]):
        s1 = res.draw_sample(db_session, lot, test_keys=["sterility", "gram_stain"])
        s2 = res.draw_sample(db_session, lot, test_keys=["endotoxin"])
    assert s1.sample_identifier == f"{lot.lot_number}-S01" and s2.sample_identifier == f"{lot.lot_number}-S02"
    assert s1.sample_type == "final product" and s1.drawn_by == qc["analyst"].username
    result = enter(db_session, lot, qc["analyst"], "gram_stain", "Negative", sample_identifier=s1.sample_identifier)
    assert result.sample_id == s1.id and result.value_text == "negative" and result.outcome == "pass"
    with pytest.raises(ValidationFailed, match="not drawn for this test"):
        enter(db_session, lot, qc["analyst"], "mycoplasma", "not detected", sample_identifier=s2.sample_identifier)
    with pytest.raises(ValidationFailed, match="not a sample"):
        enter(db_session, lot, qc["analyst"], "mycoplasma", "not detected", sample_identifier="XYZ-S99")


def test_result_entry_reads_numbers_the_site_way_and_checks_units(db_session, lot, qc):
    result = enter(db_session, lot, qc["analyst"], "endotoxin", "1.2x10^1", unit="EU", method="reader R-2")
    assert result.value_number == 12.0 and result.raw_value == "1.2x10^1" and result.method == "reader R-2"
    assert result.recorded_by == qc["analyst"].username and result.outcome == "pass"
    with pytest.raises(ValidationFailed, match="could be read as"):
        enter(db_session, lot, qc["analyst"], "potency", "1,500")
    with pytest.raises(ValidationFailed, match="reported in %"):
        enter(db_session, lot, qc["analyst"], "potency", "45", unit="EU")
    with pytest.raises(ValidationFailed, match="at most 100"):
        enter(db_session, lot, qc["analyst"], "potency", "145")
    with pytest.raises(ValidationFailed, match="choose one of"):
        enter(db_session, lot, qc["analyst"], "mycoplasma", "maybe")
    with pytest.raises(ValidationFailed, match="pass or fail"):
        enter(db_session, lot, qc["analyst"], "identity", "ok")


def test_a_result_is_never_overwritten(db_session, lot, qc):
    enter(db_session, lot, qc["analyst"], "potency", "45")
    with pytest.raises(Conflict, match="never overwritten"):
        enter(db_session, lot, qc["analyst"], "potency", "46")


def test_in_process_results_are_pulled_from_the_batch_record_with_their_source(db_session, lot, qc):
    with as_user(qc["analyst"]):
        pulled = res.pull_in_process_results(db_session, lot)
        assert res.pull_in_process_results(db_session, lot) == []  # once
    by_test = {r.test_key: r for r in pulled}
    assert set(by_test) == {"purity", "cd22_ligand", "viability"}
    cd22 = by_test["cd22_ligand"]
    assert cd22.source == "batch_record" and cd22.source_entry_id is not None and cd22.value_number == 99.5
    assert cd22.outcome == "pass" and cd22.recorded_by != qc["analyst"].username  # the operator who entered it
    with pytest.raises(Conflict):
        enter(db_session, lot, qc["analyst"], "cd22_ligand", "99.9")


def test_second_person_review_signature(db_session, lot, qc):
    result = enter(db_session, lot, qc["analyst"], "potency", "45")
    db_session.commit()
    with as_user(qc["analyst"]), pytest.raises(PermissionDenied, match="second QC person"):
        res.review_result(db_session, result, username=qc["analyst"].username, password=PASSWORD,
                          current_user=qc["analyst"])
    with as_user(qc["reviewer"]):
        with pytest.raises(SignatureRefused):
            res.review_result(db_session, result, username=qc["reviewer"].username, password="nope",
                              current_user=qc["reviewer"])
        result = res.get_result(db_session, result.id)
        res.review_result(db_session, result, username=qc["reviewer"].username, password=PASSWORD,
                          current_user=qc["reviewer"])
    assert result.status == "reviewed" and result.reviewed_by == qc["reviewer"].username


def test_a_failing_result_opens_an_oos_investigation_confirmed_keeps_the_original(db_session, lot, qc, people):
    original = enter(db_session, lot, qc["analyst"], "potency", "12")
    assert original.outcome == "fail"
    [inv] = res.investigations_of(db_session, lot)
    assert inv.status == "phase_1" and inv.result_id == original.id and inv.number.startswith("OOS-")
    assert "Potency" in inv.description and ">= 20 %" in inv.description
    with pytest.raises(Conflict, match="under OOS investigation"):
        enter(db_session, lot, qc["analyst"], "potency", "30")
    retest = enter(db_session, lot, qc["analyst"], "potency", "31", investigation_id=inv.id)
    assert retest.retest_of_id == original.id and retest.investigation_id == inv.id and not retest.reportable
    standing = {s.test["key"]: s for s in res.test_standings(db_session, lot)}["potency"]
    assert standing.state == "under investigation"
    with as_user(people["qa"]):
        res.record_phase1(db_session, inv, assessment="Assay controls in range; no lab error", laboratory_error=False)
        assert inv.status == "phase_2"
        with pytest.raises(Conflict, match="root cause"):
            res.close_investigation(db_session, inv, conclusion="confirmed", conclusion_text="x",
                                    reportable_result_id=original.id, username=people["qa"].username,
                                    password=PASSWORD, current_user=people["qa"])
        res.record_phase2(db_session, inv, assessment="Effector cells at low activity", root_cause="IL-15 lot weak")
        with pytest.raises(ValidationFailed, match="passing retest does not replace"):
            res.close_investigation(db_session, inv, conclusion="confirmed", conclusion_text="OOS stands",
                                    reportable_result_id=retest.id, username=people["qa"].username,
                                    password=PASSWORD, current_user=people["qa"])
        res.close_investigation(db_session, inv, conclusion="confirmed", conclusion_text="OOS stands",
                                reportable_result_id=original.id, username=people["qa"].username, password=PASSWORD,
                                current_user=people["qa"])
    assert inv.status == "closed" and original.reportable and not retest.reportable
    assert original.value_number == 12.0 and original.status == "recorded"
    standing = {s.test["key"]: s for s in res.test_standings(db_session, lot)}["potency"]
    assert standing.state == "fail" and standing.result.id == original.id
    with pytest.raises(Conflict):
        enter(db_session, lot, qc["analyst"], "potency", "40", investigation_id=inv.id)


def test_laboratory_error_invalidates_the_original_which_keeps_its_value(db_session, lot, qc, people):
    original = enter(db_session, lot, qc["analyst"], "mycoplasma", "detected")
    [inv] = res.investigations_of(db_session, lot)
    with as_user(people["qa"]):
        with pytest.raises(Conflict, match="laboratory error"):
            res.invalidate_result(db_session, original, "contaminated PCR plate")
        res.record_phase1(db_session, inv, assessment="Negative control amplified", laboratory_error=True)
        assert inv.status == "phase_1"
        res.invalidate_result(db_session, original, "negative control amplified: plate contaminated")
    retest = enter(db_session, lot, qc["analyst"], "mycoplasma", "not detected", investigation_id=inv.id)
    with as_user(people["qa"]):
        res.close_investigation(db_session, inv, conclusion="invalidated", conclusion_text="lab error, retest valid",
                                reportable_result_id=retest.id, username=people["qa"].username, password=PASSWORD,
                                current_user=people["qa"])
    assert original.status == "invalidated" and original.value_text == "detected"
    assert "plate contaminated" in original.invalidated_reason and not original.reportable
    standing = {s.test["key"]: s for s in res.test_standings(db_session, lot)}["mycoplasma"]
    assert standing.state == "pass" and standing.result.id == retest.id


def test_a_retest_outside_an_investigation_is_refused(db_session, lot, qc):
    enter(db_session, lot, qc["analyst"], "potency", "45")
    with pytest.raises(Conflict, match="only possible inside"):
        enter(db_session, lot, qc["analyst"], "potency", "46", investigation_id=999)


def test_standings_show_pending_pass_and_fail(db_session, lot, qc):
    enter(db_session, lot, qc["analyst"], "gram_stain", "negative")
    states = {s.test["key"]: s.state for s in res.test_standings(db_session, lot)}
    assert states["gram_stain"] == "pass" and states["sterility"] == "pending"


def test_related_lots_share_the_cord_blood_unit_material_lots_or_equipment(db_session, completed_batch, seed_specs,
                                                                          qc):
    first = completed_batch("MSNK")
    second = completed_batch("MSNK")  # the stock fixture gives both batches the same material lots
    lot = ops.lot_of_batch(db_session, first)
    enter(db_session, lot, qc["analyst"], "potency", "3")
    [inv] = res.investigations_of(db_session, lot)
    related = res.related_lots(db_session, inv)
    assert [r["batch"].id for r in related] == [second.id]
    assert any("same material lot" in why for why in related[0]["reasons"])
