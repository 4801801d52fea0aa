"""batches.documents: controlled documents (stored versions with SHA-256) and printed labels."""
from __future__ import annotations

from typing import Any

_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register this part's models, permissions, signals, pages and API blueprints."""
    global _signals_connected
    from batches.documents import models, permissions  # noqa: F401
    from batches.documents import api as rest
    from batches.documents import service, views
    from batches.documents import batch_record, batch_record_web, labels
    from batches.documents.coa import on_lot_disposition_changed, on_lot_results_changed
    from batches.documents.coa import configure as configure_coa
    from batches.quality.signals import lot_disposition_changed, lot_results_changed

    configure_coa(app.config.get("SITE_TIMEZONE") or "UTC")
    if not _signals_connected:
        lot_disposition_changed.connect(on_lot_disposition_changed)
        lot_results_changed.connect(on_lot_results_changed)
        lot_disposition_changed.connect(batch_record.on_lot_disposition_changed)
        _signals_connected = True
    app.register_blueprint(views.bp)
    for blp in rest.BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(batch_record_web.bp)
    api.register_blueprint(batch_record_web.api_blp)
    app.jinja_env.globals["label_prints"] = service.prints_of
    app.jinja_env.globals["coa_versions"] = service.coa_versions
    app.jinja_env.globals["label_sizes"] = lambda: list(labels.label_sizes())
