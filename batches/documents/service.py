"""What the pages and the API share: look up the thing to label, print it, answer with the PDF."""
from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy import select

from app import db
from app.errors import NotFound
from batches.documents import coa, labels
from batches.documents.models import LabelPrint
from batches.documents.store import document_versions, get_document
from batches.quality import operations as quality_ops
from batches.quality.models import QcSample
from batches.sourcing import operations as sourcing_ops


def pdf_response(content: bytes, filename: str, *, download: bool = True) -> Response:
    response = Response(content, mimetype="application/pdf")
    disposition = "attachment" if download else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def print_label(kind: str, subject_id: int, page_size: str | None, reason: str | None) -> Response:
    sess = db.session
    if kind == "bag":
        pdf, row = labels.print_bag_label(sess, quality_ops.get_unit(sess, subject_id), page_size, reason)
    elif kind == "cbu":
        pdf, row = labels.print_cbu_label(sess, sourcing_ops.get_unit(sess, subject_id), page_size, reason)
    else:
        sample = sess.get(QcSample, subject_id)
        if sample is None:
            raise NotFound("There is no such QC sample.")
        pdf, row = labels.print_sample_label(sess, sample, page_size, reason)
    return pdf_response(pdf, labels.label_filename(row.identifier, row.page_size))


def prints_of(kind: str, subject_id: int) -> list[LabelPrint]:
    return list(db.session.execute(select(LabelPrint).where(
        LabelPrint.label_kind == kind, LabelPrint.subject_id == subject_id).order_by(LabelPrint.id)).scalars())


def coa_response(lot_id: int, version: int | None = None) -> Response:
    lot = quality_ops.get_lot(db.session, lot_id)
    doc = get_document(db.session, coa.KIND, lot.lot_number, version)
    return pdf_response(doc.content, doc.filename)


def coa_versions(lot: Any) -> list[Any]:
    return document_versions(db.session, coa.KIND, lot.lot_number)
