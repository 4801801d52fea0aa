"""Notifications: an in-app inbox per user and e-mail over SMTP when MAIL_SERVER is configured.

A notification is stored first, in the same unit of work as its cause, so it is never lost when the mail
server is down; the mail goes out later (``deliver_pending_mail``, run by the mail service every
MAIL_RETRY_SECONDS and by `flask quality deliver-mail`) with retries and backoff, and its delivery state
(not configured, pending, sent, failed) is kept on the notification and shown in the inbox.
"""
from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Iterable

from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.audit import Audited, audit_reason
from app.db import Base, utcnow
from app.errors import Conflict, NotFound, PermissionDenied

MAIL_STATES = ("not_configured", "pending", "sent", "failed")


class Notification(Audited, Base):
    """One message to one user: read in the inbox, acknowledged (audited), and e-mailed when configured."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    username: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    email_to: Mapped[str | None] = mapped_column(String(200))
    email_state: Mapped[str] = mapped_column(String(20), default="not_configured")
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_last_error: Mapped[str | None] = mapped_column(Text)
    email_next_attempt_at: Mapped[datetime | None]
    email_sent_at: Mapped[datetime | None]

    @property
    def email_state_label(self) -> str:
        return {"not_configured": "no e-mail (not configured)", "pending": "e-mail pending",
                "sent": "e-mail sent", "failed": "e-mail failed"}[self.email_state]


@dataclass(frozen=True)
class MailSettings:
    server: str
    port: int = 25
    sender: str = "nkmes@localhost"
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    max_attempts: int = 10
    timeout: float = 10.0


def mail_settings(config: Any | None = None) -> MailSettings | None:
    """MAIL_SERVER, MAIL_PORT, MAIL_SENDER, MAIL_USERNAME, MAIL_PASSWORD, MAIL_USE_TLS, MAIL_MAX_ATTEMPTS from
    the app's config, else the environment; None when no server is configured."""
    def get(name: str, default: Any = None) -> Any:
        if config is not None and config.get(name) not in (None, ""):
            return config.get(name)
        return os.environ.get(name) or default

    server = get("MAIL_SERVER")
    if not server:
        return None
    return MailSettings(server=str(server), port=int(get("MAIL_PORT", 25)),
                        sender=str(get("MAIL_SENDER", "nkmes@localhost")), username=get("MAIL_USERNAME"),
                        password=get("MAIL_PASSWORD"),
                        use_tls=str(get("MAIL_USE_TLS", "")).lower() in ("1", "true", "yes"),
                        max_attempts=int(get("MAIL_MAX_ATTEMPTS", 10)))


def _configured() -> bool:
    from flask import current_app, has_app_context

    return mail_settings(current_app.config if has_app_context() else None) is not None


def notify(sess: Session, users: Iterable[Any], *, subject: str, body: str, link: str | None = None
           ) -> list[Notification]:
    """Store a notification for each user (once per user); e-mail is pending when configured."""
    configured = _configured()
    now = utcnow()
    made, seen = [], set()
    for user in users:
        if user.id in seen:
            continue
        seen.add(user.id)
        wants_mail = configured and bool(user.email)
        note = Notification(user_id=user.id, username=user.username, subject=subject[:200], body=body, link=link,
                            created_at=now, email_to=user.email if wants_mail else None,
                            email_state="pending" if wants_mail else "not_configured", email_attempts=0,
                            email_next_attempt_at=now if wants_mail else None)
        sess.add(note)
        made.append(note)
    sess.flush()
    return made


def users_with_role(sess: Session, role: str) -> list[Any]:
    from app.users import User, UserRole

    return list(sess.execute(select(User).join(UserRole).where(UserRole.role == role, User.active.is_(True))
                             .order_by(User.id)).scalars())


def inbox(sess: Session, user: Any, limit: int = 200) -> list[Notification]:
    return list(sess.execute(select(Notification).where(Notification.user_id == user.id)
                             .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)).scalars())


def unread_count(sess: Session, user: Any) -> int:
    return sess.execute(select(func.count(Notification.id)).where(
        Notification.user_id == user.id, Notification.acknowledged_at.is_(None))).scalar_one()


def acknowledge(sess: Session, notification_id: int, user: Any) -> Notification:
    """The user confirms having read it (recorded in the audit trail); only one's own."""
    note = sess.get(Notification, notification_id)
    if note is None:
        raise NotFound(f"Notification {notification_id} does not exist.")
    if note.user_id != user.id:
        raise PermissionDenied("This notification is addressed to someone else.")
    if note.acknowledged_at is not None:
        raise Conflict("This notification was already acknowledged.")
    with audit_reason(sess, "notification acknowledged"):
        note.acknowledged_at = utcnow()
    sess.flush()
    return note


def _send(settings: MailSettings, note: Notification) -> None:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = note.email_to
    message["Subject"] = note.subject
    message.set_content(note.body + (f"\n\n{note.link}" if note.link else ""))
    with smtplib.SMTP(settings.server, settings.port, timeout=settings.timeout) as smtp:
        if settings.use_tls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)


def deliver_pending_mail(sess: Session, settings: MailSettings | None, now: datetime | None = None) -> dict[str, int]:
    """Send the e-mails that are due; a failure is retried later with backoff (1, 2, 4 ... at most 60 min)
    until MAIL_MAX_ATTEMPTS, then marked failed. The notification itself stays in the inbox either way."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if settings is None:
        return counts
    now = now or utcnow()
    due = list(sess.execute(select(Notification).where(
        Notification.email_state == "pending", Notification.email_next_attempt_at <= now)
        .order_by(Notification.id)).scalars())
    for note in due:
        note.email_attempts = (note.email_attempts or 0) + 1
        try:
            _send(settings, note)
        except (OSError, smtplib.SMTPException) as exc:
            note.email_last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if note.email_attempts >= settings.max_attempts:
                note.email_state = "failed"
                counts["failed"] += 1
            else:
                note.email_next_attempt_at = now + timedelta(minutes=min(2 ** (note.email_attempts - 1), 60))
                counts["retry"] += 1
        else:
            note.email_state = "sent"
            note.email_sent_at = utcnow()
            note.email_last_error = None
            counts["sent"] += 1
        sess.flush()
    return counts


def run_mail_service(app: Any) -> None:
    """Background service: deliver pending mail every MAIL_RETRY_SECONDS (default 30) until stopped."""
    from app.shell import run_periodically

    def deliver(sess: Any) -> None:
        settings = mail_settings(app.config)
        if settings is not None:
            deliver_pending_mail(sess, settings)

    interval = float(app.config.get("MAIL_RETRY_SECONDS") or os.environ.get("MAIL_RETRY_SECONDS") or 30)
    run_periodically(app, "mail-service", interval, deliver)
