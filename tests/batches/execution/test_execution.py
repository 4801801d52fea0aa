"""Batch execution rules: start, typed entries and limits, deviations, materials, equipment, signatures,
corrections, optimistic locking, taking steps, exceptions from alarms and gaps."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit import audit_reason
from app.db import utcnow
from app.errors import Conflict, PermissionDenied, ReasonRequired, SignatureRefused, ValidationFailed
from app.signatures import signatures_for
from batches.execution import materials as material_ops
from batches.execution import operations as ops
from batches.execution.exceptions import exceptions_of, sync_equipment_exceptions
from batches.execution.models import BatchException, Deviation, MaterialLot, MaterialUsage, StepEntry
from batches.sourcing.models import CordBloodUnit
from tests.batches.execution.conftest import as_user, record, sign, step_of
from tests.conftest import PASSWORD

E = ops.EntryInput


def lot_scan(stock, code):
    return stock[code]


def run_thaw(db_session, batch, people, new_asset):
    step = step_of(batch, "thaw")
    cabinet = new_asset("biosafety_cabinet")
    record(db_session, step, people["operator"], din_matches="pass", thaw_cabinet=cabinet.code, bag_intact="intact")
    sign(db_session, step, people["operator"])
    sign(db_session, step, people["operator2"], "verified")
    return step


def test_start_batch_moves_custody_and_creates_the_recipe_steps(db_session, make_batch, seed_recipes):
    batch = make_batch("MSNK")
    unit = db_session.get(CordBloodUnit, batch.cord_blood_unit_id)
    assert batch.status == "in_progress" and batch.lot_number.startswith("MSNK-")
    assert unit.batch_lot_number == batch.lot_number and unit.custody_state != "in_storage"
    assert [s.step_key for s in batch.steps][:3] == ["thaw", "mnc_isolation", "seeding"]
    assert batch.recipe_id == seed_recipes["MSNK"].id and batch.cord_blood_din == unit.din
    assert batch.exceptional_release is False


def test_start_refused_for_a_quarantined_unit_and_a_draft_recipe(db_session, make_unit, seed_recipes, people,
                                                                 make_accepted_unit):
    from batches.sourcing import operations as sourcing
    from tests.batches.sourcing.conftest import sign_as

    unit = make_unit()
    sourcing.change_status(db_session, unit, "quarantine", reason="received", **sign_as(people["qa"]))
    db_session.commit()
    with as_user(people["supervisor"]), pytest.raises(Conflict, match="quarantine"):
        ops.start_batch(db_session, unit_id=unit.id, recipe_id=seed_recipes["MSNK"].id, **sign_as(people["supervisor"]))
    accepted = make_accepted_unit()
    seed_recipes["MSNK"].status = "superseded"
    with as_user(people["supervisor"]), pytest.raises(Conflict, match="approved recipe"):
        ops.start_batch(db_session, unit_id=accepted.id, recipe_id=seed_recipes["MSNK"].id,
                        **sign_as(people["supervisor"]))


def test_exceptional_release_flag_follows_the_unit_into_the_batch(db_session, make_batch):
    batch = make_batch("MSNK")
    unit = db_session.get(CordBloodUnit, batch.cord_blood_unit_id)
    assert batch.exceptional_release == bool(unit.exceptional_release)


def test_each_entry_type_and_limit_class(db_session, make_batch, people, new_asset, stock):
    batch = make_batch("MSNK")
    op = people["operator"]
    run_thaw(db_session, batch, people, new_asset)
    thaw_entries = ops.current_entries(db_session, batch)
    assert thaw_entries["din_matches"].limit_class == "green" and thaw_entries["bag_intact"].value_text == "intact"
    step = step_of(batch, "mnc_isolation")
    # number in limits (green), in alert band (amber)
    record(db_session, step, op, gradient_lot=E(value=stock["FICOLL"], quantity="15"),
           mnc_total_cells="1.2x10^8", mnc_viability="80")
    current = ops.current_entries(db_session, batch)
    assert current["mnc_total_cells"].value_number == pytest.approx(1.2e8)
    assert current["mnc_total_cells"].limit_class == "green"
    assert current["mnc_viability"].limit_class == "amber"
    assert current["gradient_lot"].material_lot.lot_number == stock["FICOLL"]
    usage = db_session.execute(select(MaterialUsage).where(MaterialUsage.batch_id == batch.id)).scalar_one()
    assert usage.quantity == 15 and usage.material_lot.quantity_remaining == 10000 - 15
    kinds = [e.kind for e in exceptions_of(db_session, batch)]
    assert kinds == ["out_of_limit"]  # the amber viability is listed for review, without a deviation
    # a choice outside the accepted options, a text and a bad number
    fresh = make_batch("MSNK")
    with pytest.raises(ValidationFailed, match="choose one of"):
        record(db_session, step_of(fresh, "thaw"), op, bag_intact="squashed")
    with pytest.raises(ValidationFailed, match="pass or fail"):
        record(db_session, step_of(fresh, "thaw"), op, din_matches="maybe")
    with pytest.raises(ValidationFailed, match="not a number"):
        record(db_session, step_of(batch, "seeding"), op, seeded_cells="lots")


def test_hard_limit_breach_needs_confirmation_and_comment_and_opens_a_deviation(db_session, make_batch, people,
                                                                                 new_asset, stock):
    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    step = step_of(batch, "mnc_isolation")
    version = step.row_version
    with pytest.raises(ValidationFailed, match="outside the hard limits") as refused:
        record(db_session, step, people["operator"], mnc_viability="60", mnc_total_cells="1e8")
    assert "mnc_viability" in refused.value.errors
    assert ops.current_entries(db_session, batch).get("mnc_total_cells") is None  # nothing half-saved
    assert step.row_version == version
    record(db_session, step, people["operator"],
           mnc_viability=E(value="60", confirm=True, comment="Recounted twice; sample looked clumped"))
    entry = ops.current_entries(db_session, batch)["mnc_viability"]
    assert entry.limit_class == "red"
    deviation = db_session.execute(select(Deviation).where(Deviation.entry_id == entry.id)).scalar_one()
    assert deviation.automatic and deviation.status == "open" and deviation.batch_id == batch.id
    assert "Recounted twice" in deviation.description
    exc = db_session.execute(select(BatchException).where(BatchException.source_id == str(entry.id))).scalar_one()
    assert exc.kind == "out_of_limit" and exc.deviation_id == deviation.id


AHEAD = "Engineering limits checked ahead of the plan"


def _to_engineering(db_session, batch):
    """Mark the steps before the engineering phase complete, as the tests of its limits start there."""
    for step in batch.steps:
        if step.step_key in ("mpb_start", "mpb_stop", "formulation"):
            break
        step.status = "complete"
    db_session.flush()


def test_mpb_sia1_above_2_mM_is_a_hard_breach(db_session, make_batch, people, stock):
    batch = make_batch("MSNK")
    _to_engineering(db_session, batch)
    step = step_of(batch, "mpb_start")
    record(db_session, step, people["operator"], mpb_concentration="2.0", reason=AHEAD)
    assert ops.current_entries(db_session, batch)["mpb_concentration"].limit_class == "green"
    batch2 = make_batch("MSNK")
    _to_engineering(db_session, batch2)
    with pytest.raises(ValidationFailed, match="outside the hard limits"):
        record(db_session, step_of(batch2, "mpb_start"), people["operator"], mpb_concentration="2.1", reason=AHEAD)


def test_mpb_sia1_exposure_over_48_hours_is_a_hard_breach(db_session, make_batch, people, stock):
    batch = make_batch("MSNK")
    _to_engineering(db_session, batch)
    start = utcnow() - timedelta(hours=49)
    record(db_session, step_of(batch, "mpb_start"), people["operator"], mpb_added_at=start.isoformat(), reason=AHEAD)
    step_of(batch, "mpb_start").status = "complete"
    stop_step = step_of(batch, "mpb_stop")
    with pytest.raises(ValidationFailed, match="MPB-sia1 exposure") as refused:
        record(db_session, stop_step, people["operator"], mpb_removed_at=utcnow().isoformat(), reason=AHEAD)
    assert "mpb_exposure_hours" in refused.value.errors
    record(db_session, stop_step, people["operator"], mpb_removed_at=utcnow().isoformat(), reason=AHEAD,
           mpb_exposure_hours=E(confirm=True, comment="Wash delayed by a cabinet alarm"))
    exposure = ops.current_entries(db_session, batch)["mpb_exposure_hours"]
    assert exposure.limit_class == "red" and exposure.value_number == pytest.approx(49, abs=0.05)
    assert db_session.execute(select(Deviation).where(Deviation.entry_id == exposure.id)).scalar_one().automatic


def test_exposure_within_48_hours_is_green_and_future_times_are_refused(db_session, make_batch, people):
    batch = make_batch("MSNK")
    _to_engineering(db_session, batch)
    with pytest.raises(ValidationFailed, match="future"):
        record(db_session, step_of(batch, "mpb_start"), people["operator"],
               mpb_added_at=(utcnow() + timedelta(hours=2)).isoformat(), reason=AHEAD)
    record(db_session, step_of(batch, "mpb_start"), people["operator"],
           mpb_added_at=(utcnow() - timedelta(hours=47, minutes=30)).isoformat(), reason=AHEAD)
    step_of(batch, "mpb_start").status = "complete"
    record(db_session, step_of(batch, "mpb_stop"), people["operator"], mpb_removed_at="now", reason=AHEAD)
    exposure = ops.current_entries(db_session, batch)["mpb_exposure_hours"]
    assert exposure.limit_class == "green" and 47.4 < exposure.value_number < 47.6


@pytest.mark.parametrize("problem, message", [("expired", "expired"), ("quarantined", "quarantined"),
                                              ("rejected", "rejected")])
def test_unusable_material_lots_are_refused(db_session, make_batch, people, new_asset, stock, problem, message):
    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    material = material_ops.get_material_by_code(db_session, "FICOLL")
    expiry = utcnow().date() - timedelta(days=1) if problem == "expired" else utcnow().date() + timedelta(days=30)
    lot = material_ops.receive_lot(db_session, material, lot_number=f"BAD-{problem}", expiry_date=expiry,
                                   quantity=100, qc_status="released" if problem == "expired" else problem)
    db_session.commit()
    with pytest.raises(ValidationFailed, match=message):
        record(db_session, step_of(batch, "mnc_isolation"), people["operator"],
               gradient_lot=E(value=f"FICOLL|{lot.lot_number}", quantity="10"))
    assert db_session.get(MaterialLot, lot.id).quantity_remaining == 100
    with pytest.raises(ValidationFailed, match="needs FICOLL"):
        record(db_session, step_of(batch, "mnc_isolation"), people["operator"],
               gradient_lot=E(value=f"IL2|{stock['IL2']}", quantity="1"))


def test_supervisor_can_accept_a_refused_scan_with_a_reason_and_it_is_an_exception(db_session, make_batch, people,
                                                                                    new_asset, stock):
    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    material = material_ops.get_material_by_code(db_session, "FICOLL")
    lot = material_ops.receive_lot(db_session, material, lot_number="Q-1", expiry_date=utcnow().date(),
                                   quantity=50, qc_status="quarantined")
    db_session.commit()
    scan = E(value="Q-1", quantity="5", override_reason="QC release signed on paper, system update pending")
    with pytest.raises(PermissionDenied, match="supervisor"):
        record(db_session, step_of(batch, "mnc_isolation"), people["operator"], gradient_lot=scan)
    record(db_session, step_of(batch, "mnc_isolation"), people["supervisor"], gradient_lot=scan)
    [exc] = [e for e in exceptions_of(db_session, batch) if e.kind == "scan_override"]
    assert "quarantined" in exc.description and "paper" in exc.description
    assert db_session.get(MaterialLot, lot.id).quantity_remaining == 45


def test_out_of_calibration_equipment_is_refused(db_session, make_batch, people, new_asset):
    batch = make_batch("MSNK")
    stale = new_asset("biosafety_cabinet", calibrated=False)
    step = step_of(batch, "thaw")
    with pytest.raises(ValidationFailed, match="calibration"):
        record(db_session, step, people["operator"], thaw_cabinet=stale.code)
    with pytest.raises(ValidationFailed, match="No equipment"):
        record(db_session, step, people["operator"], thaw_cabinet="NOPE-404")
    assert ops.current_entries(db_session, batch) == {}


def test_performed_and_verified_by_the_same_user_is_refused(db_session, make_batch, people, new_asset):
    batch = make_batch("MSNK")
    step = step_of(batch, "thaw")
    record(db_session, step, people["operator"], din_matches="pass", thaw_cabinet=new_asset("biosafety_cabinet").code,
           bag_intact="intact")
    with pytest.raises(Conflict, match="performed before"):
        sign(db_session, step, people["operator2"], "verified")
    sign(db_session, step, people["operator"])
    assert step.status == "performed"
    with pytest.raises(SignatureRefused, match="different person"):
        sign(db_session, step, people["operator"], "verified")
    sign(db_session, step, people["operator2"], "verified")
    assert step.status == "complete"
    assert [v.signature.meaning for v in signatures_for(db_session, step)] == ["performed", "verified"]


def test_signing_needs_every_required_entry(db_session, make_batch, people):
    batch = make_batch("MSNK")
    step = step_of(batch, "thaw")
    record(db_session, step, people["operator"], din_matches="pass")
    with pytest.raises(ValidationFailed, match="Biosafety cabinet"):
        sign(db_session, step, people["operator"])


def test_correction_keeps_the_original_and_voids_the_signature(db_session, make_batch, people, new_asset, stock):
    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    step = step_of(batch, "mnc_isolation")
    record(db_session, step, people["operator"], gradient_lot=E(value=stock["FICOLL"], quantity="15"),
           mnc_total_cells="1.0e8", mnc_viability="92")
    sign(db_session, step, people["operator"])
    assert step.status == "complete"
    original = ops.current_entries(db_session, batch)["mnc_viability"]
    with as_user(people["operator2"]):
        with pytest.raises(ReasonRequired):
            ops.correct_entry(db_session, original, people["operator2"], E(value="94"), reason="",
                              expected_version=step.row_version)
        corrected = ops.correct_entry(db_session, original, people["operator2"], E(value="94"),
                                      reason="Transcription error: counter printout says 94",
                                      expected_version=step.row_version)
    assert original.is_voided and original.value_text == "92" and "Transcription" in original.void_reason
    assert corrected.value_text == "94" and corrected.replaces_id == original.id
    assert [v.status for v in signatures_for(db_session, step)] == ["voided"]
    assert step.status == "in_progress"
    [exc] = [e for e in exceptions_of(db_session, batch) if e.kind == "correction"]
    assert "92" in exc.description and "94" in exc.description
    history = ops.entry_history(db_session, step)
    assert [e.value_text for e in history if e.entry_key == "mnc_viability"] == ["92", "94"]
    sign(db_session, step, people["operator2"])  # a new signature is asked for and given
    assert step.status == "complete"


def test_correcting_a_material_returns_the_quantity_to_the_old_lot(db_session, make_batch, people, new_asset,
                                                                   stock):
    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    step = step_of(batch, "mnc_isolation")
    record(db_session, step, people["operator"], gradient_lot=E(value=stock["FICOLL"], quantity="15"))
    entry = ops.current_entries(db_session, batch)["gradient_lot"]
    with as_user(people["operator"]):
        ops.correct_entry(db_session, entry, people["operator"], E(value=stock["FICOLL"], quantity="12"),
                          reason="Wrong volume typed", expected_version=step.row_version)
    lot = material_ops.find_scanned_lot(db_session, "FICOLL", stock["FICOLL"])
    assert lot.quantity_remaining == 10000 - 12


def test_stale_update_is_refused_and_does_not_overwrite(db_session, make_batch, people, new_asset):
    batch = make_batch("MSNK")
    step = step_of(batch, "thaw")
    seen_version = step.row_version
    with as_user(people["operator"]):
        ops.record_entries(db_session, step, people["operator"], {"din_matches": E(value="pass")},
                           expected_version=seen_version)
    with as_user(people["operator"]), pytest.raises(Conflict, match="Reload"):
        ops.record_entries(db_session, step, people["operator"], {"bag_intact": E(value="intact")},
                           expected_version=seen_version)
    assert "bag_intact" not in ops.current_entries(db_session, batch)
    with pytest.raises(ValidationFailed, match="already recorded"):
        record(db_session, step, people["operator"], din_matches="fail")
    assert ops.current_entries(db_session, batch)["din_matches"].value_text == "pass"


def test_two_people_cannot_work_on_the_same_step(db_session, make_batch, people):
    batch = make_batch("MSNK")
    step = step_of(batch, "thaw")
    with as_user(people["operator"]):
        ops.take_step(db_session, step, people["operator"])
    with as_user(people["operator2"]):
        with pytest.raises(Conflict, match="cannot work on the same step"):
            ops.take_step(db_session, step, people["operator2"])
        with pytest.raises(Conflict, match="cannot work on the same step"):
            ops.record_entries(db_session, step, people["operator2"], {"din_matches": E(value="pass")},
                               expected_version=step.row_version)
        with pytest.raises(PermissionDenied):
            ops.let_go_of_step(db_session, step, people["operator2"])
    with as_user(people["supervisor"]):
        ops.let_go_of_step(db_session, step, people["supervisor"], take_over_reason="Olivia went home ill")
    with as_user(people["operator2"]):
        ops.take_step(db_session, step, people["operator2"])
    assert step.taken_by == people["operator2"].username


def test_out_of_order_and_late_steps_need_a_reason_and_become_exceptions(db_session, make_batch, people):
    batch = make_batch("MSNK")
    later = step_of(batch, "seeding")
    with as_user(people["operator"]):
        with pytest.raises(ReasonRequired, match="out of order"):
            ops.take_step(db_session, later, people["operator"])
        ops.take_step(db_session, later, people["operator"], reason="Thaw done on the paper backup form")
    batch2 = make_batch("MSNK")
    with audit_reason(db_session, "test: the batch started yesterday"):
        batch2.started_at = utcnow() - timedelta(days=1)
        db_session.flush()
    with as_user(people["operator"]):
        with pytest.raises(ReasonRequired, match="late"):
            ops.take_step(db_session, step_of(batch2, "thaw"), people["operator"])
        ops.take_step(db_session, step_of(batch2, "thaw"), people["operator"], reason="Unit delayed in transit")
    assert [e.kind for e in exceptions_of(db_session, batch)] == ["out_of_order"]
    assert [e.kind for e in exceptions_of(db_session, batch2)] == ["late"]


def test_hold_resume_and_abort_with_qa_signature(db_session, make_batch, people, new_asset):
    batch = make_batch("MSNK")
    with as_user(people["supervisor"]):
        with pytest.raises(ReasonRequired):
            ops.hold_batch(db_session, batch, "")
        ops.hold_batch(db_session, batch, "Incubator alarm under investigation")
    with pytest.raises(Conflict, match="on hold"):
        record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass")
    with as_user(people["supervisor"]):
        ops.resume_batch(db_session, batch, "Alarm investigated: sensor fault")
    record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass")
    with as_user(people["qa"]):
        with pytest.raises(SignatureRefused):
            ops.abort_batch(db_session, batch, reason="Contamination", username=people["qa"].username,
                            password="not-the-password", current_user=people["qa"])
    batch = ops.get_batch(db_session, batch.id)
    with as_user(people["qa"]):
        ops.abort_batch(db_session, batch, reason="Contamination seen at thaw", username=people["qa"].username,
                        password=PASSWORD, current_user=people["qa"])
    assert batch.status == "aborted"
    assert [v.signature.meaning for v in signatures_for(db_session, batch)] == ["started", "aborted"]


def test_alarm_and_gap_during_occupancy_become_exceptions_of_the_batch(db_session, make_batch, people, new_asset,
                                                                        make_tag, stock):
    from equipment.telemetry import GapEvent, IngestState, SampleIn, ingest, to_us

    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    step_of(batch, "mnc_isolation").status = "complete"
    incubator = new_asset("co2_incubator")
    tag = make_tag(incubator, "Temperature", low=36.0, high=38.0)
    record(db_session, step_of(batch, "seeding"), people["operator"], culture_incubator=incubator.code)
    db_session.commit()
    state = IngestState()
    state.load(db_session)
    now = utcnow()
    samples = [SampleIn(tag.id, to_us(now + timedelta(seconds=i)), None, 39.5) for i in range(1, 4)]
    ingest(db_session, samples + [GapEvent(incubator.id, "connection_lost", to_us(now + timedelta(seconds=5)))],
           state)
    db_session.flush()
    kinds = sorted(e.kind for e in exceptions_of(db_session, batch))
    assert kinds == ["alarm", "telemetry_gap"]
    alarm_exc = next(e for e in exceptions_of(db_session, batch) if e.kind == "alarm")
    assert incubator.code in alarm_exc.description and alarm_exc.source_table == "equipment_alarm"
    sync_equipment_exceptions(db_session, batch)  # the query finds the same ones: no duplicates
    assert len(exceptions_of(db_session, batch)) == 2
    other = make_batch("MSNK")
    assert exceptions_of(db_session, other) == []


def test_alarm_found_by_query_when_the_signal_was_missed(db_session, make_batch, people, new_asset, make_tag):
    from equipment.models import Alarm

    batch = make_batch("MSNK")
    run_thaw(db_session, batch, people, new_asset)
    step_of(batch, "mnc_isolation").status = "complete"
    incubator = new_asset("co2_incubator")
    tag = make_tag(incubator, "CO2", low=4.5, high=5.5, unit="%")
    record(db_session, step_of(batch, "seeding"), people["operator"], culture_incubator=incubator.code)
    at = utcnow() + timedelta(seconds=1)
    db_session.add(Alarm(asset_id=incubator.id, tag_id=tag.id, parameter="CO2", unit="%", limit_kind="high",
                         limit_value=5.5, excursion_started_at=at, raised_at=at, peak_value=6.1, state="active"))
    db_session.flush()
    assert exceptions_of(db_session, batch) == []
    sync_equipment_exceptions(db_session, batch)
    [exc] = exceptions_of(db_session, batch)
    assert exc.kind == "alarm" and "CO2" in exc.description


def test_entries_are_kept_with_who_and_when(db_session, make_batch, people):
    batch = make_batch("MSNK")
    record(db_session, step_of(batch, "thaw"), people["operator"], din_matches="pass")
    entry = db_session.execute(select(StepEntry).where(StepEntry.batch_id == batch.id)).scalar_one()
    assert entry.recorded_by == people["operator"].username and entry.recorded_at is not None
    step = step_of(batch, "thaw")
    # the entries are part of the step's signed content: a later change shows on its signatures
    assert step.signed_content()["entries_digest"] == ops._digest([entry]) != ops._digest([])


def test_step_digests_match_their_stored_entries_when_a_save_calculates_in_another_step(db_session, make_batch,
                                                                                         people):
    batch = make_batch("MSNK")
    for key in ("thaw", "mnc_isolation"):
        step_of(batch, key).status = "complete"
    record(db_session, step_of(batch, "feed_day3"), people["operator"], reason="count taken before seeding was "
           "recorded", total_cells_d3="1.5e8")
    record(db_session, step_of(batch, "seeding"), people["operator"], seeded_cells="5e7")
    db_session.commit()
    db_session.expire_all()
    fold = db_session.execute(select(StepEntry).where(StepEntry.batch_id == batch.id,
                                                      StepEntry.entry_key == "fold_d3")).scalar_one()
    assert fold.value_number == pytest.approx(3.0)
    for key in ("seeding", "feed_day3"):
        step = step_of(batch, key)
        stored = db_session.execute(select(StepEntry).where(StepEntry.step_id == step.id)).scalars().all()
        assert step.entries_digest == ops._digest(stored) != ops._digest([])


def test_two_batches_in_one_incubator_both_get_its_alarm_and_gap(db_session, make_batch, people, new_asset, make_tag):
    from equipment.telemetry import GapEvent, IngestState, SampleIn, ingest, to_us

    incubator = new_asset("co2_incubator", capacity=2)
    tag = make_tag(incubator, "Temperature", low=36.0, high=38.0)
    batches = []
    for _ in range(2):
        batch = make_batch("MSNK")
        run_thaw(db_session, batch, people, new_asset)
        step_of(batch, "mnc_isolation").status = "complete"
        record(db_session, step_of(batch, "seeding"), people["operator"], culture_incubator=incubator.code)
        batches.append(batch)
    db_session.commit()
    state = IngestState()
    state.load(db_session)
    now = utcnow()
    ingest(db_session, [SampleIn(tag.id, to_us(now + timedelta(seconds=i)), None, 39.5) for i in range(1, 4)]
           + [GapEvent(incubator.id, "connection_lost", to_us(now + timedelta(seconds=5)))], state)
    db_session.flush()
    for batch in batches:
        assert sorted(e.kind for e in exceptions_of(db_session, batch)) == ["alarm", "telemetry_gap"]
