"""Download of the executed batch record: a button on the batch page and the lot review page, and REST
endpoints returning application/pdf with a filename naming the lot."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint

from app import db
from app.permissions import require
from batches.documents.batch_record import served_batch_record

bp = Blueprint("batch_record", __name__)
PDF_RESPONSE = {"description": "The executed batch record (the archived copy once the lot was dispositioned)",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                "headers": {"Content-Disposition": {"description": "attachment; filename naming the lot",
                                                    "schema": {"type": "string"}},
                            "X-Document-SHA256": {"description": "SHA-256 of the PDF file",
                                                  "schema": {"type": "string"}}}}
api_blp = ApiBlueprint("batch_record_api", __name__, url_prefix="/api/v1",
                       description="Executed batch records as PDF")


def _pdf_response(batch: Any) -> Response:
    served = served_batch_record(db.session, batch)
    response = Response(served.content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{served.filename}"'
    response.headers["X-Document-SHA256"] = served.sha256
    if served.archived_version is not None:
        response.headers["X-Document-Version"] = str(served.archived_version)
    return response


def _batch(batch_id: int) -> Any:
    from batches.execution import operations as ops

    return ops.get_batch(db.session, batch_id)


def _batch_of_lot(lot_id: int) -> Any:
    from batches.quality import operations as quality

    return quality.get_lot(db.session, lot_id).batch


@bp.route("/batches/<int:batch_id>/batch-record.pdf")
@require("batches.view")
def batch_record_download(batch_id: int) -> Any:
    return _pdf_response(_batch(batch_id))


@bp.route("/quality/lots/<int:lot_id>/batch-record.pdf")
@require("batches.view")
def lot_batch_record_download(lot_id: int) -> Any:
    return _pdf_response(_batch_of_lot(lot_id))


@api_blp.route("/batches/<int:batch_id>/batch-record")
class BatchRecordOfBatch(MethodView):
    @require("batches.view")
    @api_blp.doc(responses={200: PDF_RESPONSE})
    def get(self, batch_id: int) -> Any:
        """The executed batch record of a batch as PDF."""
        return _pdf_response(_batch(batch_id))


@api_blp.route("/lots/<int:lot_id>/batch-record")
class BatchRecordOfLot(MethodView):
    @require("batches.view")
    @api_blp.doc(responses={200: PDF_RESPONSE})
    def get(self, lot_id: int) -> Any:
        """The executed batch record of a lot as PDF."""
        return _pdf_response(_batch_of_lot(lot_id))
