"""The application core: create_app, and the pieces every domain package uses."""
from __future__ import annotations

import importlib
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from app import db


class RecordIdConverter(IntegerConverter):
    """``<int:...>`` in every route, bounded to what an integer key column can hold: a larger number is a
    404 from the router instead of an overflow in the database driver."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # noqa: A002, ANN001
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_app(config_object: Any = None) -> Flask:
    """Build the Flask app: database session, login, CSRF, web shell, API, CLI, then the domains."""
    from config import Config

    app = Flask(__name__, template_folder="../templates", static_folder="static",
                instance_path=str(__import__("config")._instance_dir()))
    app.config.from_object(config_object if config_object is not None else Config())
    app.url_map.converters["int"] = RecordIdConverter  # before any route is added

    from app.users import configure_hasher, configure_policy

    configure_hasher(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST"],
                     app.config["ARGON2_PARALLELISM"])
    configure_policy(app.config["PASSWORD_MIN_LENGTH"], app.config["PASSWORD_HISTORY"],
                     app.config["LOCKOUT_THRESHOLD"])
    from app import numbers

    numbers.configure(app.config["DECIMAL_SEPARATOR"])
    db.bind_session(app.config["DATABASE_URL"])

    from app import api, cli, web

    web.init_app(app)
    rest = api.init_app(app)
    cli.init_app(app)
    for name in app.config.get("DOMAIN_PACKAGES", []):
        importlib.import_module(name).init_app(app, rest)
    api.finish(app, rest)
    cli.finish(app)
    return app
