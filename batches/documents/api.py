"""REST API for controlled documents: certificates of analysis and labels, answered as application/pdf."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from app import db
from app.permissions import require
from app.schemas import Schema
from batches.documents import service
from batches.quality import operations as quality_ops

PREFIX = "/api/v1"
documents_blp = Blueprint("documents_api", __name__, url_prefix=f"{PREFIX}/documents",
                          description="Controlled documents (certificates of analysis) and labels, as PDF")
BLUEPRINTS = [documents_blp]
PDF = {"schema": {"type": "string", "format": "binary"}, "content_type": "application/pdf",
       "description": "The PDF, with a Content-Disposition filename naming the lot or identifier"}


class VersionSchema(Schema):
    version = ma.fields.Integer()
    reason = ma.fields.String(allow_none=True)
    filename = ma.fields.String()
    sha256 = ma.fields.String()
    created_at = ma.fields.DateTime()
    created_by = ma.fields.String()


class LabelRequestSchema(Schema):
    page_size = ma.fields.String(load_default=None, metadata={"description": "Label stock, e.g. 4x4 or 2x1"})
    reason = ma.fields.String(load_default=None, metadata={"description": "Required for a reprint"})


class VersionQuerySchema(Schema):
    version = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1))


@documents_blp.route("/lots/<int:lot_id>/coa")
class LotCoa(MethodView):
    @require("documents.view")
    @documents_blp.arguments(VersionQuerySchema, location="query")
    @documents_blp.alt_response(200, success=True, **PDF)
    def get(self, args: dict[str, Any], lot_id: int) -> Any:
        """The lot's certificate of analysis (the latest version, or ?version=n)."""
        return service.coa_response(lot_id, args["version"])


@documents_blp.route("/lots/<int:lot_id>/coa/versions")
class LotCoaVersions(MethodView):
    @require("documents.view")
    @documents_blp.response(200, VersionSchema(many=True))
    def get(self, lot_id: int) -> Any:
        """Every version of the lot's certificate of analysis, oldest first, with its reason and SHA-256."""
        return service.coa_versions(quality_ops.get_lot(db.session, lot_id))


def _label_route(path: str, kind: str, what: str) -> None:
    class LabelPrintResource(MethodView):
        @require("labels.print")
        @documents_blp.arguments(LabelRequestSchema)
        @documents_blp.alt_response(200, success=True, **PDF)
        def post(self, data: dict[str, Any], subject_id: int) -> Any:
            return service.print_label(kind, subject_id, data["page_size"], data["reason"])

    LabelPrintResource.post.__doc__ = (f"Print the {what} label (recorded; a reprint needs a reason). "
                                       "A bag label is refused until its lot is released.")
    LabelPrintResource.__name__ = f"{kind.title()}Label"
    documents_blp.route(path)(LabelPrintResource)


_label_route("/product-units/<int:subject_id>/label", "bag", "infusion bag")
_label_route("/cord-blood-units/<int:subject_id>/label", "cbu", "cord blood unit")
_label_route("/samples/<int:subject_id>/label", "sample", "QC sample")
