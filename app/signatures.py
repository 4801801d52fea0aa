"""Part 11 electronic signatures (11.50, 11.70, 11.200).

A signature is a record of its own, bound to one record by table, id and the SHA-256 of that record's
canonical content, and sealed by a hash over all of its own fields: it cannot be moved or reused, and a
later change to the signed content shows as "record changed after signature".
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, inspect, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.audit import (
    Audited,
    audit_reason,
    canonical_json,
    record_key,
    register_signed_change_check,
    to_jsonable,
)
from app.db import Base, utcnow
from app.errors import Conflict, ReasonRequired, SignatureRefused

MEANINGS = {
    "performed": "Performed by",
    "verified": "Verified by",
    "reviewed": "Reviewed by",
    "approved": "Approved by",
    "released": "Released by",
    "rejected": "Rejected by",
    "accepted": "Accepted by",
    "quarantined": "Quarantined by",
    "closed": "Closed by",
    "aborted": "Aborted by",
    "authored": "Authored by",
    "started": "Started by",
    "submitted": "Sent to QA review by",
}
# Meanings that must come from different people on the same record (the second person checks the first).
TWO_PERSON_MEANINGS = frozenset({"performed", "verified"})

STATUS_VALID = "valid"
STATUS_CHANGED = "record changed after signature"
STATUS_VOIDED = "voided"
STATUS_INVALID = "signature binding broken"


class Signable:
    """Mixin for records that can be e-signed.

    ``__unsigned_fields__`` lists columns that are not part of the signed content (workflow status,
    version counters): changing them neither needs a reason nor breaks a signature.
    """

    __unsigned_fields__: frozenset[str] = frozenset()

    def signed_content(self) -> dict[str, Any]:
        excluded = set(type(self).__unsigned_fields__) | {"voided_at", "voided_by", "void_reason"}
        return {
            attr.key: to_jsonable(getattr(self, attr.key))
            for attr in inspect(self).mapper.column_attrs
            if attr.key not in excluded
        }

    def content_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.signed_content()).encode()).hexdigest()


class Signature(Audited, Base):
    """One e-signature: signer, printed name at signing time, UTC time, meaning, bound content hash."""

    __tablename__ = "signature"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_table: Mapped[str] = mapped_column(String(80), index=True)
    record_id: Mapped[str] = mapped_column(String(80), index=True)
    meaning: Mapped[str] = mapped_column(String(40))
    signer_id: Mapped[int] = mapped_column(Integer, index=True)
    signer_username: Mapped[str] = mapped_column(String(80))
    signer_full_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime]
    content_hash: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    seal: Mapped[str] = mapped_column(String(64), unique=True)
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(Text)

    def compute_seal(self) -> str:
        return hashlib.sha256(canonical_json({
            "record_table": self.record_table, "record_id": self.record_id, "meaning": self.meaning,
            "signer_id": self.signer_id, "signer_username": self.signer_username,
            "signer_full_name": self.signer_full_name, "signed_at": to_jsonable(self.signed_at),
            "content_hash": self.content_hash, "comment": self.comment,
        }).encode()).hexdigest()

    @property
    def meaning_label(self) -> str:
        return MEANINGS.get(self.meaning, self.meaning.title())


@dataclass
class SignatureView:
    """A signature as shown: its manifestation and whether it still holds for the record."""

    signature: Signature
    status: str

    @property
    def valid(self) -> bool:
        return self.status == STATUS_VALID


def _active_signatures(sess: Session, table: str, record_id: str) -> list[Signature]:
    with sess.no_autoflush:
        return list(sess.execute(
            select(Signature).where(Signature.record_table == table, Signature.record_id == record_id,
                                    Signature.voided_at.is_(None)).order_by(Signature.id)
        ).scalars())


def signature_status(record: Signable | None, sig: Signature) -> str:
    if sig.voided_at is not None:
        return STATUS_VOIDED
    if sig.compute_seal() != sig.seal:
        return STATUS_INVALID
    if record is None or record_key(record) != sig.record_id or record.__tablename__ != sig.record_table:
        return STATUS_INVALID
    if record.content_hash() != sig.content_hash:
        return STATUS_CHANGED
    return STATUS_VALID


def signatures_for(sess: Session, record: Signable, include_voided: bool = True) -> list[SignatureView]:
    """Every signature on a record with its current status, oldest first."""
    stmt = select(Signature).where(Signature.record_table == record.__tablename__,
                                   Signature.record_id == record_key(record))
    if not include_voided:
        stmt = stmt.where(Signature.voided_at.is_(None))
    return [SignatureView(s, signature_status(record, s)) for s in sess.execute(stmt.order_by(Signature.id)).scalars()]


def sign_record(sess: Session, record: Signable, *, meaning: str, username: str, password: str,
                current_user: Any, comment: str | None = None) -> Signature:
    """Apply an e-signature after checking both credential components again, now.

    A wrong password is refused, counted towards lockout and audited (and that count is committed even
    though the signing is refused).
    """
    from app.users import authenticate

    if meaning not in MEANINGS:
        raise SignatureRefused(f"Unknown signature meaning {meaning!r}.")
    if (username or "").strip().lower() != current_user.username:
        raise SignatureRefused("Sign with your own user ID: the user ID must be the one you are logged in as.",
                               errors={"username": ["Must be your own user ID."]})
    sess.flush()
    table, rid = record.__tablename__, record_key(record)
    authenticate(sess, username, password, context="e-signature")
    existing = _active_signatures(sess, table, rid)
    for sig in existing:
        if sig.signer_id != current_user.id:
            continue
        if sig.meaning == meaning:
            raise SignatureRefused(f"You have already signed this record as '{sig.meaning_label}'.")
        if {sig.meaning, meaning} <= TWO_PERSON_MEANINGS:
            raise SignatureRefused(
                f"You signed this record as '{sig.meaning_label}'; a different person must sign as "
                f"'{MEANINGS[meaning]}'.")
    sig = Signature(record_table=table, record_id=rid, meaning=meaning, signer_id=current_user.id,
                    signer_username=current_user.username, signer_full_name=current_user.full_name,
                    signed_at=utcnow(), content_hash=record.content_hash(), comment=(comment or None))
    sig.seal = sig.compute_seal()
    sess.add(sig)
    sess.flush()
    return sig


def void_signatures(sess: Session, record: Signable, reason: str) -> list[Signature]:
    """Void the record's active signatures (a correction needs fresh ones); the signatures stay."""
    if not (reason or "").strip():
        raise ReasonRequired("Voiding signatures needs a reason.", errors={"reason": ["Give the reason."]})
    sigs = _active_signatures(sess, record.__tablename__, record_key(record))
    with audit_reason(sess, reason):
        for sig in sigs:
            sig.voided_at = utcnow()
            sig.void_reason = reason
    return sigs


def _signed_content_changed(sess: Session, obj: Any, changed_keys: set[str]) -> bool:
    if isinstance(obj, Signature):
        allowed = {"voided_at", "void_reason"}
        if changed_keys - allowed and inspect(obj).persistent:
            raise Conflict("A signature cannot be altered, moved or reused; it can only be voided with a reason.")
        return False
    if not isinstance(obj, Signable) or not inspect(obj).persistent:
        return False
    relevant = changed_keys - set(type(obj).__unsigned_fields__) - {"voided_at", "voided_by", "void_reason"}
    if not relevant and obj not in sess.deleted:
        return False
    return bool(_active_signatures(sess, obj.__tablename__, record_key(obj)))


register_signed_change_check(_signed_content_changed)
