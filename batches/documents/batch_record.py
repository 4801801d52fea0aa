"""The executed batch record as a PDF (21 CFR 211.188), read from the database on request.

Content in the order QA reads it: cover, phases and steps with their entries and corrections (Annex 11
8.2: an original value is printed struck through next to the value that replaced it), signatures
manifested per Part 11 section 11.50 (a signature whose record changed after signing is printed as
such, never as valid), materials, equipment with calibration at use, the growth chart and a telemetry
chart per occupied incubator and bioreactor, exceptions and their review decisions, deviations, QC
results against the specification, OOS investigations and the disposition.

Every page carries the lot, the product, "page x of y", the generation time and, while the lot is not
released, a "NOT RELEASED" marking. The last page states the record hash: the SHA-256 of the record's
content (every text printed before the hash page, one line per cell, in print order, UTF-8, lines joined
by a newline). The PDF is deterministic: reportlab's invariant mode, and the creation date and the
generation time printed are the record's last change, so two renders of the same data are identical.

Tables are split per step and per section (never one table over many pages), which keeps the layout
time linear in the size of the record.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterable
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import TimeStamp
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.signatures import Signature, signature_status
from app.web import format_number
from batches.execution.models import Batch

PAGE = A4
MARGIN = 15 * mm
FRAME_WIDTH = PAGE[0] - 2 * MARGIN
RELEASED_STATUSES = ("released", "conditionally_released")
HASH_DEFINITION = ("Record hash: SHA-256 of the record's content printed on the pages before this one "
                   "(every text in print order, one line per cell, UTF-8, lines joined by a newline).")

_BASE = ParagraphStyle("record", fontName="Helvetica", fontSize=8, leading=10)
_BOLD = ParagraphStyle("record-bold", parent=_BASE, fontName="Helvetica-Bold")
_H1 = ParagraphStyle("h1", parent=_BASE, fontName="Helvetica-Bold", fontSize=16, leading=20, spaceAfter=6)
_H2 = ParagraphStyle("h2", parent=_BASE, fontName="Helvetica-Bold", fontSize=12, leading=15, spaceBefore=8,
                     spaceAfter=4)
_H3 = ParagraphStyle("h3", parent=_BASE, fontName="Helvetica-Bold", fontSize=9.5, leading=12, spaceBefore=6,
                     spaceAfter=2)
_TABLE_STYLE = TableStyle([
    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
    ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
])
# The PDF's standard fonts have no glyph for these; print them in plain characters.
_PLAIN = str.maketrans({"≥": ">=", "≤": "<=", "×": "x", "→": "->", "µ": "u", "±": "+/-"})


def _plain(value: Any) -> str:
    return "" if value is None else str(value).translate(_PLAIN)


# --- what the record says, in print order ------------------------------------------------------------

@dataclass
class RecordText:
    """The record being built: the flowables and, for the hash, every text printed, in order."""

    zone: tzinfo
    story: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    latest: datetime | None = None

    def seen(self, *moments: datetime | None) -> None:
        """Keep the record's last change (the creation date and the generation time printed)."""
        for moment in moments:
            if moment is None:
                continue
            moment = _aware(moment)
            if self.latest is None or moment > self.latest:
                self.latest = moment

    def time(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        self.seen(moment)
        local = _aware(moment).astimezone(self.zone)
        return local.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")

    def heading(self, text: str, style: ParagraphStyle = _H2) -> None:
        self.lines.append(text)
        self.story.append(Paragraph(escape(_plain(text)), style))

    def para(self, text: str, style: ParagraphStyle = _BASE) -> None:
        self.lines.append(text)
        self.story.append(Paragraph(escape(_plain(text)), style))

    def table(self, header: list[str], rows: list[list[Any]], widths: list[float], keep: bool = False) -> None:
        """One table (of one step or one section); a cell is a str or a Cell with markup."""
        data = [[Paragraph(escape(_plain(h)), _BOLD) for h in header]]
        self.lines.append("\t".join(header))
        for row in rows:
            cells = []
            texts = []
            for value in row:
                if isinstance(value, Cell):
                    cells.append(Paragraph(value.markup, _BASE))
                    texts.append(value.text)
                else:
                    text = _plain(value)
                    cells.append(Paragraph(escape(text), _BASE))
                    texts.append(text)
            data.append(cells)
            self.lines.append("\t".join(texts))
        total = sum(widths)
        table = Table(data, colWidths=[FRAME_WIDTH * w / total for w in widths], repeatRows=1)
        table.setStyle(_TABLE_STYLE)
        self.story.append(KeepTogether([table]) if keep else table)
        self.story.append(Spacer(1, 3))

    def drawing(self, drawing: Any, strings: Iterable[str]) -> None:
        self.lines.extend(strings)
        self.story.append(drawing)
        self.story.append(Spacer(1, 4))


@dataclass
class Cell:
    """A table cell with markup (e.g. a struck-through original value) and its plain text for the hash."""

    markup: str
    text: str


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _site_zone() -> tzinfo:
    from flask import current_app, has_app_context

    name = current_app.config.get("SITE_TIMEZONE") if has_app_context() else None
    return ZoneInfo(name) if name else timezone.utc


def _signatures_by_record(sess: Session, table: str, records: dict[str, Any]) -> dict[str, list[Any]]:
    """Every signature (voided ones too) on the given records of one table, with its status, oldest first."""
    found: dict[str, list[Any]] = {key: [] for key in records}
    if not records:
        return found
    keys = list(records)
    for first in range(0, len(keys), 500):
        chunk = keys[first:first + 500]
        for sig in sess.execute(select(Signature).where(Signature.record_table == table,
                                                        Signature.record_id.in_(chunk))
                                .order_by(Signature.id)).scalars():
            found[sig.record_id].append((sig, signature_status(records[sig.record_id], sig)))
    return found


def _signature_rows(out: RecordText, signed: list[tuple[Signature, str]]) -> list[list[Any]]:
    rows = []
    for sig, status in signed:
        if status == "valid":
            state = Cell("valid", "valid")
        else:
            word = status.upper()
            if status == "voided":
                word = f"VOIDED {out.time(sig.voided_at)}: {sig.void_reason or ''}"
            state = Cell(f"<font color='#b00000'><b>{escape(_plain(word))}</b></font>", word)
        rows.append([sig.meaning_label, f"{sig.signer_full_name} ({sig.signer_username})", out.time(sig.signed_at),
                     sig.comment or "", state])
    return rows


def _signatures(out: RecordText, signed: list[tuple[Signature, str]], what: str) -> None:
    if not signed:
        out.para(f"No signature on {what}.")
        return
    out.table(["Meaning", "Printed name (user ID)", "Date and time", "Comment", "Signature status"],
              _signature_rows(out, signed), [2.2, 3.2, 3.4, 3.6, 2.6])


def _entry_value(entry: Any) -> str:
    if entry.value_number is not None and entry.entry_type in ("number", "cells", "calculation", "numeric"):
        return format_number(entry.value_number)
    if entry.material_lot is not None:
        quantity = f", quantity {format_number(entry.quantity)}" if entry.quantity is not None else ""
        return f"{entry.material_lot.material.name} lot {entry.material_lot.lot_number}{quantity}"
    return entry.value_text


def _lot_of(sess: Session, batch: Batch) -> Any:
    from batches.quality.models import QualityLot

    return sess.execute(select(QualityLot).where(QualityLot.batch_id == batch.id)).scalar()


# --- the sections --------------------------------------------------------------------------------------

def _cover(sess: Session, out: RecordText, batch: Batch, lot: Any, dispositions: list[Any],
           disposition_signatures: dict[str, list[Any]]) -> None:
    from batches.sourcing.models import CordBloodUnit

    unit = sess.get(CordBloodUnit, batch.cord_blood_unit_id)
    out.heading(f"Executed batch record {batch.lot_number}", _H1)
    recipe = batch.recipe
    status = lot.status if lot is not None else batch.status
    rows = [
        ["Product", batch.product],
        ["Lot", batch.lot_number],
        ["Master batch record (recipe)", f"{recipe.name} ({recipe.code}, version {recipe.version})"],
        ["Cord blood unit DIN", batch.cord_blood_din + (f" (unit status {unit.status})" if unit is not None else "")],
        ["Started", f"{out.time(batch.started_at)} by {batch.started_by}"],
        ["Completed", out.time(batch.completed_at) or "not completed"],
        ["Batch status", batch.status.replace("_", " ")],
        ["Lot disposition", status.replace("_", " ")],
    ]
    if batch.exceptional_release:
        rows.append(["Exceptional release", "the cord blood unit was released for use outside specification"])
    for disposition in dispositions:
        signers = "; ".join(f"{s.signer_full_name}, {s.meaning_label.lower()} {out.time(s.signed_at)} "
                            f"({st if st != 'valid' else 'signature valid'})"
                            for s, st in disposition_signatures.get(str(disposition.id), []))
        rows.append(["Disposition signed", f"{disposition.decision.replace('_', ' ')}: {signers or 'not signed'}"])
    out.table(["Item", "Value"], rows, [1, 2.6])


def _steps(sess: Session, out: RecordText, batch: Batch) -> None:
    from batches.execution import operations as ops
    from batches.execution.limits import limits_text
    from batches.execution.recipes import entry_specs

    specs = entry_specs(batch.recipe)
    entries = ops.batch_entries(sess, batch)
    by_step: dict[int, list[Any]] = {}
    for entry in entries:
        by_step.setdefault(entry.step_id, []).append(entry)
    steps = list(batch.steps)
    step_signatures = _signatures_by_record(sess, "batch_step", {str(s.id): s for s in steps})
    batch_signatures = _signatures_by_record(sess, "batch", {str(batch.id): batch})[str(batch.id)]
    out.heading("Batch record signatures")
    _signatures(out, batch_signatures, "the batch record")
    phase = None
    for step in steps:
        if step.phase_name != phase:
            phase = step.phase_name
            out.story.append(CondPageBreak(60 * mm))
            out.heading(f"Phase: {phase}")
        out.story.append(CondPageBreak(35 * mm))
        out.heading(f"Step {step.position}: {step.title} (planned day {format_number(step.planned_day)}, "
                    f"status {step.status})", _H3)
        out.para(f"Started {out.time(step.started_at) or 'not started'}; performed "
                 f"{out.time(step.performed_at) or 'not yet'}; completed {out.time(step.completed_at) or 'not yet'}.")
        rows = []
        rows_of = by_step.get(step.id, [])
        live = [e for e in rows_of if e.voided_at is None]
        voided = {e.id: e for e in rows_of if e.voided_at is not None}
        for entry in live:
            spec = specs.get(entry.entry_key, {})
            chain = []
            earlier = voided.get(entry.replaces_id) if entry.replaces_id else None
            while earlier is not None:
                chain.append(earlier)
                earlier = voided.get(earlier.replaces_id) if earlier.replaces_id else None
            value = _entry_value(entry)
            if chain:
                struck = " ".join(f"<strike>{escape(_plain(_entry_value(e)))}</strike>" for e in reversed(chain))
                plain = " ".join(f"original {_entry_value(e)} (struck through)" for e in reversed(chain))
                value_cell = Cell(f"{struck} {escape(_plain(value))}", f"{plain} corrected to {value}")
            else:
                value_cell = Cell(escape(_plain(value)), value)
            extra = []
            if entry.comment:
                extra.append(f"comment: {entry.comment}")
            if entry.override_reason:
                extra.append(f"override: {entry.override_reason}")
            if entry.asset_code:
                extra.append(f"equipment {entry.asset_code}")
            rows.append([spec.get("label", entry.entry_key) + ("; " + "; ".join(extra) if extra else ""), value_cell,
                         entry.unit or "", limits_text(spec) if spec else "", entry.limit_class,
                         entry.recorded_by, out.time(entry.occurred_at or entry.recorded_at)])
            for original in reversed(chain):
                rows.append([Cell("<i>correction</i>", "correction"),
                             Cell(f"<strike>{escape(_plain(_entry_value(original)))}</strike>",
                                  f"original {_entry_value(original)} (struck through)"),
                             original.unit or "", f"reason: {original.void_reason or ''}", original.limit_class,
                             f"entered by {original.recorded_by} {out.time(original.recorded_at)}; corrected by "
                             f"{original.voided_by}", out.time(original.voided_at)])
        if rows:
            out.table(["Entry", "Value", "Unit", "Limits", "Limit class", "Entered by", "Entered at"], rows,
                      [3.2, 3.0, 1.1, 2.6, 1.2, 2.0, 2.7])
        else:
            out.para("No entries recorded.")
        _signatures(out, step_signatures[str(step.id)], f"step {step.position}")


def _materials(sess: Session, out: RecordText, batch: Batch) -> None:
    from batches.execution.models import BatchStep, MaterialUsage

    out.story.append(CondPageBreak(40 * mm))
    out.heading("Materials (genealogy)")
    usages = list(sess.execute(select(MaterialUsage).where(MaterialUsage.batch_id == batch.id)
                               .order_by(MaterialUsage.used_at, MaterialUsage.id)).scalars())
    positions = dict(sess.execute(select(BatchStep.id, BatchStep.position).where(BatchStep.batch_id == batch.id)).all())
    rows = []
    for usage in usages:
        lot = usage.material_lot
        rows.append([lot.material.name, lot.lot_number, lot.expiry_date.isoformat(), lot.qc_status,
                     f"{format_number(usage.quantity)} {lot.material.unit}", f"step {positions.get(usage.step_id, '')}",
                     usage.used_by + ("" if usage.voided_at is None else " (voided: corrected)"),
                     out.time(usage.used_at)])
    if rows:
        out.table(["Material", "Lot", "Expiry", "QC status", "Quantity", "Step", "Used by", "Used at"], rows,
                  [3, 2.6, 1.6, 1.5, 1.5, 1.0, 1.8, 2.8])
    else:
        out.para("No material used.")


def _calibration_at(sess: Session, asset_id: int, moment: datetime) -> str:
    from equipment.models import ServiceRecord

    day = _aware(moment).date()
    record = sess.execute(select(ServiceRecord).where(
        ServiceRecord.asset_id == asset_id, ServiceRecord.kind == "calibration", ServiceRecord.voided_at.is_(None),
        ServiceRecord.performed_on <= day).order_by(ServiceRecord.performed_on.desc(), ServiceRecord.id.desc())
        .limit(1)).scalar()
    if record is None:
        return "NO CALIBRATION ON RECORD at use"
    if record.result == "fail":
        return f"CALIBRATION FAILED on {record.performed_on.isoformat()}"
    if record.due_on < day:
        return f"OVERDUE at use (due {record.due_on.isoformat()})"
    return f"calibrated {record.performed_on.isoformat()}, due {record.due_on.isoformat()}: current at use"


def _equipment(sess: Session, out: RecordText, batch: Batch, occupancies: list[Any]) -> None:
    from batches.execution.models import StepEntry
    from equipment.registry import find_asset

    out.story.append(CondPageBreak(40 * mm))
    out.heading("Equipment")
    rows = []
    for occ in occupancies:
        rows.append([occ.asset_code, "occupied by the batch", _calibration_at(sess, occ.asset_id, occ.started_at),
                     out.time(occ.started_at), out.time(occ.ended_at) or "still occupied"])
    occupied = {o.asset_code for o in occupancies}
    scans = sess.execute(select(StepEntry).where(StepEntry.batch_id == batch.id, StepEntry.voided_at.is_(None),
                                                 StepEntry.entry_type == "equipment")
                         .order_by(StepEntry.id)).scalars()
    for entry in scans:
        code = entry.asset_code or entry.value_text
        if code in occupied:
            continue
        asset = find_asset(sess, code)
        moment = entry.occurred_at or entry.recorded_at
        rows.append([code, "used in a step", _calibration_at(sess, asset.id, moment) if asset else "not registered",
                     out.time(moment), ""])
    if rows:
        out.table(["Asset", "Use", "Calibration status at use", "From", "Until"], rows, [2, 2, 4.4, 3, 3])
    else:
        out.para("No equipment recorded.")


def _charts(sess: Session, out: RecordText, batch: Batch, occupancies: list[Any], end_of_record: datetime) -> None:
    from app.charts import drawing_strings
    from batches.execution.growth_chart import growth_chart_drawing
    from equipment.chart import telemetry_chart_drawings
    from equipment.models import Asset

    out.story.append(CondPageBreak(110 * mm))
    out.heading("Growth curve against the expected curve")
    growth = growth_chart_drawing(sess, batch, width=FRAME_WIDTH, height=250, font_size=8)
    if growth is None:
        out.para("No cell count recorded yet.")
    else:
        out.drawing(growth, drawing_strings(growth))
    for occ in occupancies:
        asset = sess.get(Asset, occ.asset_id)
        if asset is None or asset.asset_type not in ("co2_incubator", "rocking_bioreactor", "stirred_bioreactor"):
            continue
        end = occ.ended_at or end_of_record
        out.story.append(CondPageBreak(80 * mm))
        out.heading(f"Telemetry of {asset.code} ({asset.name}) while occupied: {out.time(occ.started_at)} to "
                    f"{out.time(end)}", _H3)
        charts = telemetry_chart_drawings(sess, asset, _aware(occ.started_at), _aware(end), width=FRAME_WIDTH,
                                          height=190, zone=out.zone, font_size=7.5)
        if not charts:
            out.para("No monitored parameter on record for this equipment.")
        for _tag, drawing in charts:
            out.drawing(drawing, drawing_strings(drawing))


def _exceptions(sess: Session, out: RecordText, batch: Batch) -> None:
    from batches.execution.exceptions import exceptions_of, reviews_of

    out.story.append(CondPageBreak(40 * mm))
    out.heading("Exceptions and review decisions")
    rows = [[f"#{e.id}", e.kind_label, e.description, out.time(e.occurred_at),
             (f"{e.reviewed_by} {out.time(e.reviewed_at)}: {e.review_comment}" if e.reviewed_at else
              Cell("<font color='#b00000'><b>not reviewed</b></font>", "not reviewed"))]
            for e in exceptions_of(sess, batch)]
    if rows:
        out.table(["No.", "Kind", "Description", "Occurred", "Review decision"], rows, [0.8, 1.6, 5.2, 2.8, 4.6])
    else:
        out.para("No exception was raised.")
    reviews = reviews_of(sess, batch)
    signed = _signatures_by_record(sess, "exception_review", {str(r.id): r for r in reviews})
    for review in reviews:
        out.para(f"Review decision {review.id} by {review.reviewed_by} at {out.time(review.reviewed_at)}: "
                 f"{review.comment}", _BOLD)
        _signatures(out, signed[str(review.id)], f"review decision {review.id}")


def _deviations(sess: Session, out: RecordText, batch: Batch) -> None:
    from batches.execution.deviations import list_deviations

    out.story.append(CondPageBreak(40 * mm))
    out.heading("Deviations")
    deviations = list_deviations(sess, batch_id=batch.id)
    if not deviations:
        out.para("No deviation.")
    signed = _signatures_by_record(sess, "deviation", {str(d.id): d for d in deviations})
    for dev in deviations:
        out.table(["Deviation", "Title", "Classification", "Status", "Opened", "Closed"],
                  [[dev.number, dev.title, dev.classification or "not classified", dev.status,
                    f"{out.time(dev.opened_at)} by {dev.opened_by}", out.time(dev.closed_at)],
                   ["Description", dev.description, "", "", "", ""],
                   ["Impact assessment", dev.impact_assessment or "not assessed", "", "", "", ""]],
                  [2, 4, 1.6, 1.2, 3.4, 2.8], keep=True)
        _signatures(out, signed[str(dev.id)], f"deviation {dev.number}")


def _quality(sess: Session, out: RecordText, lot: Any) -> None:
    from batches.quality import results as res
    from batches.quality.specifications import criterion_text

    out.story.append(CondPageBreak(40 * mm))
    out.heading("QC results against the specification")
    if lot is None:
        out.para("No quality lot yet: the batch has not been completed.")
        return
    spec = lot.specification
    out.para(f"Specification {spec.label if spec else 'none'}{': ' + spec.name if spec else ''}.")
    tests = {t["key"]: t for t in (spec.tests if spec else [])}
    results = res.results_of(sess, lot)
    signed = _signatures_by_record(sess, "qc_result", {str(r.id): r for r in results})
    rows = []
    for r in results:
        test = tests.get(r.test_key)
        sig_text = "; ".join(f"{s.meaning_label} {s.signer_full_name} {out.time(s.signed_at)}"
                             + ("" if st == "valid" else f" ({st.upper()})") for s, st in signed[str(r.id)])
        rows.append([r.test_name, r.method, criterion_text(test) if test else "not in the specification",
                     f"{r.value_text} {r.unit or ''}".strip(), r.outcome,
                     r.status + (f" ({r.invalidated_reason})" if r.invalidated_reason else ""),
                     f"{r.recorded_by} {out.time(r.recorded_at)}", sig_text or "not reviewed"])
    received = {r.test_key for r in results}
    for key, test in tests.items():
        if key not in received:
            rows.append([test["name"], test.get("method", ""), criterion_text(test), "no result", "pending", "", "", ""])
    out.table(["Test", "Method", "Specification", "Result", "Outcome", "Status", "Recorded", "Review signature"],
              rows, [2.4, 2.4, 2.0, 1.6, 1.45, 1.3, 2.4, 2.65])
    out.heading("OOS investigations", _H3)
    investigations = res.investigations_of(sess, lot)
    if not investigations:
        out.para("No OOS investigation.")
    inv_signed = _signatures_by_record(sess, "oos_investigation", {str(i.id): i for i in investigations})
    for inv in investigations:
        out.table(["Investigation", "Test", "Status", "Opened", "Closed"],
                  [[inv.number, inv.test_key, inv.status.replace("_", " "), f"{out.time(inv.opened_at)} by {inv.opened_by}",
                    f"{out.time(inv.closed_at)} {inv.closed_by or ''}".strip()],
                   ["Description", inv.description, "", "", ""],
                   ["Phase 1", inv.phase1_assessment or "", "", "", ""],
                   ["Phase 2 and root cause", f"{inv.phase2_assessment or ''} {inv.root_cause or ''}".strip(), "", "", ""],
                   ["Conclusion", f"{inv.conclusion or 'open'}: {inv.conclusion_text or ''}", "", "", ""]],
                  [2.4, 5, 1.6, 3.2, 2.6], keep=True)
        _signatures(out, inv_signed[str(inv.id)], f"investigation {inv.number}")


def _disposition(out: RecordText, batch: Batch, lot: Any, dispositions: list[Any], signed: dict[str, list[Any]]) -> None:
    out.story.append(CondPageBreak(40 * mm))
    out.heading("Disposition")
    spec = batch.recipe.spec
    from batches.execution import operations as ops  # noqa: F401  (imported for current entries below)

    if not dispositions:
        out.para(f"No disposition yet: lot {batch.lot_number} is {(lot.status if lot else batch.status).replace('_', ' ')}"
                 " and NOT RELEASED.")
    for d in dispositions:
        pending = ", ".join(d.pending_keys)
        out.table(["Decision", "Justification", "Tests pending", "Decided"],
                  [[d.decision.replace("_", " "), d.reason or "", pending or "none",
                    f"{out.time(d.decided_at)} by {d.decided_by}"]], [2, 6, 2, 4], keep=True)
        _signatures(out, signed.get(str(d.id), []), "the disposition")
    del spec


def _yield(sess: Session, out: RecordText, batch: Batch) -> None:
    from batches.execution import operations as ops

    spec = batch.recipe.spec
    key, target = spec.get("yield_entry"), spec.get("target_yield_cells")
    entry = ops.current_entries(sess, batch).get(key) if key else None
    out.heading("Yield", _H3)
    if entry is None or entry.value_number is None or not target:
        out.para("Actual yield: not recorded yet.")
    else:
        out.para(f"Actual yield {format_number(entry.value_number)} cells; theoretical (target) "
                 f"{format_number(target)} cells; {format_number(round(entry.value_number / target * 100, 1))} % of "
                 "theoretical.")


# --- the document ----------------------------------------------------------------------------------

def _fixed_timestamp(moment: datetime) -> TimeStamp:
    stamp = TimeStamp(invariant=1)
    utc = _aware(moment).astimezone(timezone.utc)
    stamp.t = utc.timestamp()
    stamp.lt = utc.timetuple()
    stamp.YMDhms = tuple(stamp.lt)[:6]
    stamp.dhh = stamp.dmm = 0
    stamp.tzname = "UTC"
    return stamp


def _canvas_class(header: dict[str, str], moment: datetime) -> type:
    class RecordCanvas(pdfcanvas.Canvas):
        """Draws the header and footer once the page count is known ("page x of y")."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["invariant"] = 1
            super().__init__(*args, **kwargs)
            self._doc._timeStamp = _fixed_timestamp(moment)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802  (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._decorate(number, total)
                super().showPage()
            super().save()

        def _decorate(self, number: int, total: int) -> None:
            width, height = PAGE
            self.saveState()
            self.setFont("Helvetica-Bold", 9)
            self.drawString(MARGIN, height - 10 * mm, f"Lot {header['lot']}")
            self.setFont("Helvetica", 9)
            self.drawString(MARGIN + 55 * mm, height - 10 * mm, f"Product {header['product']}")
            self.drawRightString(width - MARGIN, height - 10 * mm, f"Page {number} of {total}")
            self.setLineWidth(0.5)
            self.line(MARGIN, height - 12 * mm, width - MARGIN, height - 12 * mm)
            self.line(MARGIN, 12 * mm, width - MARGIN, 12 * mm)
            self.setFont("Helvetica", 8)
            self.drawString(MARGIN, 8 * mm, f"Executed batch record, generated {header['generated']}")
            if header.get("marking"):
                self.setFont("Helvetica-Bold", 11)
                self.setFillColor(colors.HexColor("#b00000"))
                self.drawRightString(width - MARGIN, 7.5 * mm, header["marking"])
                self.drawRightString(width - MARGIN - 28 * mm, height - 10 * mm, header["marking"])
            self.restoreState()

    return RecordCanvas


@dataclass
class RenderedRecord:
    pdf: bytes
    record_hash: str
    generated_at: datetime
    pages: int


def build_batch_record(sess: Session, batch: Batch, generated_at: datetime | None = None) -> RenderedRecord:
    """The executed batch record of ``batch`` with its record hash and the time it states."""
    from batches.execution.exceptions import occupancies_of
    from batches.quality.models import LotDisposition

    out = RecordText(zone=_site_zone())
    lot = _lot_of(sess, batch)
    dispositions = list(sess.execute(select(LotDisposition).where(LotDisposition.lot_id == lot.id)
                                     .order_by(LotDisposition.id)).scalars()) if lot is not None else []
    disposition_signatures = _signatures_by_record(sess, "lot_disposition", {str(d.id): d for d in dispositions})
    occupancies = occupancies_of(sess, batch)
    out.seen(batch.started_at, batch.completed_at)
    _cover(sess, out, batch, lot, dispositions, disposition_signatures)
    out.story.append(PageBreak())
    _steps(sess, out, batch)
    _yield(sess, out, batch)
    _materials(sess, out, batch)
    _equipment(sess, out, batch, occupancies)
    charts_end = max([_aware(o.ended_at or o.started_at) for o in occupancies] + [out.latest or _aware(batch.started_at)])
    _charts(sess, out, batch, occupancies, charts_end)
    _exceptions(sess, out, batch)
    _deviations(sess, out, batch)
    _quality(sess, out, lot)
    _disposition(out, batch, lot, dispositions, disposition_signatures)

    moment = _aware(generated_at) if generated_at is not None else (out.latest or _aware(batch.started_at))
    record_hash = hashlib.sha256("\n".join(out.lines).encode("utf-8")).hexdigest()
    out.story.append(PageBreak())
    out.story.append(Paragraph("Record hash", _H2))
    out.story.append(Paragraph(escape(HASH_DEFINITION), _BASE))
    out.story.append(Spacer(1, 6))
    out.story.append(Paragraph(f"SHA-256: <b>{record_hash}</b>", ParagraphStyle("hash", parent=_BASE, fontSize=9)))
    out.story.append(Spacer(1, 6))
    out.story.append(Paragraph(escape(f"State of the record at {out.time(moment)}; the archived copy kept at "
                                      "disposition also carries the SHA-256 of the PDF file itself."), _BASE))

    status = lot.status if lot is not None else batch.status
    header = {"lot": batch.lot_number, "product": batch.product,
              "generated": _aware(moment).astimezone(out.zone).strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"),
              "marking": "" if status in RELEASED_STATUSES else "NOT RELEASED"}
    buffer = io.BytesIO()
    doc = BaseDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=16 * mm,
                          bottomMargin=16 * mm, title=f"Executed batch record {batch.lot_number}",
                          author="NK MES", subject=f"{batch.product} lot {batch.lot_number}", creator="NK MES",
                          invariant=1)
    frame = Frame(MARGIN, 16 * mm, FRAME_WIDTH, PAGE[1] - 32 * mm, id="body", leftPadding=0, rightPadding=0,
                  topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate(id="record", frames=[frame])])
    doc.build(out.story, canvasmaker=_canvas_class(header, moment))
    pdf = buffer.getvalue()
    return RenderedRecord(pdf=pdf, record_hash=record_hash, generated_at=moment, pages=pdf.count(b"/Type /Page\n"))


def render_batch_record(sess: Session, batch: Batch, generated_at: datetime | None = None) -> bytes:
    """The executed batch record of ``batch`` as PDF bytes, the same bytes for the same data."""
    return build_batch_record(sess, batch, generated_at).pdf


def batch_record_filename(batch: Batch) -> str:
    return f"batch-record-{batch.lot_number}.pdf"


# --- the archived copy: kept when QA dispositions the lot, served from then on --------------------------

KIND = "batch_record"


def archive_batch_record(sess: Session, lot: Any, previous: str | None = None) -> Any:
    """Render the lot's executed batch record as it stands at this disposition and keep it (with its
    SHA-256) as the next version of the lot's batch record: the archived copy is what QA signed."""
    from batches.documents.store import latest_document, store_document

    batch = lot.batch
    reason = None
    if latest_document(sess, KIND, lot.lot_number) is not None:
        reason = f"Disposition changed from {(previous or 'none').replace('_', ' ')} to {lot.status.replace('_', ' ')}"
    return store_document(sess, KIND, lot.lot_number, batch_record_filename(batch),
                          render_batch_record(sess, batch), reason=reason)


def on_lot_disposition_changed(lot: Any, sess: Session, previous: str | None = None, **_: Any) -> None:
    """Receiver of batches.quality.signals.lot_disposition_changed (same unit of work as the decision)."""
    archive_batch_record(sess, lot, previous)


@dataclass
class ServedRecord:
    content: bytes
    filename: str
    archived_version: int | None
    sha256: str


def served_batch_record(sess: Session, batch: Batch) -> ServedRecord:
    """What a download returns: the archived copy once the lot was dispositioned, the live render before."""
    from batches.documents.store import latest_document

    doc = latest_document(sess, KIND, batch.lot_number)
    if doc is not None:
        return ServedRecord(doc.content, doc.filename, doc.version, doc.sha256)
    pdf = render_batch_record(sess, batch)
    return ServedRecord(pdf, batch_record_filename(batch), None, hashlib.sha256(pdf).hexdigest())
