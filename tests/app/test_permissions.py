"""Every registered endpoint is guarded by a declared permission, and every role outside it gets 403."""
from __future__ import annotations

import pytest
from werkzeug.routing import FloatConverter, IntegerConverter

from app.permissions import ALL_ROLES, PERMISSIONS, permission_of, roles_for
from tests.conftest import CSRFClient, PASSWORD

# Reachable without logging in, by design: the log-in/out pages, static assets and the health probes.
PUBLIC_ENDPOINTS = {"core.login", "core.logout", "core.health", "core.health_live", "core.health_ready"}
CHECKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def is_public(endpoint: str) -> bool:
    return endpoint in PUBLIC_ENDPOINTS or endpoint == "static" or endpoint.endswith(".static")


def placeholder_url(rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        values[name] = 999999 if isinstance(converter, (IntegerConverter, FloatConverter)) else "x"
    return rule.build(values, append_unknown=False)[1]


def guarded_routes(app):
    routes, unguarded = [], []
    for rule in app.url_map.iter_rules():
        if is_public(rule.endpoint):
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods & set(CHECKED_METHODS)):
            permission = permission_of(view, method)
            if permission is None:
                unguarded.append(f"{method} {rule.rule} ({rule.endpoint})")
            else:
                routes.append((rule, method, permission))
    return routes, unguarded


def test_every_endpoint_declares_a_permission(app):
    routes, unguarded = guarded_routes(app)
    assert not unguarded, "endpoints without a permission check: " + ", ".join(unguarded)
    assert routes
    for _rule, _method, permission in routes:
        assert permission in PERMISSIONS


def test_each_role_outside_a_permission_gets_403_everywhere(app, db_session, make_user):
    routes, _ = guarded_routes(app)
    app.test_client_class = CSRFClient
    clients = {}
    for role in sorted(ALL_ROLES):
        user = make_user(role)
        client = app.test_client()
        response = client.post("/login", data={"username": user.username, "password": PASSWORD})
        assert response.status_code == 302
        clients[role] = client
    wrong = []
    for rule, method, permission in routes:
        url = placeholder_url(rule)
        allowed = roles_for(permission)
        for role, client in clients.items():
            kwargs = {"json": {}} if url.startswith("/api/") and method != "GET" else {}
            status = client.open(url, method=method, **kwargs).status_code
            if role in allowed and status == 403:
                wrong.append(f"{role} refused {method} {url} although {permission} allows it")
            if role not in allowed and status != 403:
                wrong.append(f"{role} got {status} for {method} {url} ({permission})")
    assert not wrong, "\n".join(wrong)


def test_anonymous_users_are_sent_to_login_or_get_401(app, client):
    routes, _ = guarded_routes(app)
    for rule, method, _permission in routes:
        url = placeholder_url(rule)
        response = client.open(url, method=method)
        if url.startswith("/api/"):
            assert response.status_code == 401, url
        else:
            assert response.status_code == 302 and "/login" in response.headers["Location"], url


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_home_page_offers_only_what_the_role_may_do(client, make_user, login, role):
    user = make_user(role)
    login(user)
    page = client.get("/").get_data(as_text=True)
    assert ("Users and roles" in page) == (role == "admin")
    assert ("Audit trail" in page) == (role in ("admin", "qa"))
