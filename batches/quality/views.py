"""Pages of batches.quality: specifications and their approval, lots, infusion bags (scan, chain of
identity, storage location), and the lot panel of the batch page."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import db
from app.errors import DomainError, NotFound
from app.permissions import require
from app.signatures import signatures_for
from app.web import form_value, record_history
from batches.execution.models import Batch
from batches.quality import operations as ops
from batches.quality import specifications as spec_ops

bp = Blueprint("quality", __name__)
T = "batches/quality/"


def _sign_fields() -> dict[str, Any]:
    return {"username": form_value("sign_username"), "password": request.form.get("sign_password", ""),
            "current_user": current_user, "comment": form_value("sign_comment") or None}


def lot_quality(batch: Batch) -> dict[str, Any]:
    """What the batch page shows of the lot: its QC state, specification and bags."""
    sess = db.session
    lot = ops.lot_of_batch(sess, batch)
    return {"lot": lot, "units": ops.units_of_batch(sess, batch.id) if lot is not None else []}


@bp.app_template_filter("quality_number")
def _quality_number(value: float | None) -> str:
    return spec_ops.show_number(value)


@bp.app_template_filter("criterion")
def _criterion(test: dict[str, Any]) -> str:
    return spec_ops.criterion_text(test)


# --- specifications -------------------------------------------------------------------------------

@bp.route("/quality/specifications/")
@require("specifications.view")
def specification_list() -> Any:
    return render_template(T + "specification_list.html", specs=spec_ops.list_specifications(db.session))


@bp.route("/quality/specifications/<int:spec_id>")
@require("specifications.view")
def specification_view(spec_id: int) -> Any:
    spec = spec_ops.get_specification(db.session, spec_id)
    return render_template(T + "specification_view.html", spec=spec, source=spec_ops.specification_as_toml(spec),
                           signatures=signatures_for(db.session, spec),
                           history=record_history("specification", spec.id))


def _edit_page(spec: Any, text: str, change_summary: str = "", errors: dict | None = None,
               message: str | None = None, status: int = 200) -> Any:
    return render_template(T + "specification_edit.html", spec=spec, text=text, change_summary=change_summary,
                           errors=errors or {}, message=message), status


@bp.route("/quality/specifications/new", methods=["GET", "POST"])
@require("specifications.author")
def specification_new() -> Any:
    sess = db.session
    if request.method == "POST":
        try:
            spec = spec_ops.create_specification_draft(sess, request.form.get("definition", ""),
                                                       change_summary=form_value("change_summary") or None)
        except DomainError as exc:
            sess.rollback()
            return _edit_page(None, request.form.get("definition", ""), form_value("change_summary"), exc.errors,
                              exc.message, exc.status_code)
        flash(f"{spec.label} saved as a draft.", "success")
        return redirect(url_for("quality.specification_view", spec_id=spec.id))
    text = ""
    if request.args.get("from"):
        source_id = request.args.get("from", type=int)
        if source_id is None:
            raise NotFound(f"Specification {request.args['from']!r} does not exist.")
        text = spec_ops.specification_as_toml(spec_ops.get_specification(sess, source_id))
    return _edit_page(None, text)


@bp.route("/quality/specifications/<int:spec_id>/edit", methods=["GET", "POST"])
@require("specifications.author")
def specification_edit(spec_id: int) -> Any:
    sess = db.session
    spec = spec_ops.get_specification(sess, spec_id)
    if request.method == "POST":
        try:
            spec_ops.update_specification_draft(sess, spec, request.form.get("definition", ""))
        except DomainError as exc:
            sess.rollback()
            return _edit_page(spec_ops.get_specification(sess, spec_id), request.form.get("definition", ""),
                              errors=exc.errors, message=exc.message, status=exc.status_code)
        flash(f"{spec.label} updated.", "success")
        return redirect(url_for("quality.specification_view", spec_id=spec.id))
    return _edit_page(spec, spec_ops.specification_as_toml(spec))


@bp.route("/quality/specifications/<int:spec_id>/submit", methods=["POST"])
@require("specifications.author")
def specification_submit(spec_id: int) -> Any:
    spec = spec_ops.submit_specification_for_review(db.session, spec_ops.get_specification(db.session, spec_id))
    flash(f"{spec.label} sent for QA approval.", "success")
    return redirect(url_for("quality.specification_view", spec_id=spec_id))


@bp.route("/quality/specifications/<int:spec_id>/return", methods=["POST"])
@require("specifications.approve")
def specification_return(spec_id: int) -> Any:
    spec = spec_ops.return_specification_to_draft(db.session, spec_ops.get_specification(db.session, spec_id),
                                                  form_value("reason"))
    flash(f"{spec.label} returned to draft.", "warning")
    return redirect(url_for("quality.specification_view", spec_id=spec_id))


@bp.route("/quality/specifications/<int:spec_id>/approve", methods=["POST"])
@require("specifications.approve")
def specification_approve(spec_id: int) -> Any:
    spec = spec_ops.approve_specification(db.session, spec_ops.get_specification(db.session, spec_id),
                                          **_sign_fields())
    flash(f"{spec.label} approved. Lots whose testing starts from now on are judged against it.", "success")
    return redirect(url_for("quality.specification_view", spec_id=spec_id))


# --- lots and bags --------------------------------------------------------------------------------

@bp.route("/quality/lots/")
@require("lots.view")
def lot_list() -> Any:
    sess = db.session
    lots = ops.list_lots(sess)
    counts = {lot.id: len(ops.units_of_batch(sess, lot.batch_id)) for lot in lots}
    return render_template(T + "lot_list.html", lots=lots, counts=counts)


@bp.route("/quality/units/scan")
@require("product_units.view")
def unit_scan() -> Any:
    scanned = request.args.get("identifier", "")
    if not scanned.strip():
        return render_template(T + "unit_scan.html", message=None, scanned="")
    try:
        unit = ops.find_unit_by_scan(db.session, scanned)
    except DomainError as exc:
        return render_template(T + "unit_scan.html", message=exc.message, scanned=scanned), exc.status_code
    return redirect(url_for("quality.unit_view", unit_id=unit.id))


@bp.route("/quality/units/<int:unit_id>")
@require("product_units.view")
def unit_view(unit_id: int) -> Any:
    sess = db.session
    unit = ops.get_unit(sess, unit_id)
    return render_template(T + "unit_view.html", chain=ops.chain_of_identity(sess, unit), unit=unit,
                           problem=ops.unit_issue_problem(unit), lot=ops.lot_of_batch(sess, unit.batch),
                           history=record_history("final_product_unit", unit.id))


@bp.route("/quality/units/<int:unit_id>/location", methods=["POST"])
@require("product_units.store")
def unit_location(unit_id: int) -> Any:
    unit = ops.record_storage_location(db.session, ops.get_unit(db.session, unit_id), form_value("storage_location"),
                                       form_value("reason") or None)
    flash(f"{unit.product_identifier} stored at {unit.storage_location}.", "success")
    return redirect(url_for("quality.unit_view", unit_id=unit_id))
