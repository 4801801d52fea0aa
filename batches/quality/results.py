"""QC samples and results against the lot's specification, second-person review, and out-of-specification
investigations (21 CFR 211.192).

A result is never overwritten. A failing result opens an OOS investigation at once; a retest or resample
is only possible inside an open investigation, linked to it, and the investigation's closure decides which
result is reportable (no testing into compliance). An invalidated result keeps its value and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import advisory_xact_lock, utcnow
from app.errors import Conflict, NotFound, PermissionDenied, ReasonRequired, ValidationFailed
from app.numbers import NumberFormatError, parse_number
from app.signatures import sign_record
from batches.quality.models import OosInvestigation, QcResult, QcSample, QualityLot
from batches.quality.operations import start_lot_testing
from batches.quality.specifications import FAIL, PASS, criterion_text, find_test, judge, show_number

PENDING = "pending"
TEXT_MAX = 2000


@dataclass
class ResultInput:
    """What the analyst typed (or an instrument file gave) for one result."""

    test_key: str
    value: str
    unit: str | None = None
    method: str | None = None
    sample_identifier: str | None = None
    investigation_id: int | None = None


# --- samples --------------------------------------------------------------------------------------

def _next_sample_identifier(sess: Session, lot: QualityLot) -> str:
    advisory_xact_lock(sess, f"qc_sample:{lot.id}")
    count = sess.execute(select(func.count(QcSample.id)).where(QcSample.lot_id == lot.id)).scalar_one()
    return f"{lot.lot_number}-S{count + 1:02d}"


def draw_sample(sess: Session, lot: QualityLot, *, test_keys: Iterable[str], sample_type: str | None = None,
                time_point: str | None = None, source: str = "qc") -> QcSample:
    """Register a sample for the named tests; it gets an identifier for its label."""
    start_lot_testing(sess, lot)
    keys = [k.strip() for k in test_keys if k and k.strip()]
    if not keys:
        raise ValidationFailed("Choose at least one test the sample is for.", errors={"tests": ["Choose a test."]})
    tests = [find_test(lot.specification, k) for k in keys]
    sample = QcSample(sample_identifier=_next_sample_identifier(sess, lot), lot_id=lot.id,
                      sample_type=(sample_type or tests[0]["sample_type"]).strip()[:80],
                      time_point=(time_point or tests[0]["time_point"]).strip()[:120], tests=",".join(keys),
                      source=source, drawn_at=utcnow(), drawn_by=current_actor().username)
    sess.add(sample)
    sess.flush()
    return sample


def samples_of(sess: Session, lot: QualityLot) -> list[QcSample]:
    return list(sess.execute(select(QcSample).where(QcSample.lot_id == lot.id).order_by(QcSample.id)).scalars())


def find_sample(sess: Session, identifier: str) -> QcSample | None:
    return sess.execute(select(QcSample).where(func.upper(QcSample.sample_identifier)
                                               == (identifier or "").strip().upper())).scalar_one_or_none()


# --- results --------------------------------------------------------------------------------------

def results_of(sess: Session, lot: QualityLot, test_key: str | None = None) -> list[QcResult]:
    stmt = select(QcResult).where(QcResult.lot_id == lot.id)
    if test_key:
        stmt = stmt.where(QcResult.test_key == test_key)
    return list(sess.execute(stmt.order_by(QcResult.id)).scalars())


def get_result(sess: Session, result_id: int) -> QcResult:
    result = sess.get(QcResult, result_id)
    if result is None:
        raise NotFound(f"Result {result_id} does not exist.")
    return result


def open_investigation_for(sess: Session, lot: QualityLot, test_key: str) -> OosInvestigation | None:
    return sess.execute(select(OosInvestigation).where(
        OosInvestigation.lot_id == lot.id, OosInvestigation.test_key == test_key,
        OosInvestigation.status != "closed")).scalars().first()


def parse_result_value(test: dict[str, Any], raw: str, unit: str | None) -> tuple[float | None, str]:
    """The reported value read from what was typed, the site's way; refusals say how to write it."""
    text = (raw or "").strip()
    name = test["name"]
    if not text:
        raise ValidationFailed(f"{name}: enter the result.", errors={test["key"]: ["Required."]})
    if len(text) > 200:
        raise ValidationFailed(f"{name}: a result has at most 200 characters.", errors={test["key"]: ["Too long."]})
    kind = test["result_type"]
    if kind == "numeric":
        if unit and unit.strip() and unit.strip() != test["unit"]:
            raise ValidationFailed(f"{name} is reported in {test['unit']}, not {unit.strip()}.",
                                   errors={test["key"]: [f"Unit: {test['unit']}."]})
        try:
            number = parse_number(text)
        except NumberFormatError as exc:
            raise ValidationFailed(f"{name}: {exc}", errors={test["key"]: [str(exc)]}) from None
        if number < 0:
            raise ValidationFailed(f"{name}: a result cannot be negative.", errors={test["key"]: ["Not negative."]})
        if test["unit"] == "%" and number > 100:
            raise ValidationFailed(f"{name}: a percentage is at most 100.", errors={test["key"]: ["At most 100."]})
        return number, show_number(number)
    if kind == "qualitative":
        match = next((o for o in test["options"] if o.lower() == text.lower()), None)
        if match is None:
            raise ValidationFailed(f"{name}: choose one of {', '.join(test['options'])}.",
                                   errors={test["key"]: ["Choose a finding."]})
        return None, match
    if text.lower() not in (PASS, FAIL):
        raise ValidationFailed(f"{name}: answer pass or fail.", errors={test["key"]: ["Pass or fail."]})
    return None, text.lower()


def _resolve_sample(sess: Session, lot: QualityLot, identifier: str | None, test_key: str) -> QcSample | None:
    if not (identifier or "").strip():
        return None
    sample = find_sample(sess, identifier or "")
    if sample is None or sample.lot_id != lot.id:
        raise ValidationFailed(f"Sample {identifier.strip()} is not a sample of lot {lot.lot_number}.",
                               errors={"sample_identifier": ["Unknown sample."]})
    if sample.voided_at is not None:
        raise ValidationFailed(f"Sample {sample.sample_identifier} was voided: {sample.void_reason}")
    if sample.test_keys and test_key not in sample.test_keys:
        raise ValidationFailed(f"Sample {sample.sample_identifier} was not drawn for this test.",
                               errors={"sample_identifier": ["Not for this test."]})
    return sample


def check_result_input(sess: Session, lot: QualityLot, data: ResultInput) -> tuple[dict[str, Any], float | None, str,
                                                                                   QcSample | None,
                                                                                   OosInvestigation | None]:
    """Every check of one result before anything is written (used by entry and by file import)."""
    start_lot_testing(sess, lot)
    if lot.status not in ("in_testing", "conditionally_released", "released"):
        raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: no result can be recorded.")
    test = find_test(lot.specification, data.test_key)
    number, shown = parse_result_value(test, data.value, data.unit)
    sample = _resolve_sample(sess, lot, data.sample_identifier, test["key"])
    earlier = [r for r in results_of(sess, lot, test["key"]) if r.status != "invalidated" or r.investigation_id]
    investigation = open_investigation_for(sess, lot, test["key"])
    if data.investigation_id is not None:
        if investigation is None or investigation.id != data.investigation_id:
            raise Conflict("A retest or resample is only possible inside the open OOS investigation of this test.")
    elif earlier:
        if investigation is not None:
            raise Conflict(f"{test['name']} is under OOS investigation {investigation.number}: a retest is recorded "
                           "inside the investigation, linked to it.")
        raise Conflict(f"{test['name']} already has a result for lot {lot.lot_number}. A result is never "
                       "overwritten; a retest is only possible inside an open OOS investigation.")
    return test, number, shown, sample, investigation


def _store_result(sess: Session, lot: QualityLot, test: dict[str, Any], number: float | None, shown: str,
                  raw: str, *, method: str | None, sample: QcSample | None, investigation: OosInvestigation | None,
                  source: str = "entered", source_entry_id: int | None = None, source_file_id: int | None = None,
                  recorded_by: str | None = None, recorded_at: datetime | None = None) -> QcResult:
    outcome = judge(test, number=number, text=shown)
    original = None if investigation is None else sess.get(QcResult, investigation.result_id)
    result = QcResult(lot_id=lot.id, specification_id=lot.specification_id, test_key=test["key"],
                      test_name=test["name"], sample_id=sample.id if sample else None, source=source,
                      source_entry_id=source_entry_id, source_file_id=source_file_id,
                      method=((method or "").strip() or test["method"])[:200], raw_value=(raw or "").strip(),
                      value_number=number, value_text=shown, unit=test.get("unit"), outcome=outcome,
                      recorded_at=recorded_at or utcnow(), recorded_by=recorded_by or current_actor().username,
                      retest_of_id=original.id if original else None,
                      investigation_id=investigation.id if investigation else None,
                      reportable=investigation is None, status="recorded")
    sess.add(result)
    sess.flush()
    if outcome == FAIL and investigation is None:
        _open_investigation(sess, lot, test, result)
    _results_changed(sess, lot, f"Result recorded: {test['name']} {shown}")
    return result


def _results_changed(sess: Session, lot: QualityLot, reason: str) -> None:
    if lot.status != "in_testing":  # dispositioned: the certificate of analysis is reissued
        from batches.quality.signals import lot_results_changed

        lot_results_changed.send(lot, sess=sess, reason=reason)


def record_result(sess: Session, lot: QualityLot, data: ResultInput) -> QcResult:
    """A QC analyst records a result against the lot's specification (who, when, method, raw and reported
    value); a failing result opens an OOS investigation."""
    test, number, shown, sample, investigation = check_result_input(sess, lot, data)
    return _store_result(sess, lot, test, number, shown, data.value, method=data.method, sample=sample,
                         investigation=investigation)


def pull_in_process_results(sess: Session, lot: QualityLot) -> list[QcResult]:
    """Results already entered in the batch record (CD22-ligand %, CAR+ %, viability ...) become the lot's
    results with their source entry, never typed again; a corrected entry is pulled again only through an
    investigation."""
    from batches.execution.operations import current_entries

    start_lot_testing(sess, lot)
    entries = current_entries(sess, lot.batch)
    pulled = []
    for test in lot.specification.tests:
        key = test.get("in_process_entry")
        entry = entries.get(key) if key else None
        if entry is None or entry.value_number is None:
            continue
        if results_of(sess, lot, test["key"]):
            continue
        number = float(entry.value_number)
        pulled.append(_store_result(sess, lot, test, number, show_number(number), entry.value_text,
                                    method=f"batch record entry {entry.entry_key}", sample=None, investigation=None,
                                    source="batch_record", source_entry_id=entry.id, recorded_by=entry.recorded_by,
                                    recorded_at=entry.recorded_at))
    return pulled


def review_result(sess: Session, result: QcResult, *, username: str, password: str, current_user: Any,
                  comment: str | None = None) -> QcResult:
    """A second QC person reviews and signs the result ('reviewed'); never the person who recorded it."""
    if result.status == "reviewed":
        raise Conflict("This result was already reviewed.")
    if result.status == "invalidated":
        raise Conflict("An invalidated result is not reviewed; its investigation records why.")
    if result.recorded_by == current_user.username:
        raise PermissionDenied("The person who recorded a result cannot review it; a second QC person must.")
    sign_record(sess, result, meaning="reviewed", username=username, password=password, current_user=current_user,
                comment=comment)
    result.status = "reviewed"
    result.reviewed_at = utcnow()
    result.reviewed_by = current_user.username
    sess.flush()
    return result


# --- OOS investigations ---------------------------------------------------------------------------

def _next_investigation_number(sess: Session) -> str:
    advisory_xact_lock(sess, "oos_number")
    prefix = f"OOS-{utcnow():%Y}-"
    count = sess.execute(select(func.count(OosInvestigation.id)).where(
        OosInvestigation.number.like(prefix + "%"))).scalar_one()
    return f"{prefix}{count + 1:04d}"


def _open_investigation(sess: Session, lot: QualityLot, test: dict[str, Any], result: QcResult) -> OosInvestigation:
    shown = f"{result.value_text} {result.unit or ''}".strip()
    investigation = OosInvestigation(
        number=_next_investigation_number(sess), lot_id=lot.id, result_id=result.id, test_key=test["key"],
        description=f"{test['name']} = {shown} is outside its criterion ({criterion_text(test)}) for lot "
                    f"{lot.lot_number}.", status="phase_1", opened_at=utcnow(), opened_by=current_actor().username,
        after_disposition=lot.status in ("released", "conditionally_released"))
    sess.add(investigation)
    sess.flush()
    result.investigation_id = investigation.id
    sess.flush()
    from batches.quality.signals import oos_opened

    oos_opened.send(investigation, sess=sess, lot=lot, result=result)
    return investigation


def get_investigation(sess: Session, investigation_id: int) -> OosInvestigation:
    investigation = sess.get(OosInvestigation, investigation_id)
    if investigation is None:
        raise NotFound(f"Investigation {investigation_id} does not exist.")
    return investigation


def investigations_of(sess: Session, lot: QualityLot) -> list[OosInvestigation]:
    return list(sess.execute(select(OosInvestigation).where(OosInvestigation.lot_id == lot.id)
                             .order_by(OosInvestigation.id)).scalars())


def list_investigations(sess: Session, open_only: bool = False) -> list[OosInvestigation]:
    stmt = select(OosInvestigation).order_by(OosInvestigation.opened_at.desc(), OosInvestigation.id.desc())
    if open_only:
        stmt = stmt.where(OosInvestigation.status != "closed")
    return list(sess.execute(stmt).scalars())


def investigation_results(sess: Session, investigation: OosInvestigation) -> list[QcResult]:
    """The original OOS result and every retest made inside the investigation, oldest first."""
    return list(sess.execute(select(QcResult).where(QcResult.investigation_id == investigation.id)
                             .order_by(QcResult.id)).scalars())


def _text(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed(f"Write the {what}.", errors={field: ["Required."]})
    if len(text) > TEXT_MAX:
        raise ValidationFailed(f"The {what} has at most {TEXT_MAX} characters.", errors={field: ["Too long."]})
    return text


def record_phase1(sess: Session, investigation: OosInvestigation, *, assessment: str,
                  laboratory_error: bool) -> OosInvestigation:
    """Phase I: was it a laboratory error? If not, the investigation goes on into manufacturing (phase II)."""
    if investigation.status != "phase_1":
        raise Conflict(f"{investigation.number} is {investigation.status.replace('_', ' ')}: phase I is recorded.")
    investigation.phase1_assessment = _text(assessment, "phase1_assessment", "phase I assessment")
    investigation.laboratory_error = bool(laboratory_error)
    if not laboratory_error:
        investigation.status = "phase_2"
    sess.flush()
    return investigation


def record_phase2(sess: Session, investigation: OosInvestigation, *, assessment: str, root_cause: str
                  ) -> OosInvestigation:
    if investigation.status != "phase_2":
        raise Conflict(f"{investigation.number} is not in phase II (manufacturing investigation).")
    investigation.phase2_assessment = _text(assessment, "phase2_assessment", "phase II assessment")
    investigation.root_cause = _text(root_cause, "root_cause", "root cause")
    sess.flush()
    return investigation


def invalidate_result(sess: Session, result: QcResult, reason: str) -> QcResult:
    """A laboratory error proven in phase I invalidates the result: its value stays, with the reason."""
    investigation = sess.get(OosInvestigation, result.investigation_id) if result.investigation_id else None
    if investigation is None or not investigation.is_open:
        raise Conflict("A result can only be invalidated inside an open OOS investigation.")
    if not investigation.laboratory_error:
        raise Conflict("Only a laboratory error found in phase I invalidates a result.")
    if result.status == "invalidated":
        raise Conflict("This result is already invalidated.")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Invalidating a result needs the reason.", errors={"reason": ["Why is it invalid?"]})
    with audit_reason(sess, reason):
        result.status = "invalidated"
        result.reportable = False
        result.invalidated_at = utcnow()
        result.invalidated_by = current_actor().username
        result.invalidated_reason = reason
    sess.flush()
    lot = sess.get(QualityLot, result.lot_id)
    if lot is not None:
        _results_changed(sess, lot, f"Result invalidated: {result.test_name} ({reason})")
    return result


def close_investigation(sess: Session, investigation: OosInvestigation, *, conclusion: str, conclusion_text: str,
                        reportable_result_id: int, username: str, password: str, current_user: Any) -> OosInvestigation:
    """QA closes the investigation with a signature and names the reportable result: the OOS stands
    (confirmed), or a laboratory error invalidated it and a valid retest is reportable."""
    if not investigation.is_open:
        raise Conflict(f"{investigation.number} is already closed.")
    if conclusion not in ("confirmed", "invalidated"):
        raise ValidationFailed("The conclusion is 'confirmed' (the OOS stands) or 'invalidated' (laboratory error).",
                               errors={"conclusion": ["Choose."]})
    text = _text(conclusion_text, "conclusion_text", "conclusion")
    results = investigation_results(sess, investigation)
    reportable = next((r for r in results if r.id == reportable_result_id), None)
    if reportable is None:
        raise ValidationFailed("The reportable result must be the original result or a retest of this investigation.",
                               errors={"reportable_result_id": ["Choose a result of this investigation."]})
    if reportable.status == "invalidated":
        raise ValidationFailed("An invalidated result cannot be the reportable one.",
                               errors={"reportable_result_id": ["Invalidated."]})
    original = sess.get(QcResult, investigation.result_id)
    if conclusion == "confirmed":
        if investigation.status == "phase_1" or not investigation.root_cause:
            raise Conflict("A confirmed OOS needs the phase II manufacturing investigation and its root cause.")
        if reportable.id != original.id:
            raise ValidationFailed("A confirmed OOS keeps the original result as the reportable one: a passing "
                                   "retest does not replace it.", errors={"reportable_result_id": ["The original."]})
    else:
        if not investigation.laboratory_error or original.status != "invalidated":
            raise Conflict("Concluding on a laboratory error needs phase I to find it and the original result "
                           "invalidated with its reason.")
        if reportable.id == original.id:
            raise ValidationFailed("Choose the valid retest as the reportable result.",
                                   errors={"reportable_result_id": ["A retest."]})
    investigation.conclusion = conclusion
    investigation.conclusion_text = text
    investigation.reportable_result_id = reportable.id
    sign_record(sess, investigation, meaning="closed", username=username, password=password,
                current_user=current_user, comment=text)
    investigation.status = "closed"
    investigation.closed_at = utcnow()
    investigation.closed_by = current_user.username
    for result in results:
        result.reportable = result.id == reportable.id
    sess.flush()
    return investigation


# --- the lot's results against its specification --------------------------------------------------

@dataclass
class TestStanding:
    """One test of the lot's specification: its reportable result and where it stands."""

    test: dict[str, Any]
    state: str  # pass, fail, pending, under investigation
    result: QcResult | None
    results: list[QcResult]
    investigation: OosInvestigation | None


def test_standings(sess: Session, lot: QualityLot) -> list[TestStanding]:
    """Every test of the lot's specification with its reportable result: pass, fail, pending or under
    OOS investigation."""
    if lot.specification is None:
        return []
    all_results = results_of(sess, lot)
    investigations = investigations_of(sess, lot)
    standings = []
    for test in lot.specification.tests:
        rows = [r for r in all_results if r.test_key == test["key"]]
        open_inv = next((i for i in investigations if i.test_key == test["key"] and i.is_open), None)
        reportable = next((r for r in reversed(rows) if r.reportable and r.status != "invalidated"), None)
        if open_inv is not None:
            state = "under investigation"
        elif reportable is None:
            state = PENDING
        else:
            state = reportable.outcome
        standings.append(TestStanding(test, state, reportable, rows, open_inv))
    return standings


def related_lots(sess: Session, investigation: OosInvestigation) -> list[dict[str, Any]]:
    """Other lots the investigation may extend to, from the recorded genealogy: the same cord blood unit,
    the same material lots, or the same equipment during overlapping periods."""
    from batches.execution.models import Batch, EquipmentOccupancy, MaterialUsage

    lot = sess.get(QualityLot, investigation.lot_id)
    batch = lot.batch
    found: dict[int, list[str]] = {}

    def add(batch_id: int, why: str) -> None:
        if batch_id != batch.id:
            found.setdefault(batch_id, [])
            if why not in found[batch_id]:
                found[batch_id].append(why)

    for other in sess.execute(select(Batch.id).where(Batch.cord_blood_unit_id == batch.cord_blood_unit_id)).scalars():
        add(other, f"same cord blood unit {batch.cord_blood_din}")
    usages = list(sess.execute(select(MaterialUsage).where(MaterialUsage.batch_id == batch.id,
                                                           MaterialUsage.voided_at.is_(None))).scalars())
    lot_ids = {u.material_lot_id: u.material_lot for u in usages}
    if lot_ids:
        for other_usage in sess.execute(select(MaterialUsage).where(
                MaterialUsage.material_lot_id.in_(list(lot_ids)), MaterialUsage.batch_id != batch.id,
                MaterialUsage.voided_at.is_(None))).scalars():
            material_lot = lot_ids[other_usage.material_lot_id]
            add(other_usage.batch_id, f"same material lot {material_lot.material.code} {material_lot.lot_number}")
    now = utcnow()
    for occ in sess.execute(select(EquipmentOccupancy).where(EquipmentOccupancy.batch_id == batch.id)).scalars():
        end = occ.ended_at or now
        overlapping = sess.execute(select(EquipmentOccupancy).where(
            EquipmentOccupancy.asset_id == occ.asset_id, EquipmentOccupancy.batch_id != batch.id,
            EquipmentOccupancy.started_at < end,
            or_(EquipmentOccupancy.ended_at.is_(None), EquipmentOccupancy.ended_at > occ.started_at))).scalars()
        for other_occ in overlapping:
            add(other_occ.batch_id, f"same equipment {occ.asset_code} in the same period")
    if not found:
        return []
    batches = {b.id: b for b in sess.execute(select(Batch).where(Batch.id.in_(list(found)))).scalars()}
    lots = {q.batch_id: q for q in sess.execute(select(QualityLot).where(
        and_(QualityLot.batch_id.in_(list(found))))).scalars()}
    return [{"batch": batches[bid], "lot": lots.get(bid), "reasons": reasons}
            for bid, reasons in sorted(found.items())]
