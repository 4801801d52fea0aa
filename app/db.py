"""Database core: declarative Base with a naming convention, UTC timestamps, the engine and the session.

The session lives here rather than in a Flask extension so that the OPC UA collector and the CLI use
the same models and the same unit-of-work rules without a Flask app.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The server clock in UTC; the only clock GMP records are stamped with."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: GMP timestamps must carry a time zone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Base of every model; constraint names follow NAMING_CONVENTION so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


session = scoped_session(sessionmaker(expire_on_commit=False))
_engines: dict[str, Engine] = {}


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and transactions that take the write lock at BEGIN.

    BEGIN IMMEDIATE serialises writers up front (with a busy timeout) instead of failing a reader that
    later tries to write; it also keeps the audit hash chain linear on the embedded database.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, issues BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the dialect settings this product relies on."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgresql"):
        # a database host that does not answer fails a request in seconds, not after the TCP timeout
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 5)
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def bind_session(url: str) -> Engine:
    """Point the shared scoped session at the database behind url."""
    engine = get_engine(url)
    session.remove()
    session.configure(bind=engine)
    return engine


def is_postgresql(bind: Any) -> bool:
    return bind.dialect.name == "postgresql"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_xact_lock(sess: Any, name: str) -> None:
    """Serialise a critical section across processes until the transaction ends (PostgreSQL only;
    on SQLite every write transaction already holds the database write lock from BEGIN)."""
    if is_postgresql(sess.get_bind()):
        sess.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})


def append_only_ddl(dialect_name: str, table: str) -> list[str]:
    """Triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on an append-only table."""
    message = f"{table} is append-only: rows cannot be changed or removed"
    if dialect_name == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql""",
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END",
    ]


def drop_append_only_ddl(dialect_name: str, table: str) -> list[str]:
    if dialect_name == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}",
                f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
                f"DROP FUNCTION IF EXISTS {table}_append_only()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_update", f"DROP TRIGGER IF EXISTS {table}_no_delete"]
