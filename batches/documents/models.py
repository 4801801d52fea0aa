"""Models of batches.documents: controlled documents (every version of every printed record, with its
SHA-256) and the log of every label printed. Both tables are append-only: database triggers refuse
UPDATE and DELETE, so a stored version can only be superseded by a newer one, never changed."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.audit import Audited
from app.db import Base

DOCUMENT_KINDS = ("batch_record", "coa", "label")
LABEL_KINDS = ("bag", "cbu", "sample")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ControlledDocument(Audited, Base):
    """One version of one controlled document (an executed batch record, a certificate of analysis)."""

    __tablename__ = "controlled_document"
    __allow_delete__ = False
    __audit_redact__ = frozenset({"content"})  # the trail keeps the SHA-256, not the bytes
    __table_args__ = (
        UniqueConstraint("kind", "subject", "version"),
        CheckConstraint(_in("kind", DOCUMENT_KINDS), name="kind_known"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(sha256) = 64", name="sha256_length"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))


class LabelPrint(Audited, Base):
    """One printing of one label: what, which identifier, who, when, page size, and why for a reprint."""

    __tablename__ = "label_print"
    __allow_delete__ = False
    __table_args__ = (
        CheckConstraint(_in("label_kind", LABEL_KINDS), name="label_kind_known"),
        CheckConstraint("reprint_reason IS NOT NULL OR NOT reprint", name="reprint_has_reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[str] = mapped_column(String(80), index=True)
    page_size: Mapped[str] = mapped_column(String(20))
    reprint: Mapped[bool] = mapped_column(Boolean)
    reprint_reason: Mapped[str | None] = mapped_column(Text)
    printed_at: Mapped[datetime]
    printed_by: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
