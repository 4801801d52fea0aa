"""`flask quality deliver-mail`: send the pending notification e-mails once (the mail service loops)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

quality_cli = AppGroup("quality", help="Lots, QC and notifications.")


@quality_cli.command("deliver-mail")
def deliver_mail() -> None:
    """Send the notification e-mails that are due; print how many were sent, retried and failed."""
    from app import db
    from app.audit import Actor, acting_as
    from batches.quality.notifications import deliver_pending_mail, mail_settings

    settings = mail_settings(current_app.config)
    if settings is None:
        raise click.ClickException("MAIL_SERVER is not configured.")
    with acting_as(Actor(None, "mail-cli")):
        counts = deliver_pending_mail(db.session, settings)
        db.session.commit()
    click.echo(f"sent {counts['sent']}, to retry {counts['retry']}, failed {counts['failed']}")
