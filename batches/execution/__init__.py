"""batches.execution: master batch records (recipes), materials, and electronic batch record execution."""
from __future__ import annotations

from typing import Any

_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register this part's views, API blueprints, permissions, signals, CLI commands and demo data."""
    global _signals_connected
    from app.shell import register_demo_data, register_nav
    from batches.execution import permissions  # noqa: F401  (declares the permissions)
    from batches.execution import api as rest
    from batches.execution import cli, views
    from batches.execution.demo import create_demo_data
    from batches.execution.exceptions import connect_equipment_signals

    if not _signals_connected:
        connect_equipment_signals()
        _signals_connected = True
    app.register_blueprint(views.bp)
    for blp in rest.BLUEPRINTS:
        api.register_blueprint(blp)
    app.cli.add_command(cli.recipes_cli)
    register_nav("Batches", "execution.batch_list", "batches.view", "My batches, what is due today, step runner", 20)
    register_nav("Start a batch", "execution.batch_start", "batches.start", "From an accepted cord blood unit", 21)
    register_nav("Recipes", "execution.recipe_list", "recipes.view", "Master batch records and approval", 30)
    register_nav("Materials", "execution.material_list", "materials.view", "Material lots, expiry and QC status", 31)
    register_nav("Deviations", "execution.deviation_list", "deviations.view", "Open and closed deviations", 32)
    register_demo_data(create_demo_data)
