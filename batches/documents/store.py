"""The controlled-document store: every version of every printed record is kept with its SHA-256.

``store_document`` adds the next version of (kind, subject); nothing is ever overwritten (the table is
append-only). Callers flush and audit within their own unit of work; the store never commits.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import current_actor
from app.db import advisory_xact_lock, utcnow
from app.errors import NotFound, ReasonRequired, ValidationFailed
from batches.documents.models import DOCUMENT_KINDS, ControlledDocument


def _check_kind(kind: str) -> None:
    if kind not in DOCUMENT_KINDS:
        raise ValidationFailed(f"Unknown document kind {kind!r}.",
                               errors={"kind": [f"Choose one of: {', '.join(DOCUMENT_KINDS)}."]})


def lock_subject(sess: Session, kind: str, subject: Any) -> None:
    """Hold the next version of this document until the transaction ends, so that what a document prints as
    its own version (a certificate's "version n") is the version it is stored as."""
    advisory_xact_lock(sess, f"controlled_document:{kind}:{subject}")


def store_document(sess: Session, kind: str, subject_id: str | int, filename: str, content: bytes,
                   reason: str | None = None) -> ControlledDocument:
    """Keep ``content`` as the next version of the ``kind`` document of ``subject_id``.

    Version 1 needs no reason; every later version needs one (why the document was reissued).
    """
    _check_kind(kind)
    subject = str(subject_id)
    if not content:
        raise ValidationFailed("An empty document cannot be stored.")
    reason = (reason or "").strip() or None
    lock_subject(sess, kind, subject)
    current = sess.execute(select(func.max(ControlledDocument.version)).where(
        ControlledDocument.kind == kind, ControlledDocument.subject == subject)).scalar()
    version = (current or 0) + 1
    if version > 1 and reason is None:
        raise ReasonRequired(f"Version {version} of this document needs a reason for reissuing it.",
                             errors={"reason": ["Say why the document is reissued."]})
    doc = ControlledDocument(kind=kind, subject=subject, version=version, reason=reason, filename=filename,
                             content=bytes(content), sha256=hashlib.sha256(content).hexdigest(),
                             created_at=utcnow(), created_by=current_actor().username)
    sess.add(doc)
    sess.flush()
    return doc


def latest_document(sess: Session, kind: str, subject_id: str | int) -> ControlledDocument | None:
    """The newest version of the ``kind`` document of ``subject_id``, or None when none was stored."""
    return sess.execute(select(ControlledDocument).where(
        ControlledDocument.kind == kind, ControlledDocument.subject == str(subject_id)
    ).order_by(ControlledDocument.version.desc()).limit(1)).scalar()


def document_versions(sess: Session, kind: str, subject_id: str | int) -> list[ControlledDocument]:
    """Every stored version, oldest first."""
    return list(sess.execute(select(ControlledDocument).where(
        ControlledDocument.kind == kind, ControlledDocument.subject == str(subject_id)
    ).order_by(ControlledDocument.version)).scalars())


def get_document(sess: Session, kind: str, subject_id: str | int, version: int | None = None) -> ControlledDocument:
    """One version (the latest when ``version`` is None); NotFound when it does not exist."""
    if version is None:
        doc = latest_document(sess, kind, subject_id)
    else:
        doc = sess.execute(select(ControlledDocument).where(
            ControlledDocument.kind == kind, ControlledDocument.subject == str(subject_id),
            ControlledDocument.version == version)).scalar()
    if doc is None:
        what = f"version {version} of the" if version is not None else "a"
        raise NotFound(f"There is no {what} {kind.replace('_', ' ')} document for {subject_id}.")
    return doc
