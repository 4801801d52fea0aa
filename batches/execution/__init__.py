"""batches.execution: master batch records (recipes), materials, and electronic batch record execution."""
from __future__ import annotations

from typing import Any

_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register this part's views, API blueprints, permissions, signals, CLI commands and demo data."""
    global _signals_connected
    from app.shell import register_demo_data, register_demo_records, register_nav
    from batches.execution import permissions  # noqa: F401  (declares the permissions)
    from batches.execution import api as rest
    from batches.execution import cli, views
    from batches.execution.demo import create_demo_batches, create_demo_data
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
    register_demo_records(create_demo_batches)
    _register_record_names()


def _register_record_names() -> None:
    """Pages name batches by lot number, steps by lot and position, deviations by number."""
    from app.shell import register_record_name
    from batches.execution.models import Batch, BatchStep, Deviation, MaterialLot, Recipe

    def named(model: Any, name: Any) -> Any:
        def lookup(sess: Any, record_id: str) -> str | None:
            record = sess.get(model, int(record_id)) if record_id.isdigit() else None
            return None if record is None else name(record)
        return lookup

    register_record_name("batch", named(Batch, lambda b: f"batch {b.lot_number}"))
    register_record_name("batch_step", named(BatchStep, lambda s: f"batch {s.batch.lot_number} step {s.position} "
                                                                  f"({s.title})"))
    register_record_name("deviation", named(Deviation, lambda d: f"deviation {d.number}"))
    register_record_name("recipe", named(Recipe, lambda r: f"recipe {r.label}"))
    register_record_name("material_lot", named(MaterialLot, lambda m: f"lot {m.lot_number} of {m.material.code}"))
