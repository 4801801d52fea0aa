"""The life of a versioned, QA-approved document (release specifications, dosing regimens): draft ->
in review -> approved by e-signature (another QA person than the author) -> superseded by the next
approved version of the same code. Works on any model with code, version, status, created_by,
submitted_at, approved_at, approved_by, superseded_at and label.

Operations flush and never commit.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import audit_reason
from app.db import utcnow
from app.errors import Conflict, ReasonRequired
from app.signatures import sign_record


def _state(record: Any) -> str:
    return record.status.replace("_", " ")


def submit_for_review(sess: Session, record: Any, noun: str = "document") -> Any:
    if record.status != "draft":
        raise Conflict(f"Only a draft can be sent for review; {record.label} is {_state(record)}.")
    record.status = "in_review"
    record.submitted_at = utcnow()
    sess.flush()
    return record


def return_to_draft(sess: Session, record: Any, reason: str, noun: str = "document") -> Any:
    if record.status != "in_review":
        raise Conflict(f"{record.label} is not in review.")
    if not (reason or "").strip():
        raise ReasonRequired(f"Returning a {noun} to draft needs a reason.", errors={"reason": ["Why?"]})
    with audit_reason(sess, reason.strip()):
        record.status = "draft"
        record.submitted_at = None
    sess.flush()
    return record


def approve(sess: Session, record: Any, *, username: str, password: str, current_user: Any,
            comment: str | None = None, noun: str = "document") -> Any:
    """QA approval by e-signature ('approved'); the version of the same code in force before is superseded."""
    if record.status != "in_review":
        raise Conflict(f"Only a {noun} in review can be approved; {record.label} is {_state(record)}.")
    if record.created_by == current_user.username:
        raise Conflict(f"The author of a {noun} version cannot approve it; another QA person must.")
    sign_record(sess, record, meaning="approved", username=username, password=password, current_user=current_user,
                comment=comment)
    now = utcnow()
    model = type(record)
    for previous in sess.execute(select(model).where(
            model.code == record.code, model.status == "approved", model.id != record.id)).scalars():
        previous.status = "superseded"
        previous.superseded_at = now
    record.status = "approved"
    record.approved_at = now
    record.approved_by = current_user.username
    sess.flush()
    return record


def next_version(sess: Session, model: Any, code: str) -> int:
    latest = sess.execute(select(model.version).where(model.code == code)
                          .order_by(model.version.desc()).limit(1)).scalar()
    return (latest or 0) + 1
