"""Pages of batches.documents: print or reprint a label (a PDF download), download a certificate."""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.errors import NotFound
from app.permissions import require
from app.web import form_value
from batches.documents import service

bp = Blueprint("documents", __name__)
LABEL_KINDS = {"units": "bag", "cord-blood-units": "cbu", "samples": "sample"}


@bp.route("/documents/<what>/<int:subject_id>/label", methods=["POST"])
@require("labels.print")
def label_print(what: str, subject_id: int) -> Any:
    if what not in LABEL_KINDS:
        raise NotFound("There is no such kind of label.")
    return service.print_label(LABEL_KINDS[what], subject_id, form_value("page_size") or None,
                               form_value("reason") or None)


@bp.route("/documents/lots/<int:lot_id>/coa")
@bp.route("/documents/lots/<int:lot_id>/coa/v<int:version>")
@require("documents.view")
def lot_coa(lot_id: int, version: int | None = None) -> Any:
    return service.coa_response(lot_id, version)
