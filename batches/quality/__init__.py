"""batches.quality: final product units (infusion bags) and their chain of identity, versioned release
specifications, and each lot's quality record."""
from __future__ import annotations

from typing import Any

_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register this part's views, API blueprints, permissions, signals and demo data."""
    global _signals_connected
    from app.shell import register_demo_data, register_nav, register_service
    from batches.execution.signals import step_completed
    from batches.quality import permissions  # noqa: F401  (declares the permissions)
    from batches.quality import api as rest
    from batches.quality import cli, views
    from batches.quality.demo import create_demo_data
    from batches.quality.operations import on_step_completed
    from batches.quality.review import on_oos_opened
    from batches.quality.signals import oos_opened

    if not _signals_connected:
        step_completed.connect(on_step_completed)
        oos_opened.connect(on_oos_opened)
        _signals_connected = True
    app.register_blueprint(views.bp)
    app.jinja_env.globals["lot_quality"] = views.lot_quality
    for blp in rest.BLUEPRINTS:
        api.register_blueprint(blp)
    register_nav("Lots and bags", "quality.lot_list", "lots.view", "Lots under QC, infusion bags, scan a bag", 40)
    register_nav("OOS investigations", "quality.investigation_list", "lots.view",
                 "Out-of-specification results and their investigation", 42)
    register_nav("Specifications", "quality.specification_list", "specifications.view",
                 "Release specifications and QA approval", 41)
    register_demo_data(create_demo_data)
    app.jinja_env.globals["inbox_unread"] = views.inbox_unread
    register_service("mail", _run_mail_service)
    app.cli.add_command(cli.quality_cli)


def _run_mail_service() -> None:
    from flask import current_app

    from batches.quality.notifications import run_mail_service

    run_mail_service(current_app._get_current_object())
