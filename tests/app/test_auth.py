"""Users, login, lockout, idle timeout, CSRF, password rules, administration (11.10(d,g), 11.300)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app import db
from app.audit import AuditEntry
from app.errors import Conflict, ValidationFailed
from app.users import User, change_password, create_user, deactivate_user
from tests.conftest import PASSWORD, basic_auth


def attempt(client, username, password):
    return client.post("/login", data={"username": username, "password": password})


def test_lockout_after_five_failures_is_audited_shown_and_lifted_by_admin(client, make_user, login):
    user = make_user("operator")
    for n in range(1, 5):
        response = attempt(client, user.username, "wrong-password-xx")
        assert response.status_code == 401
        assert db.session.get(User, user.id).failed_attempts == n
        assert not db.session.get(User, user.id).is_locked
    response = attempt(client, user.username, "wrong-password-xx")
    assert "now locked" in response.get_data(as_text=True)
    assert db.session.get(User, user.id).is_locked
    response = attempt(client, user.username, PASSWORD)  # even the right password is refused now
    assert response.status_code == 401 and "locked" in response.get_data(as_text=True)
    lockouts = db.session.execute(select(AuditEntry).where(AuditEntry.action == "lockout",
                                                           AuditEntry.record_id == str(user.id))).scalars().all()
    assert len(lockouts) == 1

    admin = make_user("admin")
    login(admin)
    page = client.get("/admin/users").get_data(as_text=True)
    assert "Locked accounts" in page and user.username in page
    refused = client.post(f"/admin/users/{user.id}/unlock", data={"reason": ""})
    assert refused.status_code == 422 and db.session.get(User, user.id).is_locked
    response = client.post(f"/admin/users/{user.id}/unlock", data={"reason": "identity confirmed by phone"})
    assert response.status_code == 302
    assert not db.session.get(User, user.id).is_locked
    unlock = db.session.execute(select(AuditEntry).where(AuditEntry.reason == "identity confirmed by phone")).scalar_one()
    assert unlock.actor_username == admin.username


def test_unknown_username_failure_is_audited(client):
    attempt(client, "nobody-here", "whatever-password")
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "auth_fail")).scalar_one()
    assert "unknown username" in entry.reason


def test_idle_timeout_logs_the_user_out(app, client, make_user, login):
    user = make_user("operator")
    login(user)
    assert client.get("/").status_code == 200
    with client.session_transaction() as sess:
        sess["last_active"] -= app.config["IDLE_TIMEOUT_MINUTES"] * 60 + 1
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "without activity" in page
    assert client.get("/").status_code == 302  # still logged out


def test_activity_within_the_timeout_keeps_the_session(app, client, make_user, login):
    user = make_user("operator")
    login(user)
    with client.session_transaction() as sess:
        sess["last_active"] -= app.config["IDLE_TIMEOUT_MINUTES"] * 60 - 30
    assert client.get("/").status_code == 200


def test_form_without_csrf_token_is_refused_and_changes_nothing(client, make_user, login):
    admin = make_user("admin")
    login(admin)
    data = {"username": "csrfvictim", "full_name": "C V", "password": PASSWORD, "roles": "operator"}
    response = client.post("/admin/users/new", data=data, csrf=False)
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert db.session.execute(select(User).where(User.username == "csrfvictim")).first() is None
    assert client.post("/admin/users/new", data=data).status_code == 302


def test_api_call_with_session_cookie_needs_the_csrf_header(client, make_user, login):
    admin = make_user("admin")
    login(admin)
    payload = {"username": "apinew", "full_name": "A N", "password": PASSWORD, "roles": ["operator"]}
    assert client.post("/api/v1/users", json=payload, csrf=False).status_code == 400
    assert client.post("/api/v1/users", json=payload).status_code == 201


def test_password_rules(db_session, make_user):
    user = make_user("operator")
    with pytest.raises(ValidationFailed, match="at least 12"):
        change_password(db_session, user, "short")
    with pytest.raises(ValidationFailed, match="used recently"):
        change_password(db_session, user, PASSWORD)
    for n in range(5):
        change_password(db_session, user, f"another-long-password-{n}")
    change_password(db_session, user, PASSWORD)  # six changes later the first one may come back
    assert user.password_hash.startswith("$argon2id$")


def test_usernames_are_never_reused(db_session, make_user):
    user = make_user("operator", username="kim")
    deactivate_user(db_session, user, "left the company")
    db_session.commit()
    with pytest.raises(Conflict, match="cannot be reused"):
        create_user(db_session, username="KIM", full_name="Another Kim", password=PASSWORD, roles=["qa"])


def test_deactivated_user_cannot_log_in(client, db_session, make_user):
    user = make_user("operator")
    deactivate_user(db_session, user, "left")
    db_session.commit()
    assert attempt(client, user.username, PASSWORD).status_code == 401


def test_admin_creates_user_who_must_change_password(client, make_user, login):
    admin = make_user("admin")
    login(admin)
    response = client.post("/admin/users/new", data={"username": "newop", "full_name": "New Op",
                                                       "password": PASSWORD, "roles": ["operator", "supervisor"]})
    assert response.status_code == 302
    created = db.session.execute(select(User).where(User.username == "newop")).scalar_one()
    assert created.role_names == ["operator", "supervisor"] and created.must_change_password
    bad = client.post("/admin/users/new", data={"username": "x y", "full_name": "", "password": "short", "roles": []})
    assert bad.status_code == 422
    assert "printed name is required" in bad.get_data(as_text=True)


def test_new_user_is_sent_to_change_the_password(client, make_user):
    admin = make_user("admin")
    client.post("/login", data={"username": admin.username, "password": PASSWORD})
    client.post("/admin/users/new", data={"username": "fresh", "full_name": "Fresh", "password": PASSWORD,
                                          "roles": ["operator"]})
    client.post("/logout")
    response = client.post("/login", data={"username": "fresh", "password": PASSWORD})
    assert response.headers["Location"].endswith("/account/password")
    response = client.post("/account/password", data={"current_password": PASSWORD,
                                                      "new_password": "brand-new-password-1",
                                                      "confirm_password": "brand-new-password-1"})
    assert response.status_code == 302
    assert not db.session.execute(select(User).where(User.username == "fresh")).scalar_one().must_change_password


def test_cli_creates_the_first_admin(app, db_session):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "--username", "root", "--full-name", "Root Admin",
                                 "--password", "first-admin-password"])
    assert result.exit_code == 0, result.output
    user = db_session.execute(select(User).where(User.username == "root")).scalar_one()
    assert user.role_names == ["admin"]
    again = runner.invoke(args=["create-admin", "--username", "root", "--full-name", "R",
                                "--password", "first-admin-password"])
    assert again.exit_code != 0 and "cannot be reused" in again.output


def test_api_basic_auth_and_its_failures_count(client, make_user):
    admin = make_user("admin")
    response = client.get("/api/v1/me", headers=basic_auth(admin.username))
    assert response.status_code == 200 and response.json["username"] == admin.username
    response = client.get("/api/v1/me", headers=basic_auth(admin.username, "bad-password-1"))
    assert response.status_code == 401 and "not correct" in response.json["message"]
    assert db.session.get(User, admin.id).failed_attempts == 1
    assert client.get("/api/v1/me").status_code == 401


def test_api_user_administration(client, make_user):
    admin = make_user("admin")
    headers = basic_auth(admin.username)
    response = client.post("/api/v1/users", headers=headers,
                           json={"username": "viaapi", "full_name": "Via Api", "password": PASSWORD,
                                 "roles": ["qc_analyst"]})
    assert response.status_code == 201, response.json
    uid = response.json["id"]
    response = client.put(f"/api/v1/users/{uid}/roles", headers=headers, json={"roles": ["qa"], "reason": ""})
    assert response.status_code == 422 and "reason" in response.json["errors"]
    response = client.put(f"/api/v1/users/{uid}/roles", headers=headers,
                          json={"roles": ["qa"], "reason": "promotion", "username": admin.username,
                                "password": PASSWORD})
    assert response.json["roles"] == ["qa"]
    response = client.post(f"/api/v1/users/{uid}/deactivate", headers=headers, json={"reason": "left"})
    assert response.json["active"] is False
    response = client.post("/api/v1/users", headers=headers,
                           json={"username": "viaapi", "full_name": "Again", "password": PASSWORD, "roles": ["qa"]})
    assert response.status_code == 409
