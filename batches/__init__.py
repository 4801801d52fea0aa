"""The batches domain: sourcing (cord blood units), recipes and batch execution, quality, dosing."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register each part's views, API blueprints, permissions and CLI commands."""
    from batches import documents, dosing, execution, quality, sourcing
    from batches.dosing import care_views as dosing_care

    sourcing.init_app(app, api)
    execution.init_app(app, api)
    quality.init_app(app, api)
    dosing.init_app(app, api)
    dosing_care.init_app(app, api)
    documents.init_app(app, api)
