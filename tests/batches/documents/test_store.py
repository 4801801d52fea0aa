"""The controlled-document store: versions, SHA-256, reasons, and append-only rows in the database."""
from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from app.audit import AuditEntry
from app.errors import NotFound, ReasonRequired, ValidationFailed
from batches.documents.models import LabelPrint
from batches.documents.store import document_versions, get_document, latest_document, store_document
from app.db import utcnow


def test_versions_follow_each_other_with_their_hash(db_session):
    first = store_document(db_session, "coa", "LOT-1", "coa-LOT-1-v1.pdf", b"%PDF one")
    assert (first.version, first.reason) == (1, None)
    assert first.sha256 == hashlib.sha256(b"%PDF one").hexdigest()
    with pytest.raises(ReasonRequired):
        store_document(db_session, "coa", "LOT-1", "coa-LOT-1-v2.pdf", b"%PDF two")
    second = store_document(db_session, "coa", "LOT-1", "coa-LOT-1-v2.pdf", b"%PDF two", reason="Sterility result")
    assert second.version == 2
    other = store_document(db_session, "batch_record", "LOT-1", "ebr.pdf", b"%PDF ebr")
    assert other.version == 1  # each kind counts its own versions
    assert latest_document(db_session, "coa", "LOT-1").content == b"%PDF two"
    assert [d.version for d in document_versions(db_session, "coa", "LOT-1")] == [1, 2]
    assert get_document(db_session, "coa", "LOT-1", 1).content == b"%PDF one"
    with pytest.raises(NotFound):
        get_document(db_session, "coa", "LOT-1", 3)
    assert latest_document(db_session, "coa", "LOT-2") is None
    db_session.commit()  # the trail is written when the unit of work ends
    entries = db_session.execute(select(AuditEntry).where(AuditEntry.table_name == "controlled_document")).scalars().all()
    assert len(entries) == 3
    assert all("%PDF" not in e.changes for e in entries)
    assert first.sha256 in entries[0].changes


def test_bad_input_is_refused(db_session):
    with pytest.raises(ValidationFailed):
        store_document(db_session, "memo", "LOT-1", "x.pdf", b"%PDF")
    with pytest.raises(ValidationFailed):
        store_document(db_session, "coa", "LOT-1", "x.pdf", b"")


@pytest.mark.parametrize("statement", [
    "UPDATE controlled_document SET content = :b WHERE id = :i",
    "DELETE FROM controlled_document WHERE id = :i",
])
def test_stored_documents_cannot_be_changed_or_removed(db_session, statement):
    doc = store_document(db_session, "coa", "LOT-9", "coa.pdf", b"%PDF original")
    db_session.commit()
    with pytest.raises(DatabaseError, match="append-only"):
        with db_session.begin_nested():
            db_session.execute(text(statement), {"i": doc.id, "b": b"forged"})
    db_session.expire_all()
    assert get_document(db_session, "coa", "LOT-9").content == b"%PDF original"


def test_label_prints_cannot_be_changed_or_removed(db_session):
    row = LabelPrint(label_kind="bag", subject_id=1, identifier="X", page_size="4x4", reprint=False,
                     reprint_reason=None, printed_at=utcnow(), printed_by="test", sha256="0" * 64)
    db_session.add(row)
    db_session.flush()
    for statement in ("UPDATE label_print SET printed_by = 'someone' WHERE id = :i",
                      "DELETE FROM label_print WHERE id = :i"):
        with pytest.raises(DatabaseError, match="append-only"):
            with db_session.begin_nested():
                db_session.execute(text(statement), {"i": row.id})
