"""Alembic is the only way a schema is made: upgrade head on an empty database equals the models."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app import db
from app.cli import upgrade_database
from app.db import Base


def test_migrated_schema_equals_the_models(app, backend, fresh_database_url):
    url = fresh_database_url(backend)
    upgrade_database(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], differences
    assert "audit_entry" in Base.metadata.tables and "user_account" in Base.metadata.tables


def test_downgrade_to_base_and_upgrade_again(backend, fresh_database_url):
    from alembic import command

    from app.cli import alembic_config

    url = fresh_database_url(backend)
    upgrade_database(url)
    command.downgrade(alembic_config(url), "base")
    upgrade_database(url)
