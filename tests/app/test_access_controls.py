"""First-password change, separation of duties on accounts, authentication before CSRF, session renewal
and who may read a record's history (11.10(d,g), 11.300)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app import db
from app.audit import AuditEntry
from app.errors import Conflict
from app.signatures import Signature
from app.users import RoleChange, User, create_user, deactivate_user
from tests.conftest import PASSWORD, basic_auth


def fresh_user(db_session, *roles, username):
    user = create_user(db_session, username=username, full_name=username.title(), password=PASSWORD,
                       roles=list(roles), must_change_password=True)
    db_session.commit()
    return user


# --- the first password must be changed before anything else ------------------------------------

def test_api_refuses_every_call_until_the_initial_password_is_changed(client, db_session):
    fresh_user(db_session, "admin", username="newadmin")
    response = client.get("/api/v1/me", headers=basic_auth("newadmin"))
    assert response.status_code == 403 and "new password" in response.json["message"]
    response = client.post("/api/v1/users", headers=basic_auth("newadmin"),
                           json={"username": "made-by-fresh", "full_name": "M", "password": PASSWORD,
                                 "roles": ["operator"]})
    assert response.status_code == 403
    assert db_session.execute(select(User).where(User.username == "made-by-fresh")).first() is None


def test_web_pages_send_the_user_to_change_the_initial_password(client, db_session):
    fresh_user(db_session, "admin", username="newweb")
    response = client.post("/login", data={"username": "newweb", "password": PASSWORD})
    assert response.headers["Location"].endswith("/account/password")
    for page in ("/", "/admin/users", "/audit", "/docs/api"):
        response = client.get(page)
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/password"), page
    response = client.post("/admin/users/new", data={"username": "bypass", "full_name": "B", "password": PASSWORD,
                                                     "roles": ["operator"]})
    assert response.status_code == 302
    assert db_session.execute(select(User).where(User.username == "bypass")).first() is None
    assert client.get("/account/password").status_code == 200
    response = client.post("/account/password", data={"current_password": PASSWORD,
                                                      "new_password": "brand-new-password-2",
                                                      "confirm_password": "brand-new-password-2"})
    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200  # the renewed session goes on


# --- nobody changes their own account; the last administrator stays -----------------------------

def test_an_administrator_cannot_change_own_roles_or_status(app, client, make_user, login):
    admin = make_user("admin")
    admin_id, admin_name = admin.id, admin.username
    login(admin)
    response = client.post(f"/admin/users/{admin_id}/roles",
                           data={"roles": ["admin", "qa"], "reason": "self", "sign_username": admin_name,
                                 "sign_password": PASSWORD})
    assert response.status_code == 409 and "own account" in response.get_data(as_text=True)
    for action in ("deactivate", "reset-password"):
        response = client.post(f"/admin/users/{admin_id}/{action}", data={"reason": "self", "password": "x" * 20})
        assert response.status_code == 409, action
    response = app.test_client().put(f"/api/v1/users/{admin_id}/roles", headers=basic_auth(admin_name),
                          json={"roles": ["admin", "qa"], "reason": "self", "username": admin_name,
                                "password": PASSWORD})
    assert response.status_code == 409
    assert db.session.get(User, admin_id).role_names == ["admin"]
    assert "Sign and save roles" not in client.get(f"/admin/users/{admin_id}").get_data(as_text=True)


def test_the_last_active_administrator_cannot_be_removed_or_deactivated(db_session, make_user):
    last = make_user("admin")
    for other in db_session.execute(select(User).where(User.id != last.id)).scalars():
        if other.has_role("admin"):
            other.active = False
    db_session.flush()
    with pytest.raises(Conflict, match="last active administrator"):
        deactivate_user(db_session, last, "leaving")
    assert last.active


def test_a_role_change_is_e_signed_with_its_reason_and_audited(client, make_user, login):
    admin = make_user("admin")
    user = make_user("operator")
    admin_id, admin_name, user_id = admin.id, admin.username, user.id
    login(admin)
    refused = client.post(f"/admin/users/{user_id}/roles",
                          data={"roles": ["operator", "qa"], "reason": "promotion", "sign_username": admin_name,
                                "sign_password": "wrong-password-1"})
    assert refused.status_code == 422 and db.session.get(User, user_id).role_names == ["operator"]
    response = client.post(f"/admin/users/{user_id}/roles",
                           data={"roles": ["operator", "qa"], "reason": "promotion", "sign_username": admin_name,
                                 "sign_password": PASSWORD})
    assert response.status_code == 302
    assert db.session.get(User, user_id).role_names == ["operator", "qa"]
    change = db.session.execute(select(RoleChange).where(RoleChange.user_id == user_id)).scalar_one()
    assert (change.old_roles, change.new_roles, change.reason) == ("operator", "operator,qa", "promotion")
    signature = db.session.execute(select(Signature).where(Signature.record_table == "user_role_change",
                                                           Signature.record_id == str(change.id))).scalar_one()
    assert (signature.signer_id, signature.meaning) == (admin_id, "approved")
    added = db.session.execute(select(AuditEntry).where(AuditEntry.table_name == "user_role",
                                                        AuditEntry.action == "insert")
                               .order_by(AuditEntry.id.desc())).scalars().first()
    assert (added.actor_username, added.reason) == (admin_name, "promotion")


# --- authentication comes before the form token --------------------------------------------------

def test_unauthenticated_api_writes_get_401_not_a_csrf_error(client):
    for method, url in (("POST", "/api/v1/users"), ("PUT", "/api/v1/users/1/roles"),
                        ("POST", "/api/v1/users/1/deactivate")):
        response = client.open(url, method=method, json={}, csrf=False)
        assert response.status_code == 401, (method, url, response.json)
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    response = client.post("/api/v1/users", json={}, headers=basic_auth("nobody-at-all", "wrong-password"))
    assert response.status_code == 401


# --- the session is renewed at login and at every privilege change ------------------------------

def csrf_token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_token_of_the_page_before_login_is_void_after_it(client, make_user):
    admin = make_user("admin")
    before = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": admin.username, "password": PASSWORD,
                                           "csrf_token": before})
    assert response.status_code == 302
    data = {"username": "fixated", "full_name": "F", "password": PASSWORD, "roles": "operator", "csrf_token": before}
    assert client.post("/admin/users/new", data=data, csrf=False).status_code == 400
    data["csrf_token"] = csrf_token_of(client.get("/admin/users/new").get_data(as_text=True))
    assert data["csrf_token"] != before
    assert client.post("/admin/users/new", data=data, csrf=False).status_code == 302


def test_a_change_of_roles_or_password_ends_the_sessions_opened_before_it(app, client, make_user, login):
    admin = make_user("admin")
    user = make_user("operator", "supervisor")
    user_id, user_name = user.id, user.username
    other = app.test_client()
    assert other.post("/login", data={"username": user_name, "password": PASSWORD}).status_code == 302
    assert other.get("/").status_code == 200
    login(admin)
    response = client.post(f"/admin/users/{user_id}/roles",
                           data={"roles": ["operator"], "reason": "left supervision",
                                 "sign_username": admin.username, "sign_password": PASSWORD})
    assert response.status_code == 302
    response = other.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert other.post("/login", data={"username": user_name, "password": PASSWORD}).status_code == 302
    assert other.get("/").status_code == 200


# --- a record's history is for those who may see the record ---------------------------------------

def test_record_history_only_for_roles_that_may_see_the_record(app, make_user):
    from tests.conftest import CSRFClient

    app.test_client_class = CSRFClient
    subject = make_user("operator")
    clients = {}
    for role in ("admin", "qa", "operator", "clinician"):
        user = make_user(role)
        clients[role] = app.test_client()
        assert clients[role].post("/login", data={"username": user.username, "password": PASSWORD}).status_code == 302
    expected = {
        f"/records/user_account/{subject.id}/history": {"admin": 200, "qa": 200, "operator": 403, "clinician": 403},
        "/records/batch/1/history": {"admin": 200, "qa": 200, "operator": 200, "clinician": 403},
        "/records/cord_blood_unit/1/history": {"admin": 200, "qa": 200, "operator": 200, "clinician": 403},
        "/records/no_such_table/1/history": {"admin": 404, "qa": 404, "operator": 404, "clinician": 404},
    }
    got = {url: {role: c.get(url).status_code for role, c in clients.items()} for url in expected}
    assert got == expected
