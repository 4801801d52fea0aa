"""Electronic signatures: both components every time, manifestation, binding, two-person rule."""
from __future__ import annotations

import pytest
from flask import render_template_string
from sqlalchemy import select, text

from app.audit import AuditEntry, audit_reason
from app.errors import Conflict, ReasonRequired, SignatureRefused
from app.signatures import (
    STATUS_CHANGED,
    STATUS_INVALID,
    STATUS_VALID,
    STATUS_VOIDED,
    Signature,
    sign_record,
    signatures_for,
    void_signatures,
)
from app.users import User
from tests.app.sample import SampleRecord
from tests.conftest import PASSWORD


@pytest.fixture()
def record(db_session):
    SampleRecord.__table__.create(db_session.connection())
    rec = SampleRecord(name="day 3 count", value="1.2e9")
    db_session.add(rec)
    db_session.commit()
    return rec


def sign(db_session, rec, user, meaning="performed", password=PASSWORD, username=None):
    return sign_record(db_session, rec, meaning=meaning, username=username or user.username, password=password,
                       current_user=user)


def test_signature_records_name_time_meaning_and_content_hash(db_session, make_user, record):
    user = make_user("operator", full_name="Olivia Operator")
    sig = sign(db_session, record, user)
    db_session.commit()
    assert sig.signer_full_name == "Olivia Operator"
    assert sig.meaning == "performed" and sig.signed_at.tzinfo is not None
    assert sig.content_hash == record.content_hash()
    [view] = signatures_for(db_session, record)
    assert view.status == STATUS_VALID


def test_wrong_password_is_refused_counted_and_audited(db_session, make_user, record):
    user = make_user("operator")
    with pytest.raises(SignatureRefused, match="not correct"):
        sign(db_session, record, user, password="not-the-password")
    assert db_session.execute(select(Signature)).first() is None
    assert db_session.get(User, user.id).failed_attempts == 1
    failures = db_session.execute(select(AuditEntry).where(
        AuditEntry.table_name == "user_account", AuditEntry.record_id == str(user.id),
        AuditEntry.reason.like("failed e-signature%"))).scalars().all()
    assert len(failures) == 1


def test_signing_as_someone_else_is_refused(db_session, make_user, record):
    user = make_user("operator")
    other = make_user("operator")
    with pytest.raises(SignatureRefused, match="own user ID"):
        sign(db_session, record, user, username=other.username)


def test_five_wrong_signing_passwords_lock_the_account(db_session, make_user, record):
    user = make_user("operator")
    for _ in range(5):
        with pytest.raises(SignatureRefused):
            sign(db_session, record, user, password="wrong-wrong-wrong")
    assert db_session.get(User, user.id).is_locked
    with pytest.raises(SignatureRefused, match="locked"):
        sign(db_session, record, user)


def test_same_person_cannot_perform_and_verify(db_session, make_user, record):
    operator = make_user("operator")
    sign(db_session, record, operator, "performed")
    with pytest.raises(SignatureRefused, match="different person"):
        sign(db_session, record, operator, "verified")
    with pytest.raises(SignatureRefused, match="already signed"):
        sign(db_session, record, operator, "performed")
    verifier = make_user("supervisor")
    sign(db_session, record, verifier, "verified")
    assert [v.signature.meaning for v in signatures_for(db_session, record)] == ["performed", "verified"]


def test_change_after_signing_needs_a_reason_and_shows_the_signature_as_broken(db_session, make_user, record):
    user = make_user("operator")
    sign(db_session, record, user)
    db_session.commit()
    record.value = "1.3e9"
    with pytest.raises(ReasonRequired):
        db_session.flush()
    db_session.rollback()
    record = db_session.get(SampleRecord, record.id)
    with audit_reason(db_session, "transcription error: count was 1.3e9"):
        record.value = "1.3e9"
    db_session.commit()
    [view] = signatures_for(db_session, record)
    assert view.status == STATUS_CHANGED


def test_workflow_fields_do_not_break_a_signature(db_session, make_user, record):
    user = make_user("operator")
    sign(db_session, record, user)
    record.status = "done"
    db_session.commit()
    assert signatures_for(db_session, record)[0].status == STATUS_VALID


def test_signature_cannot_be_moved_or_edited(db_session, make_user, record):
    user = make_user("operator")
    sig = sign(db_session, record, user)
    db_session.commit()
    sig.record_id = "999"
    with pytest.raises(Conflict, match="cannot be altered"):
        db_session.flush()
    db_session.rollback()


def test_signature_moved_behind_the_application_shows_a_broken_binding(db_session, make_user, record):
    user = make_user("operator")
    sig = sign(db_session, record, user)
    other = SampleRecord(name="other", value="x")
    db_session.add(other)
    db_session.commit()
    db_session.execute(text("UPDATE signature SET record_id = :r WHERE id = :i"), {"r": str(other.id), "i": sig.id})
    db_session.commit()
    db_session.expire_all()
    [view] = signatures_for(db_session, other)
    assert view.status == STATUS_INVALID
    assert signatures_for(db_session, record) == []


def test_voided_signatures_stay_visible_as_voided(db_session, make_user, record):
    user = make_user("operator")
    sign(db_session, record, user)
    with pytest.raises(ReasonRequired):
        void_signatures(db_session, record, "")
    void_signatures(db_session, record, "correction of the count")
    db_session.commit()
    [view] = signatures_for(db_session, record)
    assert view.status == STATUS_VOIDED
    sign(db_session, record, user)  # a fresh signature after the correction is allowed


def test_manifestation_shows_name_site_time_and_meaning(app, db_session, make_user, record):
    user = make_user("operator", full_name="Olivia Operator")
    sig = sign(db_session, record, user)
    db_session.commit()
    app.config["SITE_TIMEZONE"] = "America/New_York"
    try:
        with app.test_request_context():
            html = render_template_string(
                '{% from "app/macros.html" import signature_block %}{{ signature_block(signatures_for(rec)) }}',
                rec=record)
            with audit_reason(db_session, "test change"):
                record.value = "changed"
            changed_html = render_template_string(
                '{% from "app/macros.html" import signature_block %}{{ signature_block(signatures_for(rec)) }}',
                rec=record)
    finally:
        app.config["SITE_TIMEZONE"] = "UTC"
    from zoneinfo import ZoneInfo

    local = sig.signed_at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S %Z")
    assert "Olivia Operator" in html and "Performed by" in html and local in html
    assert "record changed after signature" not in html
    assert "record changed after signature" in changed_html
