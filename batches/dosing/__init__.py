"""batches.dosing: pseudonymous patients, their weights and the versioned dosing regimens; dose
availability from released bags and projection from batches in progress."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Nothing registered yet beyond the models (pages and API follow)."""
