"""Database refusals and outages: a 4xx or the product's own 503 saying nothing was saved, never a 500;
an outage logged once at its start and once at its end; liveness and readiness probes."""
from __future__ import annotations

import logging

import pytest
from flask import Response
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app import db, web
from app.outage import outage
from app.users import User
from tests.conftest import PASSWORD


@pytest.mark.backends("postgresql")
def test_a_value_the_database_refuses_at_commit_is_a_422_with_nothing_saved(app, db_session, make_user):
    user = make_user("operator")
    user_id = user.id
    with app.test_request_context("/api/v1/me"):
        user.full_name = "NUL\u0000reaches the database"  # past every schema: only the commit can refuse it
        response = web._commit_unit_of_work(Response("ok"))
    status = response[1] if isinstance(response, tuple) else response.status_code
    assert status == 422
    body = (response[0] if isinstance(response, tuple) else response).get_json()
    assert "nothing was saved" in body["message"]
    db_session.expire_all()
    assert db_session.get(User, user_id).full_name.startswith("Test")


def _unreachable(*_args, **_kwargs):
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_during_an_outage_pages_get_the_products_503_and_the_log_two_lines(app, client, make_user, login,
                                                                          monkeypatch, caplog):
    user = make_user("operator")
    full_name = user.full_name
    login(user)
    outage.answered()  # whatever an earlier test left
    caplog.set_level(logging.WARNING, logger="nkmes.database")
    with monkeypatch.context() as patch:
        patch.setattr(db.session, "get", _unreachable)  # every request loads its user first
        for path in ("/", "/batches", "/sourcing/units"):
            response = client.get(path)
            assert response.status_code == 503, path
            page = response.get_data(as_text=True)
            assert "Nothing was saved" in page and "Internal Server Error" not in page
            assert full_name not in page  # rendered without loading anyone
            assert response.headers["Retry-After"]
        response = client.post("/account/password", data={"current_password": PASSWORD})
        assert response.status_code == 503
        response = client.get("/api/v1/me", headers={"Accept": "application/json"})
        assert response.status_code == 503 and response.json["code"] == 503
    assert outage.down
    assert client.get("/").status_code == 200
    assert not outage.down
    lines = [r.getMessage() for r in caplog.records if r.name == "nkmes.database"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable")
    assert "available again" in lines[1] and "5 requests were refused" in lines[1]


def test_liveness_never_asks_the_database_and_readiness_does(client, monkeypatch):
    assert client.get("/health/live").json == {"status": "ok"}
    assert client.get("/health/ready").status_code == 200
    dead = db.make_engine("postgresql://postgres@127.0.0.1:9/none")
    with monkeypatch.context() as patch:
        patch.setattr(web, "readiness_engine", lambda: dead)
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health").status_code == 503
    dead.dispose()
    assert client.get("/health").status_code == 200
    assert select  # imported for the readers of this module's assertions


def test_every_schema_of_the_product_refuses_control_characters(app):
    """One mechanism for all domains: every marshmallow schema derives from app.schemas.Schema."""
    import marshmallow

    from app.schemas import Schema

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    # recipe files are checked as one document: their text arrives in the API's long-text "definition"
    ours = [c for c in subclasses(marshmallow.Schema)
            if c.__module__.split(".")[0] in ("app", "equipment", "batches")
            and c.__module__ != "batches.execution.recipes"]
    assert len(ours) > 30
    stray = [f"{c.__module__}.{c.__name__}" for c in ours if not issubclass(c, Schema)]
    assert not stray, stray
