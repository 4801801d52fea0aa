"""Exceptions for QA's review by exception: collected as they happen, each linked to its source.

Alarms and telemetry gaps of equipment the batch occupied are attached by query (when the batch page
or the review is built) and by the equipment package's alarm_raised and gap_opened signals.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, object_session

from app import db
from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, ValidationFailed
from app.web import format_number
from batches.execution.models import Batch, BatchException, BatchStep, EquipmentOccupancy, ExceptionReview


def raise_exception(sess: Session, batch: Batch | int, kind: str, *, source_table: str, source_id: Any,
                    description: str, step: BatchStep | None = None, occurred_at: datetime | None = None,
                    deviation_id: int | None = None) -> BatchException:
    """Record an exception once per source (raising it again returns the existing one)."""
    batch_id = batch if isinstance(batch, int) else batch.id
    existing = sess.execute(select(BatchException).where(
        BatchException.batch_id == batch_id, BatchException.kind == kind,
        BatchException.source_table == source_table, BatchException.source_id == str(source_id))).scalar_one_or_none()
    if existing is not None:
        return existing
    exc = BatchException(batch_id=batch_id, step_id=step.id if step else None, kind=kind, source_table=source_table,
                         source_id=str(source_id), description=description, occurred_at=occurred_at or utcnow(),
                         raised_by=current_actor().username, deviation_id=deviation_id)
    sess.add(exc)
    sess.flush()
    return exc


def exceptions_of(sess: Session, batch: Batch, *, open_only: bool = False) -> list[BatchException]:
    stmt = select(BatchException).where(BatchException.batch_id == batch.id)
    if open_only:
        stmt = stmt.where(BatchException.reviewed_at.is_(None))
    return list(sess.execute(stmt.order_by(BatchException.occurred_at, BatchException.id)).scalars())


def review_exceptions(sess: Session, batch: Batch, exception_ids: Iterable[int], comment: str, *, username: str,
                      password: str, current_user: Any) -> ExceptionReview:
    """QA's review decision over one or more open exceptions of the batch, e-signed "reviewed" by one
    signature whose signed content lists every exception it covers."""
    from app.signatures import sign_record

    ids = sorted({int(i) for i in exception_ids})
    if not ids:
        raise ValidationFailed("Choose the exceptions this review decision covers.",
                               errors={"exception_ids": ["Tick at least one exception."]})
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Write the review decision.", errors={"review_comment": ["Required."]})
    chosen = list(sess.execute(select(BatchException).where(BatchException.id.in_(ids))
                               .order_by(BatchException.id)).scalars())
    if len(chosen) != len(ids) or any(e.batch_id != batch.id for e in chosen):
        raise ValidationFailed("An exception you chose is not part of this batch. Reload the page.",
                               errors={"exception_ids": ["Not in this batch."]})
    done = [e for e in chosen if e.reviewed_at is not None]
    if done:
        raise Conflict(f"Exception #{done[0].id} was already reviewed by {done[0].reviewed_by}. Reload the page.")
    now = utcnow()
    review = ExceptionReview(batch_id=batch.id, covered="\n".join(e.review_line() for e in chosen), comment=comment,
                             reviewed_at=now, reviewed_by=current_user.username)
    sess.add(review)
    sess.flush()
    sign_record(sess, review, meaning="reviewed", username=username, password=password, current_user=current_user,
                comment=comment)
    with audit_reason(sess, "exception reviewed"):
        for exc in chosen:
            exc.reviewed_at = now
            exc.reviewed_by = current_user.username
            exc.review_comment = comment
            exc.review_id = review.id
    sess.flush()
    return review


def reviews_of(sess: Session, batch: Batch) -> list[ExceptionReview]:
    return list(sess.execute(select(ExceptionReview).where(ExceptionReview.batch_id == batch.id)
                             .order_by(ExceptionReview.id)).scalars())


def occupancies_of(sess: Session, batch: Batch) -> list[EquipmentOccupancy]:
    return list(sess.execute(select(EquipmentOccupancy).where(EquipmentOccupancy.batch_id == batch.id)
                             .order_by(EquipmentOccupancy.started_at)).scalars())


def _alarm_text(alarm: Any, occupancy: EquipmentOccupancy) -> str:
    return (f"Alarm on {occupancy.asset_code} while the batch was in it: {alarm.parameter} "
            f"{alarm.limit_kind} limit {format_number(alarm.limit_value)} {alarm.unit}, "
            f"peak {format_number(alarm.peak_value)}.")


def _gap_text(gap: Any, occupancy: EquipmentOccupancy) -> str:
    cause = getattr(gap, "cause_label", gap.cause)
    return f"Telemetry gap on {occupancy.asset_code} while the batch was in it: {cause}."


def sync_equipment_exceptions(sess: Session, batch: Batch) -> None:
    """Attach every alarm and telemetry gap that overlaps the batch's occupancy of its equipment."""
    from equipment.operations import alarms_in_window, gaps_in_window

    for occupancy in occupancies_of(sess, batch):
        end = occupancy.ended_at
        for alarm in alarms_in_window(sess, occupancy.asset_id, occupancy.started_at, end):
            raise_exception(sess, occupancy.batch_id, "alarm", source_table="equipment_alarm", source_id=alarm.id,
                            description=_alarm_text(alarm, occupancy), occurred_at=alarm.raised_at)
        for gap in gaps_in_window(sess, occupancy.asset_id, occupancy.started_at, end):
            raise_exception(sess, occupancy.batch_id, "telemetry_gap", source_table="telemetry_gap", source_id=gap.id,
                            description=_gap_text(gap, occupancy), occurred_at=gap.started_at)


def _open_occupancies(sess: Session, asset_id: int, at: datetime) -> list[EquipmentOccupancy]:
    return list(sess.execute(select(EquipmentOccupancy).where(
        EquipmentOccupancy.asset_id == asset_id, EquipmentOccupancy.started_at <= at,
        or_(EquipmentOccupancy.ended_at.is_(None), EquipmentOccupancy.ended_at >= at))).scalars())


def on_alarm_raised(asset: Any, alarm: Any = None, **_: Any) -> None:
    """Signal receiver: an alarm on an asset a batch occupies becomes an exception of that batch."""
    sess = object_session(alarm) or db.session
    at = alarm.excursion_started_at or alarm.raised_at
    for occupancy in _open_occupancies(sess, asset.id, at):
        raise_exception(sess, occupancy.batch_id, "alarm", source_table="equipment_alarm", source_id=alarm.id,
                        description=_alarm_text(alarm, occupancy), occurred_at=alarm.raised_at)


def on_gap_opened(asset: Any, gap: Any = None, **_: Any) -> None:
    """Signal receiver: a telemetry gap on an occupied asset becomes an exception of the batch."""
    sess = object_session(gap) or db.session
    for occupancy in _open_occupancies(sess, asset.id, gap.started_at):
        raise_exception(sess, occupancy.batch_id, "telemetry_gap", source_table="telemetry_gap", source_id=gap.id,
                        description=_gap_text(gap, occupancy), occurred_at=gap.started_at)


def connect_equipment_signals() -> None:
    from equipment import signals

    signals.alarm_raised.connect(on_alarm_raised)
    if hasattr(signals, "gap_opened"):
        signals.gap_opened.connect(on_gap_opened)
