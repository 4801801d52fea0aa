"""Web shell: security headers, error pages, secure cookies, docs page, time formatting."""
from __future__ import annotations

from datetime import datetime, timezone

from app.web import format_cells, site_time
from tests.conftest import PASSWORD


def test_security_headers_forbid_inline_scripts_and_framing(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_load_no_asset_from_another_host(client, make_user, login):
    login(make_user("admin"))
    for url in ("/", "/admin/users", "/audit", "/docs/api", "/login"):
        page = client.get(url).get_data(as_text=True)
        assert "http://" not in page.replace("http://localhost", "") and "//cdn" not in page, url
        assert "<script>" not in page and "style=" not in page, url


def test_session_cookie_is_secure_over_https(client, make_user):
    user = make_user("operator")
    response = client.post("/login", data={"username": user.username, "password": PASSWORD},
                           base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert response.headers.get("Strict-Transport-Security")
    plain = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert "Secure" not in plain.headers.get("Set-Cookie", "")


def test_error_pages_say_what_to_do(client, make_user, login):
    login(make_user("operator"))
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Check the address" in response.get_data(as_text=True)
    response = client.get("/admin/users")
    assert response.status_code == 403 and "Ask your supervisor" in response.get_data(as_text=True)
    response = client.get("/api/v1/users/1")
    assert response.status_code == 403 and response.json["message"].startswith("Your role does not allow")


def test_server_error_page_rolls_back_and_explains(app, client, make_user, login, monkeypatch):
    from app import db
    from app.users import User

    user = make_user("operator", full_name="Before Failure")

    def failing_view():
        db.session.get(User, user.id).full_name = "Half Saved"
        db.session.flush()
        raise RuntimeError("simulated fault")

    login(user)
    monkeypatch.setitem(app.view_functions, "core.home", failing_view)
    response = client.get("/")
    assert response.status_code == 500
    assert "nothing was saved" in response.get_data(as_text=True)
    assert db.session.get(User, user.id).full_name == "Before Failure"


def test_api_docs_page_and_openapi_document_are_served(client, make_user, login):
    login(make_user("clinician"))
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.") and "/api/v1/users" in spec["paths"]
    page = client.get("/docs/api").get_data(as_text=True)
    assert "/api/v1/audit-entries" in page


def test_audit_page_filters_and_pages(client, make_user, login):
    qa = make_user("qa")
    for _ in range(3):
        make_user("operator")
    login(qa)
    page = client.get("/audit?table_name=user_role").get_data(as_text=True)
    assert "user_role" in page and "user_account " not in page
    assert client.get("/audit?start=not-a-date").status_code == 200
    page = client.get("/audit/verify").get_data(as_text=True)
    assert "Intact" in page


def test_times_are_shown_in_the_site_zone(app):
    moment = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    with app.test_request_context():
        app.config["SITE_TIMEZONE"] = "Europe/Madrid"
        try:
            assert site_time(moment) == "2026-07-01 14:00:00 CEST"
        finally:
            app.config["SITE_TIMEZONE"] = "UTC"


def test_cell_counts_are_shown_in_scientific_form():
    assert format_cells(1.2e10) == "1.2 x 10^10"
    assert format_cells(21e8) == "2.1 x 10^9"
    assert format_cells(9.999e9) == "1 x 10^10"
    assert format_cells(None) == ""


def test_a_constraint_refusal_during_the_request_is_a_409_not_a_500(app, client, make_user, login, monkeypatch):
    from app import db
    from app.users import UserRole

    user = make_user("operator")
    role_count = len(user.roles)

    def racing_view():
        db.session.add(UserRole(user_id=user.id, role="qa"))
        db.session.add(UserRole(user_id=None, role="qa"))  # NOT NULL: the database refuses the flush
        db.session.flush()

    login(user)
    monkeypatch.setitem(app.view_functions, "core.home", racing_view)
    response = client.get("/")
    assert response.status_code == 409
    assert "nothing of yours was saved" in response.get_data(as_text=True)
    assert len(db.session.get(type(user), user.id).roles) == role_count


def test_static_assets_need_no_database_round_trip(app, client, make_user, login):
    from sqlalchemy import event

    from app import db

    login(make_user("operator"))
    statements = []
    engine = db.get_engine(app.config["DATABASE_URL"])
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        response = client.get("/static/css/app.css")
        response.close()
        page = client.get("/")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert response.status_code == 200 and page.status_code == 200
    assert any("user_account" in s for s in statements)  # the page loads its user; the asset did not
    assert sum("user_account" in s for s in statements) == 1


def test_ids_beyond_an_integer_key_are_not_found_not_a_server_error(client, make_user, login):
    login(make_user("admin"))
    assert client.get("/admin/users/99999999999999999999").status_code == 404
    assert client.get(f"/admin/users/{2**31}").status_code == 404
    assert client.get("/api/v1/users/99999999999999999999").status_code == 404


def test_dates_beyond_the_calendar_are_refused_with_a_message(client, make_user, login):
    login(make_user("qa"))
    page = client.get("/audit?start=0001-01-01T00:00%2B05:00")
    assert page.status_code == 200 and "outside the range of dates" in page.get_data(as_text=True)
    response = client.get("/api/v1/audit-entries?start=0001-01-01T00:00%2B05:00", )
    assert response.status_code == 422 and "outside the range" in response.json["message"]


def test_a_value_too_large_for_its_column_is_a_422_and_saves_nothing(app, client, make_user, login, monkeypatch):
    from app import db
    from app.users import User

    user = make_user("operator", full_name="Kept Name")

    def oversized_write():
        db.session.get(User, user.id).full_name = "Half Saved"
        db.session.get(User, 2**70)  # an id no integer column can hold
        return "unreachable"

    login(user)
    monkeypatch.setitem(app.view_functions, "core.home", oversized_write)
    response = client.get("/")
    assert response.status_code == 422 and "nothing was saved" in response.get_data(as_text=True)
    assert db.session.get(User, user.id).full_name == "Kept Name"
