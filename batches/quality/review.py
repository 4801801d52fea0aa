"""QA review by exception and lot disposition.

The lot review is computed, never typed: the batch record's exceptions with their review state,
deviations, results against the specification, OOS investigations, audit changes after first entry
(EU Annex 11 section 8.2), signatures whose records changed after signing, alarms and gaps while the batch
occupied equipment, material and equipment status at use, yield against target, and the chain of
identity. The same blocking list refuses a disposition and is shown on the review page.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import AuditEntry, audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, PermissionDenied, ValidationFailed
from app.signatures import STATUS_VALID, Signature, sign_record, signature_status
from batches.execution.deviations import list_deviations
from batches.execution.exceptions import exceptions_of, occupancies_of, sync_equipment_exceptions
from batches.execution.models import Batch, BatchStep, MaterialUsage, StepEntry
from batches.quality.models import LotDisposition, OosInvestigation, QcResult, QcSample, QualityLot
from batches.quality.operations import apply_lot_status, units_of_batch
from batches.quality.results import investigations_of, results_of, test_standings

BLOCKING_DEVIATION_CLASSES = ("major", "critical")
# Audit changes that are workflow, not data changed after first entry.
WORKFLOW_KEYS = {"status", "reviewed_at", "reviewed_by", "reportable", "investigation_id", "row_version",
                 "taken_by_id", "taken_by", "taken_since", "review_id"}
AUDITED_DATA_TABLES = ("step_entry", "material_usage", "qc_result", "qc_sample", "final_product_unit")


@dataclass
class Blocker:
    """One reason a disposition is not possible yet, in QA's words, with where to look."""

    code: str
    message: str
    anchor: str = ""


@dataclass
class LotReview:
    lot: QualityLot
    batch: Batch
    exceptions: list[Any]
    deviations: list[Any]
    standings: list[Any]
    investigations: list[OosInvestigation]
    changes_after_entry: list[AuditEntry]
    broken_signatures: list[tuple[str, Signature, str]]
    equipment_events: list[Any]
    materials: list[dict[str, Any]]
    equipment: list[dict[str, Any]]
    yield_actual: float | None
    yield_target: float
    units: list[Any]
    cord_blood_unit: Any
    dispositions: list[LotDisposition]
    involved: set[int]
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def yield_percent(self) -> float | None:
        return self.yield_actual / self.yield_target * 100 if self.yield_actual is not None else None

    def conditional_blockers(self, pending: list[str]) -> list[Blocker]:
        """The blockers left if the named tests may stay pending (conditional release)."""
        return [b for b in self.blockers if not (b.code.startswith("test_pending:")
                                                   and b.code.split(":", 1)[1] in pending)]


def _signature_problems(sess: Session, records: dict[str, dict[str, Any]]) -> list[tuple[str, Signature, str]]:
    problems = []
    for table, by_id in records.items():
        if not by_id:
            continue
        sigs = sess.execute(select(Signature).where(Signature.record_table == table,
                                                    Signature.record_id.in_(list(by_id)),
                                                    Signature.voided_at.is_(None))).scalars()
        for sig in sigs:
            status = signature_status(by_id.get(sig.record_id), sig)
            if status != STATUS_VALID:
                problems.append((table, sig, status))
    return problems


def _changes_after_entry(sess: Session, ids: dict[str, list[int]]) -> list[AuditEntry]:
    from app.audit import write_pending_entries

    write_pending_entries(sess)
    out = []
    for table, record_ids in ids.items():
        if not record_ids:
            continue
        rows = sess.execute(select(AuditEntry).where(AuditEntry.table_name == table, AuditEntry.action == "update",
                                                     AuditEntry.record_id.in_([str(i) for i in record_ids]))
                            .order_by(AuditEntry.id)).scalars()
        for row in rows:
            if set(json.loads(row.changes)) - WORKFLOW_KEYS:
                out.append(row)
    return sorted(out, key=lambda e: e.id)


def people_involved(sess: Session, batch: Batch) -> set[int]:
    """Users who performed or verified steps of the batch or recorded its entries."""
    step_ids = [str(s.id) for s in batch.steps]
    signers = set(sess.execute(select(Signature.signer_id).where(
        Signature.record_table == "batch_step", Signature.record_id.in_(step_ids),
        Signature.meaning.in_(("performed", "verified")))).scalars())
    recorders = set(sess.execute(select(StepEntry.recorded_by_id).where(
        StepEntry.batch_id == batch.id, StepEntry.recorded_by_id.is_not(None))).scalars())
    return signers | recorders


def build_lot_review(sess: Session, lot: QualityLot) -> LotReview:
    """Everything QA reviews by exception for the lot, and what still blocks its disposition."""
    from batches.execution.operations import current_entries
    from batches.sourcing.models import CordBloodUnit
    from equipment.models import Asset
    from equipment.registry import service_status

    batch = lot.batch
    sync_equipment_exceptions(sess, batch)
    exceptions = exceptions_of(sess, batch)
    deviations = list_deviations(sess, batch_id=batch.id)
    standings = test_standings(sess, lot)
    investigations = investigations_of(sess, lot)
    results = results_of(sess, lot)
    entries = list(sess.execute(select(StepEntry).where(StepEntry.batch_id == batch.id)).scalars())
    usages = list(sess.execute(select(MaterialUsage).where(MaterialUsage.batch_id == batch.id)
                               .order_by(MaterialUsage.id)).scalars())
    samples = list(sess.execute(select(QcSample).where(QcSample.lot_id == lot.id)).scalars())
    units = units_of_batch(sess, batch.id)
    changes = _changes_after_entry(sess, {
        "step_entry": [e.id for e in entries], "material_usage": [u.id for u in usages],
        "qc_result": [r.id for r in results], "qc_sample": [s.id for s in samples],
        "final_product_unit": [u.id for u in units_of_batch(sess, batch.id, include_voided=True)]})
    dispositions = list(sess.execute(select(LotDisposition).where(LotDisposition.lot_id == lot.id)
                                     .order_by(LotDisposition.id)).scalars())
    broken = _signature_problems(sess, {
        "batch": {str(batch.id): batch}, "batch_step": {str(s.id): s for s in batch.steps},
        "deviation": {str(d.id): d for d in deviations}, "qc_result": {str(r.id): r for r in results},
        "oos_investigation": {str(i.id): i for i in investigations}})
    materials = []
    for usage in usages:
        if usage.voided_at is not None:
            continue
        material_lot = usage.material_lot
        problems = []
        if material_lot.expiry_date < usage.used_at.date():
            problems.append("expired at use")
        if material_lot.qc_status != "released":
            problems.append(f"QC status now {material_lot.qc_status}")
        materials.append({"usage": usage, "lot": material_lot, "problems": problems})
    equipment = []
    for occupancy in occupancies_of(sess, batch):
        asset = sess.get(Asset, occupancy.asset_id)
        status = service_status(sess, asset, "calibration", occupancy.started_at) if asset else None
        equipment.append({"occupancy": occupancy, "calibration": status,
                          "problem": bool(status and (status.overdue or status.failed))})
    current = current_entries(sess, batch)
    spec = batch.recipe.spec
    yield_entry = current.get(spec["yield_entry"])
    review = LotReview(
        lot=lot, batch=batch, exceptions=exceptions, deviations=deviations, standings=standings,
        investigations=investigations, changes_after_entry=changes, broken_signatures=broken,
        equipment_events=[e for e in exceptions if e.kind in ("alarm", "telemetry_gap")], materials=materials,
        equipment=equipment, yield_actual=yield_entry.value_number if yield_entry else None,
        yield_target=spec["target_yield_cells"], units=units,
        cord_blood_unit=sess.get(CordBloodUnit, batch.cord_blood_unit_id), dispositions=dispositions,
        involved=people_involved(sess, batch))
    review.blockers = _blockers(review, results)
    return review


def _blockers(review: LotReview, results: list[QcResult]) -> list[Blocker]:
    batch, lot = review.batch, review.lot
    out: list[Blocker] = []
    if batch.status not in ("completed", "in_review", "released"):
        out.append(Blocker("record_incomplete", f"The batch record is not complete: batch {batch.lot_number} is "
                                                f"{batch.status.replace('_', ' ')}.", "record"))
    if lot.specification is None:
        out.append(Blocker("no_specification", "Testing has not started: no approved specification is bound to "
                                               "the lot.", "results"))
    if not review.units:
        out.append(Blocker("no_units", "The lot has no infusion bags.", "chain"))
    for exc in review.exceptions:
        if exc.reviewed_at is None:
            out.append(Blocker(f"exception:{exc.id}", f"Exception not reviewed: {exc.kind_label}: {exc.description}",
                               "exceptions"))
    for dev in review.deviations:
        if dev.status != "open":
            continue
        if dev.classification in BLOCKING_DEVIATION_CLASSES:
            out.append(Blocker(f"deviation:{dev.id}", f"Open {dev.classification} deviation {dev.number}: "
                                                      f"{dev.title}", "deviations"))
        elif dev.classification is None:
            out.append(Blocker(f"deviation:{dev.id}", f"Open deviation {dev.number} is not classified yet: "
                                                      f"{dev.title}", "deviations"))
    for inv in review.investigations:
        if inv.is_open:
            out.append(Blocker(f"investigation:{inv.id}", f"OOS investigation {inv.number} is open: "
                                                          f"{inv.description}", "oos"))
    for standing in review.standings:
        test = standing.test
        if standing.state == "pending":
            out.append(Blocker(f"test_pending:{test['key']}", f"{test['name']}: no result yet.", "results"))
        elif standing.state == "fail":
            out.append(Blocker(f"test_failed:{test['key']}", f"{test['name']}: the reportable result "
                                                             f"{standing.result.value_text} fails.", "results"))
    for result in results:
        if result.reportable and result.status == "recorded":
            out.append(Blocker(f"result_unreviewed:{result.id}", f"{result.test_name}: result {result.value_text} "
                                                                 "is not reviewed by a second QC person.", "results"))
    for table, sig, status in review.broken_signatures:
        out.append(Blocker(f"signature:{sig.id}", f"{sig.meaning_label} {sig.signer_full_name} on {table.replace('_', ' ')} "
                                                  f"{sig.record_id}: {status}.", "signatures"))
    return out


# --- disposition ----------------------------------------------------------------------------------

def _check_disposer(review: LotReview, user: Any) -> None:
    if user.id in review.involved:
        raise PermissionDenied(f"You performed, verified or recorded steps of batch {review.batch.lot_number}: "
                               "another QA person must decide its disposition.")


def _refuse(blockers: list[Blocker], what: str) -> None:
    if blockers:
        raise Conflict(f"The lot cannot be {what} yet: " + " ".join(f"({n}) {b.message}" for n, b in
                                                                     enumerate(blockers, 1)),
                       errors={"_": [b.message for b in blockers]})


def _record(sess: Session, lot: QualityLot, decision: str, reason: str | None, pending: list[str],
            meaning: str, sign: dict[str, Any]) -> LotDisposition:
    disposition = LotDisposition(lot_id=lot.id, decision=decision, reason=(reason or "").strip() or None,
                                 pending_tests=",".join(pending), decided_at=utcnow(),
                                 decided_by=sign["current_user"].username)
    sess.add(disposition)
    sess.flush()
    sign_record(sess, disposition, meaning=meaning, comment=disposition.reason, **sign)
    return disposition


def _apply(sess: Session, lot: QualityLot, status: str, reason: str) -> None:
    from batches.quality.signals import lot_disposition_changed

    previous = lot.status
    apply_lot_status(sess, lot, status, reason)
    batch_status = {"released": "released", "conditionally_released": "released", "rejected": "rejected"}.get(status)
    if batch_status and lot.batch.status != batch_status:
        with audit_reason(sess, reason):
            lot.batch.status = batch_status
        sess.flush()
    lot_disposition_changed.send(lot, sess=sess, previous=previous)


def release_lot(sess: Session, lot: QualityLot, *, username: str, password: str, current_user: Any,
                comment: str | None = None) -> LotDisposition:
    """Release: every release-gating result passes, no open OOS, no open major/critical deviation, every
    exception reviewed, the record complete and its signatures intact; signed 'released' by QA."""
    if lot.status != "in_testing":
        raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: it cannot be released.")
    review = build_lot_review(sess, lot)
    _check_disposer(review, current_user)
    _refuse(review.blockers, "released")
    disposition = _record(sess, lot, "released", comment, [], "released",
                          {"username": username, "password": password, "current_user": current_user})
    _apply(sess, lot, "released", "lot released by QA")
    return disposition


def conditionally_release_lot(sess: Session, lot: QualityLot, *, pending_tests: list[str], justification: str,
                              username: str, password: str, current_user: Any) -> LotDisposition:
    """Conditional release with named tests still pending (only tests the specification allows to be
    pending, such as the 14-day sterility culture), with a justification."""
    if lot.status != "in_testing":
        raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: it cannot be released.")
    justification = (justification or "").strip()
    if not justification:
        raise ValidationFailed("A conditional release needs a justification.",
                               errors={"justification": ["Why may the lot be used before these results?"]})
    pending = [k.strip() for k in pending_tests if k and k.strip()]
    if not pending:
        raise ValidationFailed("Name the tests still pending.", errors={"pending_tests": ["Choose the tests."]})
    review = build_lot_review(sess, lot)
    _check_disposer(review, current_user)
    by_key = {s.test["key"]: s for s in review.standings}
    for key in pending:
        standing = by_key.get(key)
        if standing is None:
            raise ValidationFailed(f"{key} is not a test of the lot's specification.",
                                   errors={"pending_tests": ["Unknown test."]})
        if standing.test["gating"] != "may_be_pending":
            raise ValidationFailed(f"{standing.test['name']} must pass before release; the specification does not "
                                   "allow it to be pending.", errors={"pending_tests": ["Release-gating."]})
        if standing.state != "pending":
            raise ValidationFailed(f"{standing.test['name']} is not pending ({standing.state}).",
                                   errors={"pending_tests": ["Not pending."]})
    _refuse(review.conditional_blockers(pending), "conditionally released")
    disposition = _record(sess, lot, "conditionally_released", justification, pending, "released",
                          {"username": username, "password": password, "current_user": current_user})
    _apply(sess, lot, "conditionally_released", f"conditional release pending {', '.join(pending)}: {justification}")
    return disposition


def reject_lot(sess: Session, lot: QualityLot, *, reason: str, username: str, password: str,
               current_user: Any) -> LotDisposition:
    """Reject with a reason and a QA signature; the bags are marked for destruction."""
    if lot.status not in ("in_testing",):
        raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: a released lot found failing is "
                       "put on recall, not rejected.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A rejection needs the reason.", errors={"reason": ["Why is the lot rejected?"]})
    review = build_lot_review(sess, lot)
    _check_disposer(review, current_user)
    disposition = _record(sess, lot, "rejected", reason, [], "rejected",
                          {"username": username, "password": password, "current_user": current_user})
    _apply(sess, lot, "rejected", f"lot rejected: {reason}")
    return disposition


def recall_lot(sess: Session, lot: QualityLot, reason: str) -> LotDisposition | None:
    """Put a released or conditionally released lot on recall at once: its bags are blocked, and QA and
    every clinician with a reserved, issued or infused bag of the lot are notified."""
    from batches.quality.notifications import notify, users_with_role

    if lot.status not in ("released", "conditionally_released"):
        return None
    disposition = LotDisposition(lot_id=lot.id, decision="on_recall", reason=reason, pending_tests="",
                                 decided_at=utcnow(), decided_by=current_actor().username)
    sess.add(disposition)
    _apply(sess, lot, "on_recall", reason)
    # Reservations, issues and infusions are recorded by dosing; its clinicians join this list there.
    recipients = users_with_role(sess, "qa") + clinicians_with_bags(sess, lot)
    notify(sess, recipients, subject=f"RECALL: lot {lot.lot_number} ({lot.product}) is on recall",
           body=f"Lot {lot.lot_number} was put on recall and its bags are blocked: {reason} Do not infuse any "
                f"bag of this lot; contact QA.", link=f"/quality/lots/{lot.id}/review")
    return disposition


def clinicians_with_bags(sess: Session, lot: QualityLot) -> list[Any]:
    """Clinicians who reserved, were issued or infused a bag of the lot (none until dosing records them)."""
    return []


def on_oos_opened(investigation: OosInvestigation, sess: Session, lot: QualityLot, result: QcResult,
                  **_: Any) -> None:
    """A failing result after a (conditional) release puts the lot on recall (signal receiver)."""
    from batches.quality.notifications import notify, users_with_role

    if lot.status in ("released", "conditionally_released"):
        recall_lot(sess, lot, f"{result.test_name} = {result.value_text} after "
                              f"{lot.status.replace('_', ' ')}: OOS investigation {investigation.number}.")
    else:
        notify(sess, users_with_role(sess, "qa"), subject=f"OOS: {result.test_name}, lot {lot.lot_number}",
               body=investigation.description, link=f"/quality/investigations/{investigation.id}")
