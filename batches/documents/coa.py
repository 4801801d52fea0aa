"""Certificate of analysis: one controlled document per lot, version 1 stored when QA dispositions the
lot, a new version (with the reason) whenever a result or the disposition changes afterwards.

The PDF is built only from recorded data (no "printed at" time, reportlab's invariant mode fixes the
creation date and document id), so the same data always gives the same bytes and the same SHA-256.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import Session
from xml.sax.saxutils import escape

from app.signatures import signatures_for
from batches.documents.models import ControlledDocument
from batches.documents.store import latest_document, lock_subject, store_document
from batches.quality.models import LotDisposition, QualityLot
from batches.quality.operations import units_of_batch
from batches.quality.results import PENDING, test_standings
from batches.quality.specifications import criterion_text

KIND = "coa"
CERTIFIED_STATUSES = ("released", "conditionally_released", "rejected", "on_recall")
STATUS_WORDS = {"in_testing": "In testing (not released)", "released": "Released",
                "conditionally_released": "Conditionally released", "rejected": "Rejected",
                "on_recall": "On recall"}


_site_timezone = "UTC"


def configure(site_timezone: str) -> None:
    """Set the site time zone the certificate prints its times in, once at start-up (SITE_TIMEZONE).

    Read from this one setting whether or not a request or app context is active, so the same data
    always gives the same bytes.
    """
    global _site_timezone
    ZoneInfo(site_timezone)  # an unknown zone fails at start-up, not on the first certificate
    _site_timezone = site_timezone


def _zone() -> ZoneInfo:
    return ZoneInfo(_site_timezone)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(_zone()).strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")


def coa_filename(lot: QualityLot, version: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in lot.lot_number)
    return f"CoA-{safe}-v{version}.pdf"


def coa_data(sess: Session, lot: QualityLot) -> dict[str, Any]:
    """Everything the certificate states, read from the records."""
    dispositions = list(sess.execute(select(LotDisposition).where(LotDisposition.lot_id == lot.id)
                                     .order_by(LotDisposition.id)).scalars())
    disposition = dispositions[-1] if dispositions else None
    pending = set(disposition.pending_keys) if disposition is not None else set()
    tests = []
    for standing in test_standings(sess, lot):
        result = standing.result
        if standing.state == PENDING or result is None:
            shown = "pending" + (" (conditional release)" if standing.test["key"] in pending else "")
        else:
            shown = result.value_text + (f" {result.unit}" if result.unit and result.unit not in result.value_text else "")
        tests.append({"name": standing.test["name"], "method": standing.test.get("method")
                      or (result.method if result else ""), "specification": criterion_text(standing.test),
                      "result": shown, "state": standing.state})
    signatures = []
    if disposition is not None:
        for view in signatures_for(sess, disposition):
            sig = view.signature
            signatures.append({"name": sig.signer_full_name, "username": sig.signer_username,
                               "when": _when(sig.signed_at), "meaning": sig.meaning,
                               "status": "valid" if view.valid else view.status})
    units = units_of_batch(sess, lot.batch_id)
    return {
        "product": lot.product, "lot": lot.lot_number, "din": lot.batch.cord_blood_din,
        "specification": f"{lot.specification.code} version {lot.specification.version}" if lot.specification else "",
        "expiry": _when(min((u.expires_at for u in units), default=None)) or "not filled",
        "status": STATUS_WORDS.get(lot.status, lot.status),
        "decision_reason": disposition.reason if disposition is not None else None,
        "tests": tests, "signatures": signatures,
        "bags": [{"identifier": u.product_identifier, "volume": u.volume_ml, "cells": u.viable_cells,
                  "expiry": _when(u.expires_at)} for u in units],
    }


def render_coa(data: dict[str, Any], version: int, reason: str | None = None) -> bytes:
    """The certificate as PDF; the same data, version and reason give the same bytes."""
    from app.web import format_cells, format_number

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)
    out = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(15 * mm, 10 * mm, f"Certificate of analysis {data['lot']} version {version}")
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(out, pagesize=A4, invariant=1, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=18 * mm,
                            title=f"Certificate of analysis {data['lot']} v{version}", author="NK MES",
                            creator="NK MES", subject=data["product"])
    p = lambda text, style=body: Paragraph(escape(str(text)), style)  # noqa: E731
    story: list[Any] = [Paragraph("Certificate of analysis", styles["Title"])]
    head = [["Product", data["product"]], ["Lot", data["lot"]], ["Cord blood unit DIN", data["din"]],
            ["Specification", data["specification"]], ["Expiry", data["expiry"]],
            ["Document version", str(version) + (f" (reissued: {reason})" if reason else "")]]
    story.append(_table([[p(a), p(b)] for a, b in head], [45 * mm, 135 * mm]))
    story += [Spacer(1, 5 * mm), Paragraph("Release tests", styles["Heading2"])]
    rows = [[p(h, small) for h in ("Test", "Method", "Specification", "Result")]]
    rows += [[p(t["name"], small), p(t["method"], small), p(t["specification"], small), p(t["result"], small)]
             for t in data["tests"]]
    story.append(_table(rows, [45 * mm, 50 * mm, 45 * mm, 40 * mm], header=True))
    story += [Spacer(1, 5 * mm), Paragraph("Disposition", styles["Heading2"]), p(data["status"])]
    if data["decision_reason"]:
        story.append(p(f"Justification: {data['decision_reason']}"))
    for sig in data["signatures"]:
        shown = f"Signed by {sig['name']} ({sig['username']}) on {sig['when']}, meaning: {sig['meaning']}"
        if sig["status"] != "valid":
            shown += f". NOT VALID: {sig['status']}"
        story.append(p(shown))
    if not data["signatures"]:
        story.append(p("Not signed by QA: this certificate does not release the lot."))
    story += [Spacer(1, 5 * mm), Paragraph("Infusion bags", styles["Heading2"])]
    rows = [[p(h, small) for h in ("Product identifier", "Volume", "Viable cells", "Expiry")]]
    rows += [[p(b["identifier"], small), p(f"{format_number(b['volume'])} mL" if b["volume"] else "", small),
              p(format_cells(b["cells"]), small), p(b["expiry"], small)] for b in data["bags"]]
    story.append(_table(rows, [70 * mm, 25 * mm, 35 * mm, 50 * mm], header=True))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def _table(rows: list[list[Any]], widths: list[float], header: bool = False) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")))
    table.setStyle(TableStyle(style))
    return table


def issue_coa(sess: Session, lot: QualityLot, reason: str | None = None) -> ControlledDocument:
    """Store the next version of the lot's certificate (a reason is required from version 2 on)."""
    lock_subject(sess, KIND, lot.lot_number)  # before the version is read: it is printed inside the PDF
    current = latest_document(sess, KIND, lot.lot_number)
    version = (current.version if current else 0) + 1
    pdf = render_coa(coa_data(sess, lot), version, reason if current else None)
    return store_document(sess, KIND, lot.lot_number, coa_filename(lot, version), pdf, reason=reason)


def on_lot_disposition_changed(lot: QualityLot, sess: Session, previous: str | None = None, **_: Any) -> None:
    """Version 1 at release or conditional release; later disposition changes reissue it."""
    if lot.status not in CERTIFIED_STATUSES:
        return
    current = latest_document(sess, KIND, lot.lot_number)
    if current is None:
        if lot.status in ("released", "conditionally_released"):
            issue_coa(sess, lot)
        return
    issue_coa(sess, lot, reason=f"Disposition changed from {STATUS_WORDS.get(previous or '', previous)} "
                                f"to {STATUS_WORDS.get(lot.status, lot.status)}")


def on_lot_results_changed(lot: QualityLot, sess: Session, reason: str | None = None, **_: Any) -> None:
    """A result recorded or invalidated after the certificate was issued: reissue it."""
    if latest_document(sess, KIND, lot.lot_number) is not None:
        issue_coa(sess, lot, reason=reason or "A release test result changed")
