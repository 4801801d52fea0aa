"""Notifications: a recall after a conditional release reaches QA's inbox and a real local SMTP server;
with SMTP down the notification is kept and sent later; acknowledgement is audited; the header count."""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from app import db
from app.audit import history_for
from app.db import utcnow
from app.errors import PermissionDenied
from batches.quality import notifications as notes
from batches.quality import operations as ops
from batches.quality import results as res
from batches.quality import review as rev
from tests.batches.execution.conftest import as_user
from tests.batches.quality.conftest import complete_lot_testing
from tests.conftest import PASSWORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping what arrives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture()
def smtp_port():
    return free_port()


def start_smtp(port: int):
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler


@pytest.fixture()
def mail_app(app, smtp_port, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", smtp_port)
    monkeypatch.setitem(app.config, "MAIL_SENDER", "qa-alerts@nkmes.test")
    with app.app_context():
        yield app


def conditional_release_then_positive_sterility(db_session, completed_batch, make_user, people):
    analyst, reviewer = make_user("qc_analyst"), make_user("qc_analyst")
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    complete_lot_testing(db_session, lot, analyst, reviewer, skip=("sterility",))
    qa = people["qa"]
    with as_user(qa):
        rev.conditionally_release_lot(db_session, lot, pending_tests=["sterility"], justification="fresh product",
                                      username=qa.username, password=PASSWORD, current_user=qa)
    with as_user(analyst):
        res.record_result(db_session, lot, res.ResultInput(test_key="sterility", value="growth"))
    return lot


def test_recall_notifies_qa_by_inbox_and_real_smtp(db_session, mail_app, smtp_port, completed_batch, seed_specs,
                                                   make_user, people):
    qa_mail = make_user("qa", username="qa-head")
    qa_mail.email = "qa.head@hospital.test"
    db_session.commit()
    controller, handler = start_smtp(smtp_port)
    try:
        lot = conditional_release_then_positive_sterility(db_session, completed_batch, make_user, people)
        assert lot.status == "on_recall"
        [note] = [n for n in notes.inbox(db_session, qa_mail) if n.subject.startswith("RECALL")]
        assert lot.lot_number in note.subject and note.email_state == "pending"
        assert notes.unread_count(db_session, qa_mail) >= 1
        counts = notes.deliver_pending_mail(db_session, notes.mail_settings(mail_app.config))
        assert counts["sent"] >= 1 and note.email_state == "sent" and note.email_attempts == 1
    finally:
        controller.stop()
    [(rcpt, content)] = [m for m in handler.messages if "qa.head@hospital.test" in m[0]]
    assert f"RECALL: lot {lot.lot_number}" in content and "qa-alerts@nkmes.test" in content
    assert any(n.subject.startswith("RECALL") for n in notes.inbox(db_session, people["qa"]))  # no e-mail address
    assert all(n.email_state == "not_configured" for n in notes.inbox(db_session, people["qa"]))


def test_smtp_down_the_notification_is_kept_and_sent_later(db_session, mail_app, smtp_port, completed_batch,
                                                           seed_specs, make_user, people):
    qa_mail = make_user("qa")
    qa_mail.email = "qa2@hospital.test"
    db_session.commit()
    lot = conditional_release_then_positive_sterility(db_session, completed_batch, make_user, people)
    [note] = [n for n in notes.inbox(db_session, qa_mail) if n.subject.startswith("RECALL")]
    settings = notes.mail_settings(mail_app.config)
    counts = notes.deliver_pending_mail(db_session, settings)  # nothing listens on the port
    assert counts["retry"] >= 1 and note.email_state == "pending" and note.email_attempts == 1
    assert note.email_last_error and note.email_next_attempt_at > utcnow()
    assert notes.deliver_pending_mail(db_session, settings)["sent"] == 0  # not due yet: backoff
    controller, handler = start_smtp(smtp_port)
    try:
        counts = notes.deliver_pending_mail(db_session, settings, now=utcnow() + timedelta(minutes=2))
    finally:
        controller.stop()
    assert note.email_state == "sent" and note.email_attempts == 2 and note.email_last_error is None
    assert any("qa2@hospital.test" in rcpt for rcpt, _ in handler.messages)
    assert lot.status == "on_recall"


def test_gives_up_after_the_maximum_attempts(db_session, app, completed_batch, seed_specs, make_user, people,
                                             monkeypatch, smtp_port):
    user = make_user("qa")
    user.email = "x@hospital.test"
    monkeypatch.setattr(notes, "_configured", lambda: True)
    [note] = notes.notify(db_session, [user], subject="test", body="body")
    settings = notes.MailSettings(server="127.0.0.1", port=smtp_port, max_attempts=2, timeout=2)
    first = notes.deliver_pending_mail(db_session, settings)
    second = notes.deliver_pending_mail(db_session, settings, now=utcnow() + timedelta(hours=2))
    assert (first["retry"], second["failed"]) == (1, 1), (first, second, note.email_attempts)
    assert note.email_state == "failed" and note.email_attempts == 2


def test_inbox_page_header_count_and_audited_acknowledgement(client, login, db_session, make_user):
    user, other = make_user("clinician"), make_user("qa")
    [note] = notes.notify(db_session, [user], subject="OOS: potency, lot X", body="Potency 12 %", link="/inbox")
    db_session.commit()
    login(user)
    page = client.get("/inbox").get_data(as_text=True)
    assert "OOS: potency, lot X" in page and "no e-mail (not configured)" in page
    assert 'class="inbox-link"' in page and '<span class="badge badge-bad">1</span>' in page
    assert client.post(f"/inbox/{note.id}/acknowledge").status_code == 302
    assert client.post(f"/inbox/{note.id}/acknowledge").status_code == 409
    page = client.get("/inbox").get_data(as_text=True)
    assert "acknowledged" in page and '<span class="badge badge-bad">1</span>' not in page
    assert any("acknowledged_at" in e.changes for e in history_for(db.session, "notification", note.id))
    with pytest.raises(PermissionDenied):
        notes.acknowledge(db.session, note.id, other)


def test_oos_before_release_notifies_qa(db_session, completed_batch, seed_specs, make_user, people):
    analyst = make_user("qc_analyst")
    lot = ops.lot_of_batch(db_session, completed_batch("MSNK"))
    with as_user(analyst):
        res.record_result(db_session, lot, res.ResultInput(test_key="potency", value="5"))
    assert any(n.subject.startswith("OOS: Potency") for n in notes.inbox(db_session, people["qa"]))
