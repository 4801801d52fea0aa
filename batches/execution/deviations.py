"""Deviations: opened automatically (a hard-limit breach) or by hand, classified, assessed for impact
and closed by a QA e-signature. An open deviation stays attached to its batch."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import advisory_xact_lock, utcnow
from app.errors import Conflict, NotFound, ValidationFailed
from app.signatures import sign_record
from batches.execution.exceptions import raise_exception
from batches.execution.models import DEVIATION_CLASSES, Batch, BatchStep, Deviation, StepEntry


def get_deviation(sess: Session, deviation_id: int) -> Deviation:
    deviation = sess.get(Deviation, deviation_id)
    if deviation is None:
        raise NotFound(f"Deviation {deviation_id} does not exist.")
    return deviation


def list_deviations(sess: Session, *, status: str | None = None, batch_id: int | None = None) -> list[Deviation]:
    stmt = select(Deviation).order_by(Deviation.id.desc())
    if status:
        stmt = stmt.where(Deviation.status == status)
    if batch_id:
        stmt = stmt.where(Deviation.batch_id == batch_id)
    return list(sess.execute(stmt).scalars())


def open_deviations_of(sess: Session, batch: Batch) -> list[Deviation]:
    return list_deviations(sess, status="open", batch_id=batch.id)


def _next_number(sess: Session) -> str:
    advisory_xact_lock(sess, "deviation_number")
    year = utcnow().year
    prefix = f"DEV-{year}-"
    count = sess.execute(select(func.count(Deviation.id)).where(Deviation.number.like(prefix + "%"))).scalar_one()
    return f"{prefix}{count + 1:04d}"


def open_deviation(sess: Session, *, title: str, description: str, batch: Batch | None = None,
                   step: BatchStep | None = None, entry: StepEntry | None = None, automatic: bool = False,
                   classification: str | None = None) -> Deviation:
    """Open a deviation; by hand it needs a title and a description."""
    title, description = (title or "").strip(), (description or "").strip()
    errors = {}
    if not title:
        errors["title"] = ["Say in a few words what happened."]
    if not description:
        errors["description"] = ["Describe what happened, when and what was done."]
    if classification and classification not in DEVIATION_CLASSES:
        errors["classification"] = [f"One of {', '.join(DEVIATION_CLASSES)}."]
    if errors:
        raise ValidationFailed("Please complete the deviation.", errors=errors)
    deviation = Deviation(number=_next_number(sess), batch_id=batch.id if batch else None,
                          step_id=step.id if step else None, entry_id=entry.id if entry else None,
                          title=title[:200], description=description, classification=classification or None,
                          automatic=automatic, status="open", opened_at=utcnow(),
                          opened_by=current_actor().username)
    sess.add(deviation)
    sess.flush()
    return deviation


def open_deviation_by_hand(sess: Session, *, title: str, description: str, batch: Batch | None = None) -> Deviation:
    """A deviation someone reports; one against a batch is also an exception of that batch for QA's review."""
    deviation = open_deviation(sess, title=title, description=description, batch=batch)
    if batch is not None:
        raise_exception(sess, batch, "comment", source_table="deviation", source_id=deviation.id,
                        description=f"Deviation {deviation.number} opened by hand: {deviation.title}")
    return deviation


def assess_deviation(sess: Session, deviation: Deviation, *, classification: str | None,
                     impact_assessment: str | None, reason: str | None = None) -> Deviation:
    """Record QA's classification and impact assessment on an open deviation."""
    if deviation.status != "open":
        raise Conflict(f"{deviation.number} is closed and can no longer change.")
    if classification not in DEVIATION_CLASSES:
        raise ValidationFailed("Choose the classification.", errors={"classification": [
            f"One of {', '.join(DEVIATION_CLASSES)}."]})
    impact = (impact_assessment or "").strip()
    if not impact:
        raise ValidationFailed("Write the impact assessment.", errors={"impact_assessment": [
            "Assess the impact on the product, the batch and other batches."]})
    with audit_reason(sess, reason or "assessment"):
        deviation.classification = classification
        deviation.impact_assessment = impact
    return deviation


def close_deviation(sess: Session, deviation: Deviation, *, username: str, password: str, current_user: Any,
                    comment: str | None = None) -> Deviation:
    """QA closes an assessed deviation with an e-signature bound to its content."""
    if deviation.status != "open":
        raise Conflict(f"{deviation.number} is already closed.")
    if not deviation.classification or not deviation.impact_assessment:
        raise ValidationFailed("Classify the deviation and write its impact assessment before closing it.",
                               errors={"classification": ["Required before closure."]})
    sign_record(sess, deviation, meaning="closed", username=username, password=password,
                current_user=current_user, comment=comment)
    deviation.status = "closed"
    deviation.closed_at = utcnow()
    sess.flush()
    return deviation
