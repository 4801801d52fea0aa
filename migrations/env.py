"""Alembic environment: the models of the core and of every configured domain package."""
from __future__ import annotations

import importlib

from alembic import context

from app import db
from app.db import Base
from config import Config

CORE_MODEL_MODULES = ["app.users", "app.audit", "app.signatures"]


def load_models() -> None:
    for name in CORE_MODEL_MODULES:
        importlib.import_module(name)
    for package in Config.DOMAIN_PACKAGES:
        importlib.import_module(f"{package}.models")


load_models()
target_metadata = Base.metadata
config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("database_url") or Config.DATABASE_URL
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:  # a migration that refuses to run must not leave a connection open
        engine.dispose()


run_migrations()
