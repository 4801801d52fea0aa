"""Command-line tools: migrations, the first administrator, demo users, audit chain verification."""
from __future__ import annotations

import functools
import secrets
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app import db
from app.audit import Actor, acting_as, reset_actor, set_actor, verify_chain
from app.permissions import ROLES
from app.users import User, create_user

ROOT = Path(__file__).resolve().parent.parent

db_cli = AppGroup("db", help="Database schema (Alembic migrations are the only way a schema is made).")
audit_cli = AppGroup("audit", help="The Part 11 audit trail.")
services_cli = AppGroup("services", help="Background services that run beside the web server.")


@services_cli.command("list")
def services_list() -> None:
    """Names of the registered services, one per line, in start order."""
    from app.shell import SERVICES

    for name in SERVICES:
        click.echo(name)


@services_cli.command("run")
@click.argument("name")
def services_run(name: str) -> None:
    """Run one service in the foreground until it is stopped."""
    from app.shell import SERVICES

    if name not in SERVICES:
        raise click.ClickException(f"no service {name!r}; known: {', '.join(SERVICES) or 'none'}")
    SERVICES[name]()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    upgrade_database(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit 1 and name the first broken entry if any."""
    result = verify_chain(db.session)
    db.session.rollback()
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} entries verified")
        return
    click.echo(f"audit trail BROKEN at entry {result.broken_id}: {result.problem} "
               f"({result.checked} entries before it verified)", err=True)
    sys.exit(1)


@click.command("create-admin")
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.password_option(help="At least the configured minimum length.")
def create_admin(username: str, full_name: str, password: str) -> None:
    """Create the first administrator on a fresh database."""
    from app.errors import DomainError

    with acting_as(Actor(None, "cli:create-admin")):
        try:
            user = create_user(db.session, username=username, full_name=full_name, password=password, roles=["admin"])
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None
    click.echo(f"administrator {user.username} created")


DEMO_USERS = [
    ("admin", "Alex Admin", ["admin"]),
    ("operator", "Olivia Operator", ["operator"]),
    ("operator2", "Omar Operator", ["operator"]),
    ("supervisor", "Sam Supervisor", ["supervisor", "operator"]),
    ("qc", "Quinn QC-Analyst", ["qc_analyst"]),
    ("qa", "Quentin QA", ["qa"]),
    ("qa2", "Queenie QA", ["qa"]),
    ("clinician", "Chris Clinician", ["clinician"]),
    ("clinician2", "Casey Clinician", ["clinician"]),
    ("pharmacist", "Pat Pharmacist", ["pharmacist"]),
]


def demo_password_text(created: list[tuple[str, str, list[str]]]) -> str:
    lines = [f"  {u:<11} {p:<24} {', '.join(r)}" for u, p, r in created]
    return "Demo users (user ID, password, roles):\n" + "\n".join(lines)


def _kept_passwords(kept: Path) -> dict[str, str]:
    """The demo passwords printed by an earlier run (user ID -> password), from the kept file."""
    if not kept.exists():
        return {}
    rows = [line.split() for line in kept.read_text().splitlines()[1:]]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


def create_demo(sess: Any, kept: Path | None = None) -> list[tuple[str, str, list[str]]]:
    """Demo users for every role (once), each domain's demo data, then the demo records the demo users sign
    (with the passwords made now or kept in `kept` by an earlier run, where the new ones are written).
    Commits; returns the users made now."""
    from app.shell import DEMO_DATA, DEMO_RECORDS

    created = []
    with acting_as(Actor(None, "cli:demo-users")):
        for username, full_name, roles in DEMO_USERS:
            if sess.execute(select(User).where(User.username == username)).scalar_one_or_none():
                continue
            password = f"demo-{username}-{secrets.token_hex(3)}"
            create_user(sess, username=username, full_name=full_name, password=password, roles=roles)
            created.append((username, password, roles))
        sess.commit()
        if created and kept is not None:  # kept before anything else can fail
            kept.write_text(demo_password_text(created) + "\n")
        for create in DEMO_DATA:
            create(sess)
            sess.commit()
    passwords = {**(_kept_passwords(kept) if kept is not None else {}), **{u: p for u, p, _ in created}}
    for make in DEMO_RECORDS:
        make(sess, passwords)
        sess.commit()
    return created


@click.command("demo-data")
def demo_data() -> None:
    """Create demo users for every role (once, printing their passwords), each domain's demo data and the
    demo batches they sign."""
    kept = Path(current_app.instance_path) / "demo-passwords.txt"
    created = create_demo(db.session, kept)
    if not created:
        click.echo(kept.read_text() if kept.exists() else "demo users already exist")
        return
    click.echo(demo_password_text(created))


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(services_cli)
    app.cli.add_command(create_admin)
    app.cli.add_command(demo_data)


def _run_as_command(command: click.Command, path: str) -> None:
    """Every command starts as the actor ``cli:<its name>``, whatever ran before it in this process."""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _run_as_command(sub, f"{path} {name}".strip())
        return
    callback = command.callback
    if callback is None or getattr(callback, "starts_with_own_actor", False):
        return

    @functools.wraps(callback)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        token = set_actor(Actor(None, f"cli:{path}"))
        try:
            return callback(*args, **kwargs)
        finally:
            reset_actor(token)

    run.starts_with_own_actor = True  # type: ignore[attr-defined]
    command.callback = run


def finish(app: Flask) -> None:
    """After the domains added their commands: each one resets the actor when it starts."""
    _run_as_command(app.cli, "")
