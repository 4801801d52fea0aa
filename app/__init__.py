"""The application core: create_app, and the pieces every domain package uses."""
from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

from app import db


def create_app(config_object: Any = None) -> Flask:
    """Build the Flask app: database session, login, CSRF, web shell, API, CLI, then the domains."""
    from config import Config

    app = Flask(__name__, template_folder="../templates", static_folder="static",
                instance_path=str(__import__("config")._instance_dir()))
    app.config.from_object(config_object if config_object is not None else Config())

    from app.users import configure_hasher, configure_policy

    configure_hasher(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST"],
                     app.config["ARGON2_PARALLELISM"])
    configure_policy(app.config["PASSWORD_MIN_LENGTH"], app.config["PASSWORD_HISTORY"],
                     app.config["LOCKOUT_THRESHOLD"])
    db.bind_session(app.config["DATABASE_URL"])

    from app import api, cli, web

    web.init_app(app)
    rest = api.init_app(app)
    cli.init_app(app)
    for name in app.config.get("DOMAIN_PACKAGES", []):
        importlib.import_module(name).init_app(app, rest)
    api.finish(app, rest)
    return app
