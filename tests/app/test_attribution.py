"""Who did it (11.10(e)): every request, command and job starts with no actor, and nothing is recorded
without a known one; an entry never carries the actor of an earlier request."""
from __future__ import annotations

import threading

import click
import pytest
from sqlalchemy import select

from app import cli, db
from app.audit import Actor, AuditEntry, UnknownActor, current_actor, record_event, set_actor
from app.users import User
from tests.conftest import basic_auth


def entries(**where):
    stmt = select(AuditEntry).order_by(AuditEntry.id)
    for key, value in where.items():
        stmt = stmt.where(getattr(AuditEntry, key) == value)
    return db.session.execute(stmt).scalars().all()


def test_basic_auth_entries_name_the_person_of_their_own_request(client, make_user):
    supervisor = make_user("supervisor").username
    operator = make_user("operator").username
    qa = make_user("qa")
    qa_id, qa_name = qa.id, qa.username
    # qa mistypes twice, then other users work on the same app and worker in between
    for _ in range(2):
        assert client.get("/api/v1/me", headers=basic_auth(qa_name, "wrong-password-1")).status_code == 401
    assert client.get("/api/v1/me", headers=basic_auth(supervisor)).status_code == 200
    assert client.get("/api/v1/me", headers=basic_auth("nobody-known", "some-password-1")).status_code == 401
    assert client.get("/api/v1/me", headers=basic_auth(operator)).status_code == 200
    assert client.get("/api/v1/me", headers=basic_auth("nobody-else", "some-password-1")).status_code == 401
    assert client.get("/api/v1/me", headers=basic_auth(supervisor)).status_code == 200
    assert client.get("/api/v1/me", headers=basic_auth(qa_name)).status_code == 200

    unknown = entries(action="auth_fail")
    assert [e.record_id for e in unknown] == ["nobody-known", "nobody-else"]
    assert {e.actor_username for e in unknown} == {"anonymous"}
    wrong_password = [e for e in entries(table_name="user_account", record_id=str(qa_id), action="update")
                      if "failed_attempts" in e.changes]
    counts = [(e.actor_username, e.reason) for e in wrong_password]
    assert counts == [("anonymous", "failed api login: wrong password")] * 2 + [
        (qa_name, "successful authentication resets the failure count")]
    assert db.session.get(User, qa_id).failed_attempts == 0


def test_web_login_failures_after_another_users_request_are_anonymous(client, make_user, login):
    admin = make_user("admin")
    login(admin)
    assert client.get("/admin/users").status_code == 200
    client.post("/logout")
    client.post("/login", data={"username": "ghost", "password": "whatever-password"})
    (entry,) = entries(action="auth_fail")
    assert entry.actor_username == "anonymous"


def test_a_request_leaves_no_actor_behind(client, make_user):
    supervisor = make_user("supervisor")
    set_actor(None)
    assert client.get("/api/v1/me", headers=basic_auth(supervisor.username)).status_code == 200
    with pytest.raises(UnknownActor):
        current_actor()
    set_actor(Actor(None, "test"))


def test_nothing_is_recorded_without_a_known_actor(db_session, make_user):
    user = make_user("operator")
    set_actor(None)
    try:
        user.full_name = "Changed Without Anyone"
        with pytest.raises(UnknownActor):
            db_session.flush()
        db_session.rollback()
        with pytest.raises(UnknownActor):
            record_event(db_session, "user_account", str(user.id), "export", {})
    finally:
        set_actor(Actor(None, "test"))


def test_a_job_thread_starts_without_an_actor(db_session):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(_actor_or_none()))
    thread.start()
    thread.join()
    assert seen == [None]


def _actor_or_none():
    try:
        return current_actor()
    except UnknownActor:
        return None


def test_every_cli_command_starts_as_itself(app, db_session):
    seen = []

    @app.cli.command("whoami-probe")
    def whoami_probe() -> None:
        seen.append(current_actor().username)

    try:
        cli.finish(app)
        set_actor(Actor(7, "someone-earlier"))
        result = app.test_cli_runner().invoke(args=["whoami-probe"])
        assert result.exit_code == 0, result.output
        assert seen == ["cli:whoami-probe"]
        assert current_actor().username == "someone-earlier"  # the command's actor ends with it
    finally:
        app.cli.commands.pop("whoami-probe", None)
        set_actor(Actor(None, "test"))
    assert click  # the probe is a click command like every other


def test_a_periodic_service_acts_as_itself_each_round_and_commits_only_what_succeeded(app, monkeypatch):
    """A background service (mail, reservation expiry) is its own actor in every round, whoever acted before,
    a failing round leaves nothing of its work behind, and the next round runs."""
    import time

    from app import db
    from app.audit import Actor, acting_as, current_actor
    from app.shell import run_periodically

    rounds: list[str] = []
    commits: list[int] = []
    monkeypatch.setattr(db.session, "commit", lambda: commits.append(len(rounds)), raising=False)

    def work(sess):
        rounds.append(current_actor().username)
        if len(rounds) == 2:
            raise RuntimeError("database went away")

    def stop_after_three(_seconds):
        if len(rounds) >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", stop_after_three)
    with acting_as(Actor(7, "someone-earlier")), pytest.raises(KeyboardInterrupt):
        run_periodically(app, "reservation-expiry", 0.01, work)
    assert rounds == ["reservation-expiry"] * 3
    assert commits == [1, 3]  # the first and third rounds committed, the failing second did not
