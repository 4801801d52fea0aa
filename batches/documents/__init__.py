"""batches.documents: controlled documents (stored versions with SHA-256) and printed labels."""
from __future__ import annotations

from typing import Any

_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register this part's models and signals (views and API blueprints are added as they are built)."""
    global _signals_connected
    from batches.documents import models  # noqa: F401
    from batches.documents.coa import on_lot_disposition_changed, on_lot_results_changed
    from batches.quality.signals import lot_disposition_changed, lot_results_changed

    if not _signals_connected:
        lot_disposition_changed.connect(on_lot_disposition_changed)
        lot_results_changed.connect(on_lot_results_changed)
        _signals_connected = True
