"""Labels for bags, cord blood units and QC samples: one label per PDF page, sized for the label stock.

Each label carries its identifier as a Code 128 barcode and a DataMatrix, the eye-readable identifier
(a DIN with its ISBT 128 check character in a box), and the product facts a labelling specialist checks:
product, lot, volume, viable cells, expiry, storage, intended use, and the donor-eligibility statements
of 21 CFR 1271 (the biohazard legend and "Advise patient of communicable disease risks" for an ineligible
donor, "Not evaluated for infectious substances" while eligibility is incomplete). No patient data is
ever printed. A bag label is refused until its lot is released or conditionally released; every print
and reprint is kept in ``label_print`` and the audit trail, and a reprint needs a reason.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from reportlab.lib.units import inch
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, ReasonRequired, ValidationFailed
from app.web import format_cells, format_number, site_time
from batches.documents.barcodes import code128, draw_datamatrix
from batches.documents.models import LabelPrint
from batches.sourcing.isbt128 import check_character
from batches.sourcing.models import ELIGIBLE, INELIGIBLE, CordBloodUnit
from batches.quality.models import FinalProductUnit, QcSample, QualityLot

DEFAULT_SIZES = {"4x4": (4.0, 4.0), "4x2": (4.0, 2.0), "2x1": (2.0, 1.0)}
LABELLABLE_LOT_STATUSES = ("released", "conditionally_released")
BIOHAZARD = "BIOHAZARD"
ADVISE_RISK = "WARNING: Advise patient of communicable disease risks"
NOT_EVALUATED = "NOT EVALUATED FOR INFECTIOUS SUBSTANCES"


@dataclass
class LabelContent:
    """What one label shows: the identifier (barcoded), a title, lines of fields, and statements."""

    kind: str
    subject_id: int
    identifier: str
    title: str
    din: str | None = None  # printed eye-readable with its boxed check character
    fields: list[tuple[str, str]] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


def label_sizes() -> dict[str, tuple[float, float]]:
    if has_app_context():
        return current_app.config.get("LABEL_SIZES", DEFAULT_SIZES)
    return DEFAULT_SIZES


def default_size() -> str:
    return current_app.config.get("LABEL_DEFAULT_SIZE", "4x4") if has_app_context() else "4x4"


def _page_size(name: str | None) -> tuple[str, tuple[float, float]]:
    name = name or default_size()
    sizes = label_sizes()
    if name not in sizes:
        raise ValidationFailed(f"There is no label size {name!r}.",
                               errors={"page_size": [f"Choose one of: {', '.join(sizes)}."]})
    width, height = sizes[name]
    return name, (width * inch, height * inch)


def _when(value: datetime | None) -> str:
    return site_time(value, "%Y-%m-%d %H:%M %Z") if value is not None else ""


def _eligibility_statements(unit: CordBloodUnit) -> list[str]:
    if unit.eligibility == INELIGIBLE:
        return [BIOHAZARD, ADVISE_RISK]
    if unit.eligibility != ELIGIBLE:
        return [NOT_EVALUATED]
    return []


def bag_content(sess: Session, bag: FinalProductUnit) -> LabelContent:
    cbu = sess.get(CordBloodUnit, bag.cord_blood_unit_id)
    statements = ["For allogeneic use only", "Rx only. Do not irradiate. Do not use a leukoreduction filter."]
    statements += _eligibility_statements(cbu) if cbu is not None else [NOT_EVALUATED]
    lot = sess.execute(select(QualityLot).where(QualityLot.batch_id == bag.batch_id)).scalar()
    if lot is not None and lot.status == "conditionally_released":
        statements.append("Conditionally released: release tests pending, see certificate of analysis")
    return LabelContent(
        kind="bag", subject_id=bag.id, identifier=bag.product_identifier, title=bag.product,
        din=bag.cord_blood_din,
        fields=[("Lot", bag.lot_number), ("Division", f"{bag.division:02d}"),
                ("Volume", f"{format_number(bag.volume_ml)} mL" if bag.volume_ml is not None else "not recorded"),
                ("Viable cells", format_cells(bag.viable_cells)),
                ("Expiry", _when(bag.expires_at)), ("Storage", bag.storage_condition)],
        statements=statements)


def cbu_content(unit: CordBloodUnit) -> LabelContent:
    return LabelContent(
        kind="cbu", subject_id=unit.id, identifier=unit.din, title=f"Cord blood unit {unit.product_code}",
        din=unit.din,
        fields=[("Bank", unit.source_bank), ("Collected", unit.collection_date.isoformat()),
                ("Volume", f"{format_number(unit.volume_ml)} mL"), ("TNC", format_cells(unit.tnc_cells)),
                ("ABO/Rh", unit.abo_rh), ("Storage", "At or below -150 C (vapour phase LN2)")],
        statements=["For further manufacturing use only"] + _eligibility_statements(unit))


def sample_content(sess: Session, sample: QcSample) -> LabelContent:
    lot = sess.get(QualityLot, sample.lot_id)
    return LabelContent(
        kind="sample", subject_id=sample.id, identifier=sample.sample_identifier, title=f"QC sample: {sample.sample_type}",
        din=lot.batch.cord_blood_din if lot is not None else None,
        fields=[("Lot", lot.lot_number if lot is not None else ""), ("Time point", sample.time_point),
                ("Tests", ", ".join(sample.test_keys) or "as requested"), ("Drawn", _when(sample.drawn_at))],
        statements=["For QC testing only. Not for human use.", BIOHAZARD])


def render_label(content: LabelContent, page_size: str | None = None) -> bytes:
    """The label as a one-page PDF; the same content and size give the same bytes."""
    _, (width, height) = _page_size(page_size)
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(width, height), invariant=1, pageCompression=0)
    canvas.setTitle(f"Label {content.identifier}")
    canvas.setAuthor("NK MES")
    small = height < 2 * inch
    margin = 0.06 * inch if small else 0.15 * inch
    if small:
        _draw_small(canvas, content, width, height, margin)
    else:
        _draw_large(canvas, content, width, height, margin)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _boxed_din(canvas: Canvas, din: str, x: float, y: float, size: float) -> None:
    text = f"{din[:5]} {din[5:7]} {din[7:]}"
    canvas.setFont("Helvetica-Bold", size)
    canvas.drawString(x, y, text)
    box_x = x + canvas.stringWidth(text + " ", "Helvetica-Bold", size)
    char = check_character(din)
    box = size * 1.15
    canvas.setLineWidth(0.8)
    canvas.rect(box_x, y - size * 0.2, box, box, stroke=1, fill=0)
    canvas.drawCentredString(box_x + box / 2, y, char)


def _is_din(value: str | None) -> bool:
    try:
        return value is not None and len(value) == 13 and bool(check_character(value))
    except ValueError:
        return False


def _draw_large(canvas: Canvas, content: LabelContent, width: float, height: float, margin: float) -> None:
    top = height - margin
    canvas.setFont("Helvetica-Bold", 13)
    canvas.drawString(margin, top - 12, content.title[:40])
    bar_height = 0.45 * inch
    bar = code128(content.identifier, width - 2 * margin, bar_height)
    bar.drawOn(canvas, margin + (width - 2 * margin - bar.width) / 2, top - 20 - bar_height)
    canvas.setFont("Courier-Bold", 9)
    canvas.drawCentredString(width / 2, top - 30 - bar_height, content.identifier)
    y = top - 46 - bar_height
    if _is_din(content.din):
        canvas.setFont("Helvetica", 7)
        canvas.drawString(margin, y + 9, "Cord blood unit DIN")
        _boxed_din(canvas, content.din, margin, y - 3, 11)
        y -= 20
    matrix = min(1.1 * inch, height * 0.3)
    draw_datamatrix(canvas, content.identifier, width - margin - matrix, margin + 2, matrix)
    text_right = width - 2 * margin - matrix
    for name, value in content.fields:
        canvas.setFont("Helvetica", 8)
        canvas.drawString(margin, y, f"{name}:")
        canvas.setFont("Helvetica-Bold", 9)
        canvas.drawString(margin + 0.8 * inch, y, str(value)[:48])
        y -= 11
    y -= 3
    for statement in content.statements:
        bold = statement in (BIOHAZARD, ADVISE_RISK, NOT_EVALUATED)
        size = 9 if bold else 7.5
        canvas.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        limit = text_right if y < margin + matrix + 4 else width - 2 * margin
        for line in _wrap(canvas, statement, "Helvetica-Bold" if bold else "Helvetica", size, limit):
            canvas.drawString(margin, y, line)
            y -= size + 2


def _draw_small(canvas: Canvas, content: LabelContent, width: float, height: float, margin: float) -> None:
    """Small stock: the Code 128 across the full width on top, the DataMatrix below with the key text."""
    bar_height = height * 0.28
    bar = code128(content.identifier, width - 2 * margin, bar_height)
    bar.drawOn(canvas, margin + (width - 2 * margin - bar.width) / 2, height - margin - bar_height)
    y = height - margin - bar_height - 6
    canvas.setFont("Courier-Bold", 5.5)
    canvas.drawCentredString(width / 2, y, content.identifier[:48])
    matrix = y - 2 - margin
    draw_datamatrix(canvas, content.identifier, margin, margin, matrix)
    left = 2 * margin + matrix
    lines = [content.title] + [f"{n}: {v}" for n, v in content.fields[:3]]
    lines += [s for s in content.statements if s in (BIOHAZARD, ADVISE_RISK, NOT_EVALUATED)]
    for line in lines:
        y -= 6
        if y < margin:
            break
        canvas.setFont("Helvetica", 5)
        canvas.drawString(left, y, line[:44])


def _wrap(canvas: Canvas, text: str, font: str, size: float, width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and canvas.stringWidth(candidate, font, size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return lines + ([current] if current else [])


# --- printing (recorded) ------------------------------------------------------------------------------

def previous_prints(sess: Session, kind: str, subject_id: int) -> int:
    return sess.execute(select(func.count()).select_from(LabelPrint).where(
        LabelPrint.label_kind == kind, LabelPrint.subject_id == subject_id)).scalar_one()


def _record_print(sess: Session, content: LabelContent, page_size: str | None, reason: str | None) -> tuple[bytes, LabelPrint]:
    size_name, _ = _page_size(page_size)
    reason = (reason or "").strip() or None
    reprint = previous_prints(sess, content.kind, content.subject_id) > 0
    if reprint and reason is None:
        raise ReasonRequired(f"The label of {content.identifier} was printed before: say why it is reprinted.",
                             errors={"reason": ["Give the reason for the reprint (damaged, unreadable, ...)."]})
    pdf = render_label(content, size_name)
    with audit_reason(sess, reason):
        row = LabelPrint(label_kind=content.kind, subject_id=content.subject_id, identifier=content.identifier,
                         page_size=size_name, reprint=reprint, reprint_reason=reason if reprint else None,
                         printed_at=utcnow(), printed_by=current_actor().username,
                         sha256=hashlib.sha256(pdf).hexdigest())
        sess.add(row)
    return pdf, row


def print_bag_label(sess: Session, bag: FinalProductUnit, page_size: str | None = None,
                    reason: str | None = None) -> tuple[bytes, LabelPrint]:
    """The bag's label, refused unless its lot is released or conditionally released."""
    if bag.is_voided:
        raise Conflict(f"{bag.product_identifier} was replaced and is no longer a product unit: no label.")
    lot = sess.execute(select(QualityLot).where(QualityLot.batch_id == bag.batch_id)).scalar()
    status = lot.status if lot is not None else "in_testing"
    if status not in LABELLABLE_LOT_STATUSES:
        shown = status.replace("_", " ")
        raise Conflict(f"No label for {bag.product_identifier}: lot {bag.lot_number} is {shown}. "
                       "A bag label is printed only once QA has released (or conditionally released) the lot.")
    return _record_print(sess, bag_content(sess, bag), page_size, reason)


def print_cbu_label(sess: Session, unit: CordBloodUnit, page_size: str | None = None,
                    reason: str | None = None) -> tuple[bytes, LabelPrint]:
    return _record_print(sess, cbu_content(unit), page_size, reason)


def print_sample_label(sess: Session, sample: QcSample, page_size: str | None = None,
                       reason: str | None = None) -> tuple[bytes, LabelPrint]:
    if sample.is_voided:
        raise Conflict(f"Sample {sample.sample_identifier} was voided: no label.")
    return _record_print(sess, sample_content(sess, sample), page_size, reason)


def label_filename(content_or_identifier: Any, page_size: str) -> str:
    ident = getattr(content_or_identifier, "identifier", content_or_identifier)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(ident))
    return f"label-{safe}-{page_size}.pdf"
