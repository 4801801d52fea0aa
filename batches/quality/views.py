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
from batches.quality.unit_states import unit_dosing_states

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
                           dosing_states=unit_dosing_states(sess, unit, current_user),
                           history=record_history("final_product_unit", unit.id))


@bp.route("/quality/units/<int:unit_id>/location", methods=["POST"])
@require("product_units.store")
def unit_location(unit_id: int) -> Any:
    unit = ops.record_storage_location(db.session, ops.get_unit(db.session, unit_id), form_value("storage_location"),
                                       form_value("reason") or None)
    flash(f"{unit.product_identifier} stored at {unit.storage_location}.", "success")
    return redirect(url_for("quality.unit_view", unit_id=unit_id))


# --- QC: a lot's samples and results ------------------------------------------------------------

from batches.quality import results as res  # noqa: E402
from batches.quality import review as rev  # noqa: E402


def _lot_page(lot_id: int, errors: dict | None = None, message: str | None = None, status: int = 200) -> Any:
    sess = db.session
    lot = ops.get_lot(sess, lot_id)
    return render_template(T + "lot_view.html", lot=lot, standings=res.test_standings(sess, lot),
                           samples=res.samples_of(sess, lot), investigations=res.investigations_of(sess, lot),
                           units=ops.units_of_batch(sess, lot.batch_id), errors=errors or {},
                           message=message), status


@bp.route("/quality/lots/<int:lot_id>")
@require("lots.view")
def lot_view(lot_id: int) -> Any:
    return _lot_page(lot_id)


@bp.route("/quality/lots/<int:lot_id>/results", methods=["POST"])
@require("qc.enter_results")
def lot_result(lot_id: int) -> Any:
    sess = db.session
    lot = ops.get_lot(sess, lot_id)
    investigation = request.form.get("investigation_id", type=int)
    try:
        result = res.record_result(sess, lot, res.ResultInput(
            test_key=form_value("test_key"), value=form_value("value"), unit=form_value("unit") or None,
            method=form_value("method") or None, sample_identifier=form_value("sample_identifier") or None,
            investigation_id=investigation))
    except DomainError as exc:
        sess.rollback()
        return _lot_page(lot_id, exc.errors, exc.message, exc.status_code)
    if result.outcome == "fail" and result.investigation_id and not investigation:
        flash(f"{result.test_name} = {result.value_text} is out of specification: an OOS investigation was opened.",
              "warning")
    else:
        flash(f"{result.test_name}: {result.value_text} recorded.", "success")
    if investigation:
        return redirect(url_for("quality.investigation_view", investigation_id=investigation))
    return redirect(url_for("quality.lot_view", lot_id=lot_id) + "#results")


@bp.route("/quality/lots/<int:lot_id>/pull", methods=["POST"])
@require("qc.enter_results")
def lot_pull(lot_id: int) -> Any:
    pulled = res.pull_in_process_results(db.session, ops.get_lot(db.session, lot_id))
    flash(f"{len(pulled)} in-process result(s) taken from the batch record.", "success")
    return redirect(url_for("quality.lot_view", lot_id=lot_id) + "#results")


@bp.route("/quality/lots/<int:lot_id>/samples", methods=["POST"])
@require("qc.enter_results")
def lot_sample(lot_id: int) -> Any:
    sample = res.draw_sample(db.session, ops.get_lot(db.session, lot_id), test_keys=request.form.getlist("tests"))
    flash(f"Sample {sample.sample_identifier} registered.", "success")
    return redirect(url_for("quality.lot_view", lot_id=lot_id) + "#samples")


@bp.route("/quality/results/<int:result_id>/review", methods=["POST"])
@require("qc.review_results")
def result_review(result_id: int) -> Any:
    result = res.review_result(db.session, res.get_result(db.session, result_id), **_sign_fields())
    flash(f"{result.test_name} reviewed.", "success")
    return redirect(url_for("quality.lot_view", lot_id=result.lot_id) + "#results")


# --- OOS investigations ---------------------------------------------------------------------------

@bp.route("/quality/investigations/")
@require("lots.view")
def investigation_list() -> Any:
    return render_template(T + "investigation_list.html", investigations=res.list_investigations(db.session))


@bp.route("/quality/investigations/<int:investigation_id>")
@require("lots.view")
def investigation_view(investigation_id: int) -> Any:
    sess = db.session
    inv = res.get_investigation(sess, investigation_id)
    lot = ops.get_lot(sess, inv.lot_id)
    return render_template(T + "investigation_view.html", inv=inv, lot=lot,
                           results=res.investigation_results(sess, inv), related=res.related_lots(sess, inv),
                           test=spec_ops.find_test(lot.specification, inv.test_key),
                           signatures=signatures_for(sess, inv),
                           history=record_history("oos_investigation", inv.id))


def _investigation_action(investigation_id: int, work: Any, message: str) -> Any:
    inv = res.get_investigation(db.session, investigation_id)
    work(inv)
    flash(message, "success")
    return redirect(url_for("quality.investigation_view", investigation_id=investigation_id))


@bp.route("/quality/investigations/<int:investigation_id>/phase1", methods=["POST"])
@require("oos.investigate")
def investigation_phase1(investigation_id: int) -> Any:
    return _investigation_action(investigation_id, lambda inv: res.record_phase1(
        db.session, inv, assessment=form_value("phase1_assessment"),
        laboratory_error=form_value("laboratory_error") == "yes"), "Phase I recorded.")


@bp.route("/quality/investigations/<int:investigation_id>/phase2", methods=["POST"])
@require("oos.investigate")
def investigation_phase2(investigation_id: int) -> Any:
    return _investigation_action(investigation_id, lambda inv: res.record_phase2(
        db.session, inv, assessment=form_value("phase2_assessment"), root_cause=form_value("root_cause")),
        "Phase II recorded.")


@bp.route("/quality/investigations/<int:investigation_id>/invalidate", methods=["POST"])
@require("oos.investigate")
def investigation_invalidate(investigation_id: int) -> Any:
    def work(inv: Any) -> None:
        res.invalidate_result(db.session, res.get_result(db.session, inv.result_id), form_value("reason"))

    return _investigation_action(investigation_id, work, "The original result is invalidated; it keeps its value.")


@bp.route("/quality/investigations/<int:investigation_id>/close", methods=["POST"])
@require("oos.close")
def investigation_close(investigation_id: int) -> Any:
    fields = _sign_fields()
    fields.pop("comment")
    return _investigation_action(investigation_id, lambda inv: res.close_investigation(
        db.session, inv, conclusion=form_value("conclusion"), conclusion_text=form_value("conclusion_text"),
        reportable_result_id=request.form.get("reportable_result_id", type=int) or 0, **fields),
        "Investigation closed.")


# --- QA: lot review and disposition ---------------------------------------------------------------

def _review_page(lot_id: int, message: str | None = None, status: int = 200) -> Any:
    sess = db.session
    review = rev.build_lot_review(sess, ops.get_lot(sess, lot_id))
    return render_template(T + "lot_review.html", r=review, lot=review.lot, batch=review.batch, message=message,
                           involved=current_user.id in review.involved), status


@bp.route("/quality/lots/<int:lot_id>/review")
@require("lots.review")
def lot_review(lot_id: int) -> Any:
    return _review_page(lot_id)


@bp.route("/quality/lots/<int:lot_id>/disposition", methods=["POST"])
@require("lots.dispose")
def lot_disposition(lot_id: int) -> Any:
    sess = db.session
    lot = ops.get_lot(sess, lot_id)
    decision = form_value("decision")
    sign = {k: v for k, v in _sign_fields().items() if k != "comment"}
    if decision == "released":
        rev.release_lot(sess, lot, comment=form_value("sign_comment") or None, **sign)
        flash(f"Lot {lot.lot_number} released.", "success")
    elif decision == "conditionally_released":
        rev.conditionally_release_lot(sess, lot, pending_tests=request.form.getlist("pending_tests"),
                                      justification=form_value("justification"), **sign)
        flash(f"Lot {lot.lot_number} conditionally released.", "warning")
    elif decision == "rejected":
        rev.reject_lot(sess, lot, reason=form_value("reason"), **sign)
        flash(f"Lot {lot.lot_number} rejected: its bags are marked for destruction.", "warning")
    else:
        from app.errors import ValidationFailed

        raise ValidationFailed("Choose release, conditional release or rejection.", errors={"decision": ["Choose."]})
    return redirect(url_for("quality.lot_review", lot_id=lot_id))


# --- inbox ----------------------------------------------------------------------------------------

from batches.quality import notifications as notes  # noqa: E402


def inbox_unread() -> int:
    """The header's unread count for the logged-in user."""
    if not getattr(current_user, "is_authenticated", False):
        return 0
    return notes.unread_count(db.session, current_user)


@bp.route("/inbox")
@require("inbox.view")
def inbox_view() -> Any:
    return render_template(T + "inbox.html", notes=notes.inbox(db.session, current_user))


@bp.route("/inbox/<int:notification_id>/acknowledge", methods=["POST"])
@require("inbox.view")
def inbox_acknowledge(notification_id: int) -> Any:
    notes.acknowledge(db.session, notification_id, current_user)
    flash("Notification acknowledged.", "success")
    return redirect(url_for("quality.inbox_view"))


@bp.route("/quality/lots/<int:lot_id>/import", methods=["POST"])
@require("qc.enter_results")
def lot_import(lot_id: int) -> Any:
    from batches.quality.imports import import_instrument_file

    sess = db.session
    upload = request.files.get("file")
    try:
        kept, recorded = import_instrument_file(sess, ops.get_lot(sess, lot_id), kind=form_value("kind"),
                                                filename=upload.filename if upload else "",
                                                data=upload.read() if upload else b"")
    except DomainError as exc:
        sess.rollback()
        return _lot_page(lot_id, exc.errors, exc.message, exc.status_code)
    flash(f"{len(recorded)} result(s) imported from {kept.filename} (SHA-256 {kept.sha256[:12]}…).", "success")
    return redirect(url_for("quality.lot_view", lot_id=lot_id) + "#results")
