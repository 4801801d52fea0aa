"""batches.documents: controlled documents (stored versions with SHA-256) and printed labels."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register this part's models (views and API blueprints are added as they are built)."""
    from batches.documents import models  # noqa: F401
