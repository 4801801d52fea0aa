"""batches.execution."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register this part's views, API blueprints, permissions and CLI commands."""
