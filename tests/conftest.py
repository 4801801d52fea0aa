"""Fixtures: every database test runs on SQLite and on a real PostgreSQL started for the session;
each test runs inside a transaction that is rolled back."""
from __future__ import annotations

import base64
import itertools
import os
import tempfile
from typing import Any, Callable, Iterator

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from app import create_app, db
from app.audit import Actor, set_actor
from app.cli import upgrade_database
from app.users import create_user
from config import TestConfig
from tests.pg import PostgresServer

BACKENDS = ("sqlite", "postgresql")
PASSWORD = "correct-horse-battery-staple"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", action="append", choices=BACKENDS,
                     help="database backend(s) to run database tests on (default: both)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run this test only on the named database backends")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db") or list(BACKENDS)
        marker = metafunc.definition.get_closest_marker("backends")
        if marker is not None:
            chosen = [b for b in chosen if b in marker.args]
        metafunc.parametrize("backend", chosen, indirect=True, scope="session")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


_db_counter = itertools.count()


@pytest.fixture(scope="session")
def fresh_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Make a new empty database on the given backend and return its URL (not migrated)."""

    def make(backend: str) -> str:
        n = next(_db_counter)
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / f'test{n}.sqlite3'}"
        server = request.getfixturevalue("postgres_server")
        return server.create_database(f"nkmes_test_{n}")

    return make


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, fresh_database_url: Callable[[str], str]) -> str:
    url = fresh_database_url(backend)
    upgrade_database(url)
    return url


def make_config(url: str, **overrides: Any) -> TestConfig:
    config = TestConfig()
    config.DATABASE_URL = url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix="nkmes-instance-")
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="session")
def app(database_url: str) -> Any:
    application = create_app(make_config(database_url))
    return application


@pytest.fixture()
def db_session(app: Any) -> Iterator[Any]:
    """The shared scoped session, bound to a connection whose transaction is rolled back after the test.

    Set-up data must be committed (``db_session.commit()``, which here only releases a savepoint): each
    request ends by removing the scoped session, which discards anything merely flushed.
    """
    engine = db.get_engine(app.config["DATABASE_URL"])
    connection = engine.connect()
    transaction = connection.begin()
    db.session.remove()
    db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    token = set_actor(Actor(None, "test"))
    try:
        yield db.session
    finally:
        db.session.remove()
        transaction.rollback()
        connection.close()
        db.session.configure(bind=engine)
        from app.audit import _actor

        _actor.reset(token)


class CSRFClient(FlaskClient):
    """A test client that sends a valid CSRF token with every unsafe request, unless csrf=False."""

    def _token(self) -> str:
        with self.session_transaction() as sess:
            raw = sess.setdefault("csrf_token", os.urandom(20).hex())
        return URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token").dumps(raw)

    def open(self, *args: Any, csrf: bool = True, **kwargs: Any) -> Any:
        method = (kwargs.get("method") or "GET").upper()
        if csrf and method not in ("GET", "HEAD", "OPTIONS") and "Authorization" not in (kwargs.get("headers") or {}):
            token = self._token()
            data = kwargs.get("data")
            if isinstance(data, dict):
                data = dict(data)
                data.setdefault("csrf_token", token)
                kwargs["data"] = data
            elif data is None and kwargs.get("json") is None:
                kwargs["data"] = {"csrf_token": token}
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("X-CSRFToken", token)
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


@pytest.fixture()
def client(app: Any, db_session: Any) -> FlaskClient:
    app.test_client_class = CSRFClient
    return app.test_client()


_user_counter = itertools.count(1)


@pytest.fixture()
def make_user(db_session: Any) -> Callable[..., Any]:
    """Factory: make_user("operator", "qa", username=None, full_name=None) -> User (password PASSWORD)."""

    def make(*roles: str, username: str | None = None, full_name: str | None = None, password: str = PASSWORD) -> Any:
        n = next(_user_counter)
        name = username or f"{(roles[0] if roles else 'user').replace('_', '')}{n}"
        user = create_user(db_session, username=name, full_name=full_name or f"Test {name.title()}",
                           password=password, roles=list(roles or ["operator"]))
        db_session.commit()  # releases a savepoint only: the test's outer transaction is still rolled back
        return user

    return make


@pytest.fixture()
def login(client: FlaskClient) -> Callable[..., Any]:
    """login(user) logs the client in through the real login form."""

    def do(user: Any, password: str = PASSWORD) -> Any:
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do


def basic_auth(username: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture()
def api_headers() -> Callable[..., dict[str, str]]:
    """api_headers(user) -> HTTP Basic headers for the REST API."""

    def make(user: Any, password: str = PASSWORD) -> dict[str, str]:
        return basic_auth(user.username, password)

    return make
