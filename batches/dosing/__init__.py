"""batches.dosing: pseudonymous patients, their weights and the versioned dosing regimens; dose
availability from released bags and projection from batches in progress."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register this part's permissions, views, API blueprints and demo data."""
    from app.shell import register_demo_data
    from batches.dosing import permissions  # noqa: F401  (declares the permissions)
    from batches.dosing import api as rest
    from batches.dosing.demo import create_demo_data

    for blp in rest.BLUEPRINTS:
        api.register_blueprint(blp)
    register_demo_data(create_demo_data)
