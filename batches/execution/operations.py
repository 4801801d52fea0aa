"""Batch execution: start a batch from an accepted cord blood unit, run its steps with typed entries
against their limits, sign performed/verified, correct with a reason, hold and abort a batch.

Operations flush and never commit. Optimistic locking: every change to a step or batch names the
version it was made against; a stale submission is refused with a message to reload.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.audit import audit_reason, current_actor
from app.db import advisory_xact_lock, utcnow
from app.errors import Conflict, NotFound, PermissionDenied, ReasonRequired, ValidationFailed
from app.permissions import can
from app.signatures import sign_record, signatures_for, void_signatures
from app.web import format_number
from batches.execution import limits
from batches.execution.deviations import open_deviation
from batches.execution.exceptions import raise_exception
from batches.execution.materials import consume, find_scanned_lot, lot_problem
from batches.execution.models import (
    Batch,
    BatchStep,
    EquipmentOccupancy,
    MaterialUsage,
    Recipe,
    StepEntry,
)
from batches.execution.recipes import entry_specs, get_recipe, iter_steps
from batches.execution.signals import step_completed

FUTURE_TOLERANCE = timedelta(minutes=5)
# The one refusal an operator can override, by confirming the value and commenting (a deviation opens)
HARD_LIMIT_ERROR = "Outside the hard limits: confirm and comment."
RELEASE_WORDS = {"1", "yes", "on", "true", "released", "done"}
HOURS = 3600.0


@dataclass
class EntryInput:
    """What the operator typed or scanned for one entry."""

    value: str | None = None
    quantity: str | None = None
    confirm: bool = False
    comment: str | None = None
    override_reason: str | None = None

    @property
    def is_blank(self) -> bool:
        return not (self.value or "").strip()


@dataclass
class ParsedEntry:
    key: str
    spec: dict[str, Any]
    value_text: str
    value_number: float | None = None
    limit_class: str = limits.NONE
    comment: str | None = None
    occurred_at: datetime | None = None
    material_lot: Any = None
    quantity: float | None = None
    asset: Any = None
    asset_code: str | None = None
    override_reason: str | None = None
    refusal: str | None = None


# --- lookups ------------------------------------------------------------------------------------

def get_batch(sess: Session, batch_id: int) -> Batch:
    batch = sess.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"Batch {batch_id} does not exist.")
    return batch


def get_batch_by_lot(sess: Session, lot_number: str) -> Batch:
    batch = sess.execute(select(Batch).where(Batch.lot_number == lot_number)).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"No batch with lot number {lot_number}.")
    return batch


def get_step(sess: Session, step_id: int, batch: Batch | None = None) -> BatchStep:
    if batch is not None:  # pages and saves need the batch's other steps too: one query loads them all
        step = next((s for s in batch.steps if s.id == step_id), None)
    else:
        step = sess.get(BatchStep, step_id)
    if step is None or (batch is not None and step.batch_id != batch.id):
        raise NotFound(f"Step {step_id} does not exist in this batch.")
    return step


def get_entry(sess: Session, entry_id: int) -> StepEntry:
    entry = sess.get(StepEntry, entry_id)
    if entry is None:
        raise NotFound(f"Entry {entry_id} does not exist.")
    return entry


def list_batches(sess: Session, statuses: Iterable[str] | None = None, *, limit: int | None = None,
                 with_steps: bool = False) -> list[Batch]:
    """Batches, newest first; with_steps loads their steps in one more query instead of one per batch."""
    stmt = select(Batch).order_by(Batch.started_at.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(Batch.status.in_(list(statuses)))
    if with_steps:
        stmt = stmt.options(selectinload(Batch.steps))
    return list(sess.execute(stmt).scalars())


def batch_entries(sess: Session, batch: Batch) -> list[StepEntry]:
    """Every entry row of the batch, voided originals included, oldest first."""
    return list(sess.execute(select(StepEntry).where(StepEntry.batch_id == batch.id).order_by(StepEntry.id)).scalars())


def live_entries(entries: Iterable[StepEntry]) -> dict[str, StepEntry]:
    """The live (not voided) entry of each key among the given rows."""
    return {row.entry_key: row for row in entries if row.voided_at is None}


def current_entries(sess: Session, batch: Batch) -> dict[str, StepEntry]:
    """The live (not voided) entry of each key in the batch."""
    rows = sess.execute(select(StepEntry).where(StepEntry.batch_id == batch.id, StepEntry.voided_at.is_(None))
                        .order_by(StepEntry.id)).scalars()
    return live_entries(rows)


def entry_history(sess: Session, step: BatchStep) -> list[StepEntry]:
    """Every entry row of a step, voided originals included, oldest first."""
    return list(sess.execute(select(StepEntry).where(StepEntry.step_id == step.id).order_by(StepEntry.id)).scalars())


def planned_start(step: BatchStep) -> datetime:
    return step.batch.started_at + timedelta(days=step.planned_day)


def due_by(step: BatchStep) -> datetime:
    return planned_start(step) + timedelta(hours=step.window_hours)


def is_late(step: BatchStep, at: datetime | None = None) -> bool:
    return (at or utcnow()) > due_by(step)


def is_early(step: BatchStep, at: datetime | None = None) -> bool:
    """Before the step's planned window opens."""
    return (at or utcnow()) < planned_start(step)


def earliest_start(step: BatchStep) -> datetime | None:
    """The recipe's hard earliest start for the step, if the site set one."""
    hours = step.spec.get("earliest_start_hours")
    return None if hours is None else step.batch.started_at + timedelta(hours=hours)


def _check_early(sess: Session, step: BatchStep, reason: str) -> None:
    hard = earliest_start(step)
    if hard is not None and utcnow() < hard:
        raise Conflict(f"Step {step.position} ({step.title}) cannot start before {hard:%Y-%m-%d %H:%M} UTC: the "
                       "recipe sets a hard earliest start.")
    if not reason:
        raise ReasonRequired(
            f"This step is planned for {planned_start(step):%Y-%m-%d %H:%M} UTC. Doing it before its planned time "
            "needs a reason and becomes an exception for QA.", errors={"reason": ["Give the reason for doing it early."]})
    raise_exception(sess, step.batch, "early", source_table="batch_step", source_id=step.id, step=step,
                    description=f"Step {step.position} '{step.title}' started before its planned time "
                                f"({planned_start(step):%Y-%m-%d %H:%M} UTC): {reason}")


def next_step(batch: Batch) -> BatchStep | None:
    return next((s for s in batch.steps if s.status != "complete"), None)


# --- batch lifecycle ------------------------------------------------------------------------------

def _generate_lot_number(sess: Session, recipe: Recipe) -> str:
    advisory_xact_lock(sess, "batch_lot_number")
    prefix = f"{recipe.code}-{utcnow():%y%m%d}-"
    count = sess.execute(select(func.count(Batch.id)).where(Batch.lot_number.like(prefix + "%"))).scalar_one()
    return f"{prefix}{count + 1:03d}"


def _flush(sess: Session) -> None:
    """Flush, turning a lost optimistic-lock race into a message to reload."""
    try:
        sess.flush()
    except StaleDataError:
        raise Conflict("Someone else saved a change to this record a moment ago. Reload the page and check "
                       "before trying again; nothing of yours was saved.") from None


def start_batch(sess: Session, *, unit_id: int, recipe_id: int, username: str, password: str, current_user: Any,
                comment: str | None = None) -> Batch:
    """Start a batch, e-signed "started" by the supervisor: a lot number, the steps of the approved recipe
    version, the unit's custody."""
    from batches.sourcing.operations import assign_unit_to_batch, get_assignable_unit

    recipe = get_recipe(sess, recipe_id)
    if recipe.status != "approved":
        raise Conflict(f"{recipe.label} is {recipe.status.replace('_', ' ')}: a batch can only start from an "
                       "approved recipe version.")
    unit = get_assignable_unit(sess, unit_id)
    lot_number = _generate_lot_number(sess, recipe)
    now = utcnow()
    batch = Batch(lot_number=lot_number, recipe_id=recipe.id, cord_blood_unit_id=unit.id, cord_blood_din=unit.din,
                  exceptional_release=bool(unit.exceptional_release), product=recipe.product, status="in_progress",
                  started_at=now, started_by=current_actor().username)
    batch.recipe = recipe
    sess.add(batch)
    sess.flush()
    for position, (phase, step) in enumerate(iter_steps(recipe.spec), start=1):
        sess.add(BatchStep(batch_id=batch.id, position=position, phase_name=phase["name"], step_key=step["key"],
                           title=step["title"], planned_day=step["day"], window_hours=step["window_hours"],
                           requires_verification=step["verification"], any_order=step["any_order"],
                           status="pending", entries_digest=_digest([])))
    assign_unit_to_batch(sess, unit, batch_lot_number=lot_number)
    sess.flush()
    sign_record(sess, batch, meaning="started", username=username, password=password, current_user=current_user,
                comment=comment)
    sess.refresh(batch, ["steps"])
    return batch


def _check_version(record: Batch | BatchStep, expected_version: int | None, what: str) -> None:
    if expected_version is not None and int(expected_version) != record.row_version:
        raise Conflict(f"This {what} was changed on another tablet since you opened it. Reload the page to see "
                       "the latest entries; nothing of yours was saved.")


def _require_active(batch: Batch) -> None:
    if batch.status != "in_progress":
        raise Conflict(f"Batch {batch.lot_number} is {batch.status.replace('_', ' ')}"
                       + (f" ({batch.status_reason})" if batch.status_reason else "") + ": no work can be recorded.")


def hold_batch(sess: Session, batch: Batch, reason: str, expected_version: int | None = None) -> Batch:
    _check_version(batch, expected_version, "batch")
    if not (reason or "").strip():
        raise ReasonRequired("Putting a batch on hold needs a reason.", errors={"reason": ["Give the reason."]})
    if batch.status != "in_progress":
        raise Conflict(f"Only a batch in progress can be put on hold; {batch.lot_number} is "
                       f"{batch.status.replace('_', ' ')}.")
    with audit_reason(sess, reason):
        batch.status = "on_hold"
        batch.status_reason = reason.strip()
    _flush(sess)
    return batch


def resume_batch(sess: Session, batch: Batch, reason: str, expected_version: int | None = None) -> Batch:
    _check_version(batch, expected_version, "batch")
    if not (reason or "").strip():
        raise ReasonRequired("Resuming a batch needs a reason.", errors={"reason": ["Give the reason."]})
    if batch.status != "on_hold":
        raise Conflict(f"{batch.lot_number} is not on hold.")
    with audit_reason(sess, reason):
        batch.status = "in_progress"
        batch.status_reason = None
    _flush(sess)
    return batch


def _end_open_occupancies(sess: Session, batch: Batch) -> None:
    from equipment.operations import end_usage
    from equipment.models import AssetUsage

    for occupancy in sess.execute(select(EquipmentOccupancy).where(EquipmentOccupancy.batch_id == batch.id,
                                                                   EquipmentOccupancy.ended_at.is_(None))).scalars():
        now = utcnow()
        usage = sess.get(AssetUsage, occupancy.usage_id) if occupancy.usage_id else None
        if usage is not None and usage.ended_at is None:
            end_usage(sess, usage, ended_at=now)
        occupancy.ended_at = now


def abort_batch(sess: Session, batch: Batch, *, reason: str, username: str, password: str, current_user: Any,
                expected_version: int | None = None) -> Batch:
    """Abort with a reason and a QA e-signature; the equipment is released."""
    _check_version(batch, expected_version, "batch")
    if not (reason or "").strip():
        raise ReasonRequired("Aborting a batch needs a reason.", errors={"reason": ["Give the reason."]})
    if batch.status not in ("planned", "in_progress", "on_hold", "completed"):
        raise Conflict(f"{batch.lot_number} is {batch.status.replace('_', ' ')} and cannot be aborted.")
    sign_record(sess, batch, meaning="aborted", username=username, password=password, current_user=current_user,
                comment=reason)
    with audit_reason(sess, reason):
        batch.status = "aborted"
        batch.status_reason = reason.strip()
        _end_open_occupancies(sess, batch)
    _flush(sess)
    return batch


def submit_batch_for_review(sess: Session, batch: Batch, expected_version: int | None = None, *, username: str,
                            password: str, current_user: Any, comment: str | None = None) -> Batch:
    """Send a completed batch record to QA review, e-signed "submitted" by the supervisor."""
    _check_version(batch, expected_version, "batch")
    if batch.status != "completed":
        raise Conflict(f"Only a completed batch record can go to QA review; {batch.lot_number} is "
                       f"{batch.status.replace('_', ' ')}.")
    sign_record(sess, batch, meaning="submitted", username=username, password=password, current_user=current_user,
                comment=comment)
    batch.status = "in_review"
    _flush(sess)
    return batch


# --- taking a step --------------------------------------------------------------------------------

def _earlier_incomplete(step: BatchStep) -> list[BatchStep]:
    return [s for s in step.batch.steps if s.position < step.position and s.status != "complete"]


def take_step(sess: Session, step: BatchStep, user: Any, *, reason: str | None = None,
              expected_version: int | None = None) -> BatchStep:
    """Take a step to work on it. Out of order, early or late needs a reason and becomes an exception."""
    _require_active(step.batch)
    _check_version(step, expected_version, "step")
    _take(sess, step, user, reason)
    _flush(sess)
    return step


def _take(sess: Session, step: BatchStep, user: Any, reason: str | None) -> None:
    batch = step.batch
    if step.taken_by_id is not None and step.taken_by_id != user.id:
        raise Conflict(f"{step.taken_by} is working on this step (since {step.taken_since:%H:%M} UTC). Two people "
                       "cannot work on the same step; ask them to let go of it.")
    if step.taken_by_id == user.id:
        return
    if step.status not in ("pending", "in_progress"):
        raise Conflict(f"Step {step.position} is already {step.status}; nothing more can be entered.")
    reason = (reason or "").strip()
    if step.status == "pending":
        earlier = _earlier_incomplete(step)
        if earlier and not step.any_order:
            if not reason:
                raise ReasonRequired(
                    f"Step {earlier[0].position} ({earlier[0].title}) is not complete yet. Doing this step out of "
                    "order needs a reason and becomes an exception for QA.",
                    errors={"reason": ["Give the reason for doing this step out of order."]})
            raise_exception(sess, batch, "out_of_order", source_table="batch_step", source_id=step.id, step=step,
                            description=f"Step {step.position} '{step.title}' started before step "
                                        f"{earlier[0].position} was complete: {reason}")
        if is_early(step):
            _check_early(sess, step, reason)
        if is_late(step):
            if not reason:
                raise ReasonRequired(
                    f"This step was due by {due_by(step):%Y-%m-%d %H:%M} UTC. Doing it late needs a reason and "
                    "becomes an exception for QA.", errors={"reason": ["Give the reason for the delay."]})
            raise_exception(sess, batch, "late", source_table="batch_step", source_id=step.id, step=step,
                            description=f"Step {step.position} '{step.title}' started after its window "
                                        f"(due {due_by(step):%Y-%m-%d %H:%M} UTC): {reason}")
        step.started_at = utcnow()
    step.taken_by_id = user.id
    step.taken_by = user.username
    step.taken_since = utcnow()
    step.status = "in_progress"


def let_go_of_step(sess: Session, step: BatchStep, user: Any, *, take_over_reason: str | None = None) -> BatchStep:
    """Let go of a step; a supervisor may free a step someone else took, with a reason."""
    if step.taken_by_id is None:
        return step
    if step.taken_by_id != user.id:
        if not can(user, "batches.override_scan"):
            raise PermissionDenied(f"{step.taken_by} has taken this step; only they or a supervisor can let go of it.")
        if not (take_over_reason or "").strip():
            raise ReasonRequired("Letting go of another person's step needs a reason.",
                                 errors={"reason": ["Give the reason."]})
    with audit_reason(sess, take_over_reason):
        step.taken_by_id = None
        step.taken_by = None
        step.taken_since = None
    _flush(sess)
    return step


# --- entries --------------------------------------------------------------------------------------

def _digest(entries: Iterable[StepEntry]) -> str:
    content = sorted([e.entry_key, e.value_text, e.value_number, e.comment, e.material_lot_id, e.quantity,
                      e.asset_code, e.recorded_by] for e in entries if e.voided_at is None)
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _parse_time(text: str | None) -> datetime:
    if not (text or "").strip() or text.strip().lower() == "now":
        return utcnow()
    from flask import has_app_context

    value_text = text.strip()
    if has_app_context():
        from app.web import parse_local_datetime

        value = parse_local_datetime(value_text)
    else:
        try:
            value = datetime.fromisoformat(value_text)
        except ValueError:
            raise ValidationFailed(f"'{value_text}' is not a date and time (YYYY-MM-DDTHH:MM).") from None
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    assert value is not None
    if value > utcnow() + FUTURE_TOLERANCE:
        raise ValidationFailed("A time cannot be in the future.")
    return value.astimezone(timezone.utc)


def _parse_entry(sess: Session, batch: Batch, key: str, spec: dict[str, Any], raw: EntryInput, user: Any,
                 current: dict[str, StepEntry]) -> ParsedEntry:
    """Check one typed or scanned value against its type and limits; raises with the user's terms."""
    kind = spec["type"]
    label = spec["label"]
    value = (raw.value or "").strip()
    comment = (raw.comment or "").strip() or None
    parsed = ParsedEntry(key=key, spec=spec, value_text=value, comment=comment)
    if kind == "calculation":
        raise ValidationFailed(f"{label} is calculated; it cannot be typed.", errors={key: ["Calculated."]})
    if kind == "number":
        parsed.value_number = limits.parse_number(value, label)
        parsed.limit_class = limits.classify(parsed.value_number, spec)
        parsed.value_text = format_number(parsed.value_number)
    elif kind == "text":
        if not value:
            raise ValidationFailed(f"{label}: enter the text.", errors={key: ["Required."]})
    elif kind == "choice":
        if value not in spec["options"]:
            raise ValidationFailed(f"{label}: choose one of {', '.join(spec['options'])}.", errors={key: ["Choose."]})
        parsed.limit_class = limits.RED if value in (spec.get("fail_options") or []) else limits.GREEN
    elif kind == "passfail":
        if value.lower() not in ("pass", "fail"):
            raise ValidationFailed(f"{label}: answer pass or fail.", errors={key: ["Pass or fail."]})
        parsed.value_text = value.lower()
        parsed.limit_class = limits.GREEN if parsed.value_text == "pass" else limits.RED
    elif kind in ("timer_start", "timer_stop"):
        moment = _parse_time(value)
        parsed.occurred_at = moment
        parsed.value_number = moment.timestamp() / HOURS
        parsed.value_text = moment.isoformat(timespec="seconds")
    elif kind == "material":
        _parse_material(sess, parsed, raw, user)
    elif kind == "equipment":
        _parse_equipment(sess, parsed, raw, user)
    elif kind == "equipment_release":
        if value.lower() not in RELEASE_WORDS:
            raise ValidationFailed(f"{label}: confirm that the equipment was emptied.", errors={key: ["Confirm."]})
        source = current.get(spec["releases"])
        if source is None:
            raise ValidationFailed(f"{label}: the equipment ({spec['releases']}) was never scanned into this batch.",
                                   errors={key: ["Nothing to release."]})
        parsed.value_text = f"released {source.asset_code}"
        parsed.asset_code = source.asset_code
    return parsed


def _override_allowed(parsed: ParsedEntry, raw: EntryInput, user: Any, problem: str) -> bool:
    reason = (raw.override_reason or "").strip()
    if not reason:
        return False
    if not can(user, "batches.override_scan"):
        raise PermissionDenied(f"{problem} Only a supervisor can accept a refused scan.")
    parsed.override_reason = reason
    parsed.refusal = problem
    return True


def _parse_material(sess: Session, parsed: ParsedEntry, raw: EntryInput, user: Any) -> None:
    spec, key = parsed.spec, parsed.key
    try:
        lot = find_scanned_lot(sess, spec["material"], parsed.value_text)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{spec['label']}: {exc.message}", errors={key: [exc.message]}) from None
    problem = lot_problem(lot)
    if problem and not _override_allowed(parsed, raw, user, problem):
        raise ValidationFailed(f"{spec['label']}: {problem} Scan another lot.", errors={key: [problem]})
    quantity = limits.parse_number(raw.quantity, f"{spec['label']} quantity used")
    if quantity <= 0:
        raise ValidationFailed(f"{spec['label']}: the quantity used must be more than 0.",
                               errors={f"{key}__quantity": ["More than 0."]})
    parsed.material_lot = lot
    parsed.quantity = quantity
    parsed.value_text = f"{lot.material.code} lot {lot.lot_number}"


def _parse_equipment(sess: Session, parsed: ParsedEntry, raw: EntryInput, user: Any) -> None:
    from equipment.operations import check_asset_usable

    spec, key = parsed.spec, parsed.key
    code = parsed.value_text.strip()
    if not code:
        raise ValidationFailed(f"{spec['label']}: scan the equipment label.", errors={key: ["Scan."]})
    usability = check_asset_usable(sess, code)
    if usability.asset is None:
        raise ValidationFailed(f"{spec['label']}: {usability.reason}", errors={key: [usability.reason]})
    accepted = spec.get("asset_types")
    if accepted and usability.asset.asset_type not in accepted:
        from equipment.models import ASSET_TYPES

        wanted = " or ".join(ASSET_TYPES.get(t, t) for t in accepted)
        problem = (f"{usability.asset.code} is a {usability.asset.type_label.lower()}, not a {wanted.lower()}. "
                   "Scan the right equipment.")
        raise ValidationFailed(f"{spec['label']}: {problem}", errors={key: [problem]})
    if not usability.usable and not _override_allowed(parsed, raw, user, usability.reason):
        raise ValidationFailed(f"{spec['label']}: {usability.reason}", errors={key: [usability.reason]})
    parsed.asset = usability.asset
    parsed.asset_code = usability.asset.code
    parsed.value_text = usability.asset.code


def _red_needs_confirmation(parsed: ParsedEntry, raw: EntryInput) -> None:
    if parsed.limit_class != limits.RED:
        return
    what = parsed.spec["label"]
    shown = parsed.value_text + (f" {parsed.spec['unit']}" if parsed.spec.get("unit") else "")
    if not raw.confirm or not parsed.comment:
        raise ValidationFailed(
            f"{what}: {shown} is outside the hard limits ({limits.limits_text(parsed.spec) or 'fail'}). Check the "
            "value; if it is right, confirm it and give a comment: a deviation will be opened.",
            errors={parsed.key: [HARD_LIMIT_ERROR]})


def _store_entry(sess: Session, step: BatchStep, parsed: ParsedEntry, user: Any,
                 replaces: StepEntry | None = None) -> StepEntry:
    now = utcnow()
    entry = StepEntry(batch_id=step.batch_id, step=step, entry_key=parsed.key, entry_type=parsed.spec["type"],
                      value_text=parsed.value_text, value_number=parsed.value_number, unit=parsed.spec.get("unit"),
                      limit_class=parsed.limit_class, comment=parsed.comment,
                      material_lot_id=parsed.material_lot.id if parsed.material_lot is not None else None,
                      quantity=parsed.quantity, asset_code=parsed.asset_code, override_reason=parsed.override_reason,
                      occurred_at=parsed.occurred_at, recorded_at=now,
                      recorded_by_id=getattr(user, "id", None), recorded_by=getattr(user, "username", "calculation"),
                      replaces_id=replaces.id if replaces is not None else None)
    sess.add(entry)
    needs_id = (parsed.material_lot is not None or parsed.override_reason or parsed.comment
                or parsed.limit_class in (limits.AMBER, limits.RED) or parsed.spec["type"] in ("equipment",
                                                                                          "equipment_release"))
    if needs_id:  # the records that point at this entry need its id; a plain value waits for the one flush
        sess.flush()
    batch = step.batch
    if parsed.material_lot is not None:
        consume(parsed.material_lot, parsed.quantity or 0)
        sess.add(MaterialUsage(batch_id=batch.id, step_id=step.id, entry_id=entry.id,
                               material_lot_id=parsed.material_lot.id, quantity=parsed.quantity, used_at=now,
                               used_by=entry.recorded_by))
    if parsed.spec["type"] == "equipment" and parsed.spec.get("occupy"):
        from equipment.operations import start_usage

        usage = start_usage(sess, parsed.asset_code, record_type="batch", record_id=str(batch.id), started_at=now)
        sess.add(EquipmentOccupancy(batch_id=batch.id, step_id=step.id, entry_key=parsed.key,
                                    asset_id=parsed.asset.id, asset_code=parsed.asset_code,
                                    usage_id=getattr(usage, "id", None), started_at=now))
    if parsed.spec["type"] == "equipment_release":
        _release_occupancy(sess, batch, parsed.spec["releases"], now)
    if parsed.override_reason:
        raise_exception(sess, batch, "scan_override", source_table="step_entry", source_id=entry.id, step=step,
                        description=f"{parsed.spec['label']}: refused scan accepted by {entry.recorded_by}: "
                                    f"{parsed.refusal} Reason: {parsed.override_reason}")
    if parsed.limit_class in (limits.AMBER, limits.RED):
        deviation = None
        words = "outside the hard limits" if parsed.limit_class == limits.RED else "outside the alert limits"
        text = (f"{parsed.spec['label']} = {parsed.value_text} {parsed.spec.get('unit') or ''} is {words} "
                f"({limits.limits_text(parsed.spec) or 'fail'}).").replace("  ", " ")
        if parsed.limit_class == limits.RED:
            deviation = open_deviation(
                sess, title=f"{batch.lot_number} step {step.position}: {parsed.spec['label']} out of limits",
                description=f"{text} Operator comment: {parsed.comment or '(none)'}", batch=batch, step=step,
                entry=entry, automatic=True)
        raise_exception(sess, batch, "out_of_limit", source_table="step_entry", source_id=entry.id, step=step,
                        description=text, deviation_id=deviation.id if deviation else None)
    if parsed.comment and parsed.limit_class != limits.RED:
        raise_exception(sess, batch, "comment", source_table="step_entry", source_id=entry.id, step=step,
                        description=f"{parsed.spec['label']}: {parsed.comment}")
    return entry


def _release_occupancy(sess: Session, batch: Batch, entry_key: str, at: datetime) -> None:
    from equipment.models import AssetUsage
    from equipment.operations import end_usage

    occupancy = sess.execute(select(EquipmentOccupancy).where(
        EquipmentOccupancy.batch_id == batch.id, EquipmentOccupancy.entry_key == entry_key,
        EquipmentOccupancy.ended_at.is_(None))).scalars().first()
    if occupancy is None:
        return
    usage = sess.get(AssetUsage, occupancy.usage_id) if occupancy.usage_id else None
    if usage is not None and usage.ended_at is None:
        end_usage(sess, usage, ended_at=at)
    occupancy.ended_at = at


def _calculations(batch: Batch, values: dict[str, float | None]) -> dict[str, float | None]:
    return {key: limits.evaluate(spec["expression"], values)
            for key, spec in entry_specs(batch.recipe).items() if spec["type"] == "calculation"}


def _numeric_values(current: dict[str, StepEntry]) -> dict[str, float | None]:
    return {key: entry.value_number for key, entry in current.items()}


def _planned_calculations(sess: Session, batch: Batch, current: dict[str, StepEntry],
                          new_values: dict[str, float | None], inputs: dict[str, EntryInput]
                          ) -> list[ParsedEntry]:
    """The calculations whose value changes with the new values, checked against their limits."""
    values = _numeric_values(current)
    values.update(new_values)
    changed = []
    specs = entry_specs(batch.recipe)
    for key, result in _calculations(batch, values).items():
        old = current.get(key)
        if result is None or (old is not None and old.value_number is not None
                              and abs(old.value_number - result) <= 1e-12 * max(1.0, abs(result))):
            continue
        spec = specs[key]
        raw = inputs.get(key) or EntryInput()
        parsed = ParsedEntry(key=key, spec=spec, value_text=format_number(result), value_number=result,
                             limit_class=limits.classify(result, spec), comment=(raw.comment or "").strip() or None)
        _red_needs_confirmation(parsed, raw)
        changed.append(parsed)
    return changed


def _check_step_open_for(step: BatchStep, user: Any) -> None:
    _require_active(step.batch)
    if step.status not in ("pending", "in_progress"):
        raise Conflict(f"Step {step.position} is {step.status}: a change now is a correction, with a reason.")
    if step.taken_by_id is not None and step.taken_by_id != user.id:
        raise Conflict(f"{step.taken_by} is working on this step; two people cannot work on the same step.")


def record_entries(sess: Session, step: BatchStep, user: Any, inputs: dict[str, EntryInput], *,
                   expected_version: int | None, reason: str | None = None) -> list[StepEntry]:
    """Record the typed and scanned values of one step in one go (blank fields are skipped).

    Everything is checked before anything is written: a refused value leaves the step unchanged.
    """
    batch = step.batch
    _check_version(step, expected_version, "step")
    _check_step_open_for(step, user)
    specs = {e["key"]: e for e in step.spec["entries"]}
    unknown = sorted(set(inputs) - set(specs) - {k for k, v in inputs.items() if v.is_blank})
    if unknown:
        raise ValidationFailed(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an entry of this "
                               "step.", errors={k: ["Not in this step."] for k in unknown})
    current = current_entries(sess, batch)
    parsed_entries: list[ParsedEntry] = []
    errors: dict[str, list[str]] = {}
    messages: list[str] = []
    for key, spec in specs.items():
        raw = inputs.get(key)
        if raw is None or raw.is_blank or spec["type"] == "calculation":
            continue
        if key in current:
            errors[key] = ["Already recorded: use Correct, with a reason."]
            messages.append(f"{spec['label']} is already recorded; a change is a correction with a reason.")
            continue
        try:
            parsed = _parse_entry(sess, batch, key, spec, raw, user, current)
            _red_needs_confirmation(parsed, raw)
        except ValidationFailed as exc:
            errors.update(exc.errors or {key: [exc.message]})
            messages.append(exc.message)
            continue
        parsed_entries.append(parsed)
    if not errors and not parsed_entries:
        raise ValidationFailed("Nothing to save: enter at least one value.")
    calc_changes: list[ParsedEntry] = []
    if not errors:
        try:
            calc_changes = _planned_calculations(sess, batch, current,
                                                 {p.key: p.value_number for p in parsed_entries}, inputs)
        except ValidationFailed as exc:
            errors.update(exc.errors)
            messages.append(exc.message)
    if errors:
        raise ValidationFailed(" ".join(messages), errors=errors)
    if step.taken_by_id is None:
        _take(sess, step, user, reason)
    written = [_store_entry(sess, step, parsed, user) for parsed in parsed_entries]
    calculated = _store_calculations(sess, batch, calc_changes, current, user)
    _refresh_digests(sess, [step, *(_step_for_key(batch, p.key) for p in calc_changes)],
                     live=[*current.values(), *written, *calculated])
    _flush(sess)
    return written


def _step_for_key(batch: Batch, key: str) -> BatchStep:
    step_key = entry_specs(batch.recipe)[key]["step_key"]
    return next(s for s in batch.steps if s.step_key == step_key)


def _store_calculations(sess: Session, batch: Batch, calc_changes: list[ParsedEntry],
                        current: dict[str, StepEntry], user: Any) -> list[StepEntry]:
    stored = []
    for parsed in calc_changes:
        target_step = _step_for_key(batch, parsed.key)
        old = current.get(parsed.key)
        if old is not None:
            _void_for_correction(sess, target_step, old, "recalculated after an input changed")
        stored.append(_store_entry(sess, target_step, parsed, user, replaces=old))
    return stored


def _belongs_to(entry: StepEntry, step: BatchStep) -> bool:
    return entry.step_id == step.id if entry.step_id is not None else entry.step is step


def _refresh_digests(sess: Session, steps: Iterable[BatchStep], live: list[StepEntry] | None = None) -> None:
    """Recompute the entries digest of the steps whose entries changed (before the one flush).

    ``live``: every live entry of the batch as this request knows it (saves loading each step's entries)."""
    with sess.no_autoflush:
        for step in set(steps):
            digest = _digest(step.entries if live is None else [e for e in live if _belongs_to(e, step)])
            if digest != step.entries_digest:
                step.entries_digest = digest


def _void_for_correction(sess: Session, step: BatchStep, entry: StepEntry, reason: str) -> None:
    """The original stays, voided with the reason; signatures on the step are voided too."""
    with audit_reason(sess, reason):
        entry.voided_at = utcnow()
        entry.voided_by = current_actor().username
        entry.void_reason = reason
        if entry.material_lot_id is not None:
            for usage in sess.execute(select(MaterialUsage).where(MaterialUsage.entry_id == entry.id,
                                                                  MaterialUsage.voided_at.is_(None))).scalars():
                usage.voided_at = utcnow()
                usage.voided_by = current_actor().username
                usage.void_reason = reason
                usage.material_lot.quantity_remaining = usage.material_lot.quantity_remaining + usage.quantity
    if signatures_for(sess, step, include_voided=False):
        void_signatures(sess, step, f"Entry corrected: {reason}")
        step.status = "in_progress"
        step.completed_at = None
        step.performed_at = None
        if step.batch.status == "completed":
            step.batch.status = "in_progress"
            step.batch.completed_at = None


def correct_entry(sess: Session, entry: StepEntry, user: Any, new_input: EntryInput, *, reason: str,
                  expected_version: int | None) -> StepEntry:
    """A correction keeps the original (voided, with the reason), voids the step's signatures so it must be
    signed again, and becomes an exception for QA."""
    step = entry.step
    batch = step.batch
    _check_version(step, expected_version, "step")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A correction needs a reason.", errors={"reason": ["Why is the value corrected?"]})
    if entry.is_voided:
        raise Conflict("This value was already corrected; correct the current value instead.")
    if batch.status not in ("in_progress", "completed"):
        raise Conflict(f"Batch {batch.lot_number} is {batch.status.replace('_', ' ')}: no correction is possible.")
    spec = entry_specs(batch.recipe)[entry.entry_key]
    if spec["type"] in ("calculation", "equipment", "equipment_release"):
        raise Conflict(f"{spec['label']} cannot be corrected here: calculations follow their inputs, and an "
                       "equipment scan in error is handled by a deviation.")
    if step.taken_by_id is not None and step.taken_by_id != user.id:
        raise Conflict(f"{step.taken_by} is working on this step; two people cannot work on the same step.")
    current = current_entries(sess, batch)
    current.pop(entry.entry_key, None)
    parsed = _parse_entry(sess, batch, entry.entry_key, spec, new_input, user, current)
    _red_needs_confirmation(parsed, new_input)
    new_lot_id = parsed.material_lot.id if parsed.material_lot is not None else None
    if (parsed.value_text, new_lot_id, parsed.quantity) == (entry.value_text, entry.material_lot_id, entry.quantity):
        raise ValidationFailed("The corrected value is the same as the recorded one.", errors={"value": ["Same."]})
    current[entry.entry_key] = entry
    calc_changes = _planned_calculations(sess, batch, current, {entry.entry_key: parsed.value_number}, {})
    if batch.status == "completed":
        batch.status = "in_progress"
        batch.completed_at = None
    _void_for_correction(sess, step, entry, reason)
    new_entry = _store_entry(sess, step, parsed, user, replaces=entry)
    raise_exception(sess, batch, "correction", source_table="step_entry", source_id=new_entry.id, step=step,
                    description=f"{spec['label']} corrected by {user.username} from {entry.value_text} to "
                                f"{new_entry.value_text}: {reason}")
    _store_calculations(sess, batch, calc_changes, current, user)
    for parsed_calc in calc_changes:
        calc_step = _step_for_key(batch, parsed_calc.key)
        if calc_step.id != step.id and calc_step.status != "pending":
            raise_exception(sess, batch, "correction", source_table="batch_step",
                            source_id=f"{calc_step.id}:{new_entry.id}", step=calc_step,
                            description=f"{parsed_calc.spec['label']} recalculated to {parsed_calc.value_text} "
                                        f"after a correction in step {step.position}.")
    _refresh_digests(sess, [step, *(_step_for_key(batch, p.key) for p in calc_changes)])
    _flush(sess)
    return new_entry


# --- signing --------------------------------------------------------------------------------------

def missing_entries(sess: Session, step: BatchStep, current: dict[str, StepEntry] | None = None) -> list[str]:
    """Labels of the step's required entries not recorded yet (current: the batch's live entries, if known)."""
    current = current_entries(sess, step.batch) if current is None else current
    return [e["label"] for e in step.spec["entries"] if e["required"] and e["key"] not in current]


def sign_step(sess: Session, step: BatchStep, *, meaning: str, username: str, password: str, current_user: Any,
              comment: str | None = None, expected_version: int | None = None) -> BatchStep:
    """Sign a step 'performed' (the operator) or 'verified' (a different person, where the recipe asks)."""
    batch = step.batch
    _require_active(batch)
    _check_version(step, expected_version, "step")
    if meaning == "performed":
        if step.status != "in_progress":
            raise Conflict(f"Step {step.position} is {step.status}: only a step in progress can be signed "
                           "as performed.")
        if step.taken_by_id is not None and step.taken_by_id != current_user.id:
            raise Conflict(f"{step.taken_by} has taken this step; the person who did the work signs it.")
        missing = missing_entries(sess, step)
        if missing:
            raise ValidationFailed("Record every required entry before signing: " + ", ".join(missing) + ".",
                                   errors={"_": missing})
    elif meaning == "verified":
        if not step.requires_verification:
            raise Conflict("This step does not ask for a second-person verification.")
        if step.status != "performed":
            raise Conflict(f"Step {step.position} must be signed as performed before it is verified.")
    else:
        raise ValidationFailed("A step is signed as performed or verified.", errors={"meaning": ["Unknown."]})
    sign_record(sess, step, meaning=meaning, username=username, password=password, current_user=current_user,
                comment=comment)
    now = utcnow()
    if meaning == "performed":
        step.performed_at = now
        step.taken_by_id = None
        step.taken_by = None
        step.taken_since = None
        step.status = "performed" if step.requires_verification else "complete"
    else:
        step.status = "complete"
    if step.status == "complete":
        step.completed_at = now
        if all(s.status == "complete" for s in batch.steps):
            batch.status = "completed"
            batch.completed_at = now
            _end_open_occupancies(sess, batch)
    _flush(sess)
    if step.status == "complete":
        step_completed.send(step, sess=sess)
    return step
