"""Tablet pages of cord blood sourcing: unit list and search, intake form, unit page, QA disposition,
custody movements and the acceptance criteria versions."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import Schema, ValidationError

from app import db
from app.errors import DomainError, ValidationFailed
from app.permissions import require
from app.signatures import signatures_for
from app.web import form_value, format_cells, site_zone
from batches.sourcing import operations
from batches.sourcing.isbt128 import format_eye_readable
from batches.sourcing.models import (
    ABO_RH_TYPES,
    MARKER_RESULTS,
    MARKERS,
    STATUSES,
    CordBloodUnit,
)
from batches.sourcing.schemas import (
    CbuAcceptanceCriteriaSchema,
    CbuCustodyActionSchema,
    CordBloodUnitIntakeSchema,
    first_errors,
)

bp = Blueprint("sourcing", __name__, url_prefix="/sourcing", static_folder="static",
               static_url_path="/static")

NOTHING_SAVED = "Please correct the highlighted fields; nothing was saved."


def _parse_day(text: str) -> date | None:
    """A date typed in a filter (bad dates are ignored)."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None


@bp.route("/units")
@require("sourcing.view")
def units() -> Any:
    filters = {k: (request.args.get(k) or "").strip() for k in ("din", "bank", "status", "received_from", "received_to")}
    found = operations.search_units(
        db.session, din=filters["din"] or None, bank=filters["bank"] or None,
        status=filters["status"] if filters["status"] in STATUSES else None,
        received_from=_parse_day(filters["received_from"]), received_to=_parse_day(filters["received_to"]),
        zone=site_zone())
    return render_template("batches/sourcing/units.html", units=found, filters=filters, statuses=STATUSES,
                           status_labels=operations.STATUS_LABELS)


def _render_intake(form: dict[str, Any], *, errors: dict[str, list[str]] | None = None, message: str | None = None,
                   link: str | None = None, status: int = 200) -> Any:
    return render_template("batches/sourcing/unit_new.html", form=form, errors=errors or {}, message=message,
                           link=link, markers=MARKERS, marker_results=MARKER_RESULTS, abo_rh_types=ABO_RH_TYPES), status


@bp.route("/units/new", methods=["GET", "POST"])
@require("sourcing.receive")
def unit_new() -> Any:
    if request.method == "GET":
        now = datetime.now(timezone.utc).astimezone(site_zone())
        return _render_intake({"received_by": current_user.username, "received_at": now.strftime("%Y-%m-%dT%H:%M")})
    form = request.form.to_dict()
    form.pop("csrf_token", None)
    try:
        data = CordBloodUnitIntakeSchema().load(form)
    except ValidationError as exc:
        return _render_intake(form, errors=first_errors(exc.messages), message=NOTHING_SAVED, status=422)
    try:
        unit = operations.receive_unit(db.session, data)
    except DomainError as exc:
        db.session.rollback()
        return _render_intake(form, errors=exc.errors, message=exc.message, link=exc.link, status=exc.status_code)
    flash(f"Unit {format_eye_readable(unit.din)} received and stored at {unit.storage_position}. "
          "It waits for QA to place it in quarantine.", "success")
    return redirect(url_for("sourcing.unit_page", unit_id=unit.id))


def _render_unit(unit: CordBloodUnit, *, errors: dict[str, list[str]] | None = None, message: str | None = None,
                 form_name: str | None = None, status: int = 200) -> Any:
    return render_template(
        "batches/sourcing/unit.html", unit=unit, din_readable=format_eye_readable(unit.din), markers=MARKERS,
        marker_results=MARKER_RESULTS, status_labels=operations.STATUS_LABELS,
        transitions=operations.allowed_transitions(unit), blockers=operations.acceptance_blockers(unit),
        release_signatures={r.id: signatures_for(db.session, r) for r in unit.exceptional_releases},
        errors=errors or {}, message=message, form_name=form_name,
        assignable_reason=operations.why_not_assignable(unit)), status


def _refused(unit_id: int, exc: DomainError, form_name: str) -> Any:
    """Re-show the unit page with the refusal next to the form that caused it; nothing is kept."""
    db.session.rollback()
    unit = operations.get_unit(db.session, unit_id)
    errors = exc.errors or {"_": [exc.message]}
    return _render_unit(unit, errors=errors, message=exc.message, form_name=form_name, status=exc.status_code)


@bp.route("/units/<int:unit_id>")
@require("sourcing.view")
def unit_page(unit_id: int) -> Any:
    return _render_unit(operations.get_unit(db.session, unit_id))


def _load_form(schema: Schema) -> dict[str, Any]:
    """The posted form through a schema; a format error is a refusal like any other."""
    form = request.form.to_dict()
    form.pop("csrf_token", None)
    try:
        return schema.load(form)
    except ValidationError as exc:
        raise ValidationFailed(NOTHING_SAVED, errors=first_errors(exc.messages)) from None


def _signature_fields() -> dict[str, Any]:
    return {"username": form_value("sign_username"), "password": request.form.get("sign_password", ""),
            "current_user": current_user}


@bp.route("/units/<int:unit_id>/status", methods=["POST"])
@require("sourcing.disposition")
def unit_status(unit_id: int) -> Any:
    unit = operations.get_unit(db.session, unit_id)
    to_status = form_value("status")
    try:
        operations.change_status(db.session, unit, to_status, reason=form_value("reason"),
                                 comment=form_value("sign_comment") or None, **_signature_fields())
    except DomainError as exc:
        return _refused(unit_id, exc, "status")
    flash(f"Unit {unit.din} is now {operations.STATUS_LABELS[unit.status]}.", "success")
    return redirect(url_for("sourcing.unit_page", unit_id=unit.id))


@bp.route("/units/<int:unit_id>/exceptional-release", methods=["POST"])
@require("sourcing.disposition")
def unit_exceptional_release(unit_id: int) -> Any:
    unit = operations.get_unit(db.session, unit_id)
    try:
        operations.request_exceptional_release(db.session, unit, justification=form_value("justification"),
                                               comment=form_value("sign_comment") or None, **_signature_fields())
    except DomainError as exc:
        return _refused(unit_id, exc, "exceptional_release")
    flash("Exceptional release justification signed. A second QA person must now accept the unit.", "success")
    return redirect(url_for("sourcing.unit_page", unit_id=unit.id))


@bp.route("/units/<int:unit_id>/custody", methods=["POST"])
@require("sourcing.custody")
def unit_custody(unit_id: int) -> Any:
    unit = operations.get_unit(db.session, unit_id)
    try:
        operations.record_movement(db.session, unit, _load_form(CbuCustodyActionSchema()))
    except DomainError as exc:
        return _refused(unit_id, exc, "custody")
    flash("Movement recorded.", "success")
    return redirect(url_for("sourcing.unit_page", unit_id=unit.id))


@bp.route("/criteria")
@require("sourcing.view")
def criteria() -> Any:
    return _render_criteria()


def _render_criteria(*, form: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None,
                     message: str | None = None, status: int = 200) -> Any:
    try:
        current = operations.criteria_in_force(db.session, datetime.now(timezone.utc))
    except DomainError:
        current = None
    if form is None:  # a new draft starts from the version in force, else from the defaults
        if current:
            form = {key: getattr(current, key) for key in operations.DEFAULT_CRITERIA}
            form["required_markers"] = current.required_marker_list
        else:
            form = dict(operations.DEFAULT_CRITERIA)
        for key in ("min_tnc_cells", "min_cd34_cells"):  # shown as 1 x 10^9, which the form accepts back
            form[key] = format_cells(form[key])
    return render_template("batches/sourcing/criteria.html", versions=operations.list_criteria(db.session),
                           current=current, form=form, errors=errors or {}, message=message, markers=MARKERS), status


@bp.route("/criteria/new", methods=["POST"])
@require("sourcing.criteria")
def criteria_new() -> Any:
    form = {k: v for k, v in request.form.items() if k not in ("csrf_token", "required_markers")}
    form["required_markers"] = request.form.getlist("required_markers")
    try:
        values = CbuAcceptanceCriteriaSchema().load({k: v for k, v in form.items() if v not in ("", None)})
    except ValidationError as exc:
        return _render_criteria(form=form, errors=first_errors(exc.messages), message=NOTHING_SAVED, status=422)
    try:
        draft = operations.create_criteria_draft(db.session, values,
                                                 change_description=values.pop("change_description", None))
    except DomainError as exc:
        db.session.rollback()
        return _render_criteria(form=form, errors=exc.errors, message=exc.message, status=exc.status_code)
    flash(f"Draft version {draft.version} created. It is not in force until QA approves it.", "success")
    return redirect(url_for("sourcing.criteria"))


@bp.route("/criteria/<int:criteria_id>/approve", methods=["POST"])
@require("sourcing.criteria")
def criteria_approve(criteria_id: int) -> Any:
    version = operations.get_criteria(db.session, criteria_id)
    try:
        operations.approve_criteria(db.session, version, comment=form_value("sign_comment") or None,
                                    **_signature_fields())
    except DomainError as exc:
        db.session.rollback()
        return _render_criteria(errors=exc.errors, message=exc.message, status=exc.status_code)
    flash(f"Criteria version {version.version} approved; it applies to units received from now on.", "success")
    return redirect(url_for("sourcing.criteria"))
