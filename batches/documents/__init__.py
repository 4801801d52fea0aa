"""batches.documents: controlled documents (stored versions with SHA-256) and printed labels."""
from __future__ import annotations

from typing import Any


def init_app(app: Any, api: Any) -> None:
    """Register this part's models (views and API blueprints are added as they are built)."""
    from batches.documents import models  # noqa: F401
    from batches.documents import batch_record, batch_record_web
    from batches.quality.signals import lot_disposition_changed

    lot_disposition_changed.connect(batch_record.on_lot_disposition_changed)  # one receiver, however many apps
    app.register_blueprint(batch_record_web.bp)
    api.register_blueprint(batch_record_web.api_blp)
