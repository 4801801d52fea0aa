"""Pages of batches.dosing (tablet first): my patients, a patient with their weights and regimen, a new
patient, dose availability for a weight and protocol, and the dosing regimens."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import db
from app.errors import DomainError, ValidationFailed
from app.numbers import NumberFormatError, parse_number
from app.permissions import require
from app.web import form_date, form_value, record_history
from batches.dosing import operations as ops
from batches.dosing import projection as proj
from batches.dosing import regimens as reg
from batches.dosing.availability import availability
from batches.dosing.models import PROTOCOLS

bp = Blueprint("dosing", __name__)
T = "batches/dosing/"


# --- patients -------------------------------------------------------------------------------------

@bp.route("/dosing/patients/")
@require("patients.view")
def patient_list() -> Any:
    return render_template(T + "patient_list.html", patients=ops.visible_patients(db.session, current_user),
                           all_patients=ops.sees_all_patients(current_user))


@bp.route("/dosing/patients/new", methods=["GET", "POST"])
@require("patients.register")
def patient_new() -> Any:
    error = None
    if request.method == "POST":
        try:
            born, consent = form_date("date_of_birth"), form_date("consent_date")
            if born is None or consent is None:
                raise DomainError("Give the date of birth and the consent date as dates.")
            patient = ops.register_patient(db.session, current_user, study_id=form_value("study_id"),
                                           hospital_id=form_value("hospital_id"), initials=form_value("initials"),
                                           date_of_birth=born, protocol=form_value("protocol"),
                                           consent_date=consent)
        except DomainError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            flash(f"Patient {patient.study_id} registered.", "success")
            return redirect(url_for("dosing.patient_view", patient_id=patient.id))
    return render_template(T + "patient_new.html", error=error, protocols=PROTOCOLS, form=request.form), \
        (422 if error else 200)


@bp.route("/dosing/patients/<int:patient_id>")
@require("patients.view")
def patient_view(patient_id: int) -> Any:
    patient = ops.get_patient(db.session, current_user, patient_id)
    return render_template(T + "patient_view.html", patient=patient,
                           regimen=ops.current_regimen(db.session, patient.protocol),
                           today=datetime.now(timezone.utc).date().isoformat(),
                           history=record_history("patient", patient.id))


@bp.route("/dosing/patients/<int:patient_id>/weights", methods=["POST"])
@require("patients.record_weight")
def weight_record(patient_id: int) -> Any:
    patient = ops.get_patient(db.session, current_user, patient_id)
    try:
        measured = form_date("measured_on")
        if measured is None:
            raise DomainError("Give the day the weight was measured.")
        try:
            weight = parse_number(form_value("weight_kg"))
        except (NumberFormatError, ValueError):
            raise DomainError("Weight must be a number of kg.") from None
        ops.record_weight(db.session, current_user, patient, weight, measured)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash("Weight recorded.", "success")
    return redirect(url_for("dosing.patient_view", patient_id=patient_id))


# --- availability ---------------------------------------------------------------------------------

@bp.route("/dosing/availability")
@require("dose_availability.view")
def availability_page() -> Any:
    weight_text = (request.args.get("weight_kg") or "").strip()
    protocol = request.args.get("protocol") or ""
    answer = error = None
    when: list[Any] = []
    backtest = None
    if weight_text or protocol:
        try:
            try:
                weight = parse_number(weight_text)
            except (NumberFormatError, ValueError):
                raise DomainError("Type the weight in kg, for example 70 or 70.5.") from None
            answer = availability(db.session, weight_kg=weight, protocol=protocol)
            if not answer.available:
                when = proj.projections(db.session, protocol, answer.infusions[0].cells_needed)
                backtest = proj.backtest_summary(proj.backtest(db.session, protocol, limit=20))
        except DomainError as exc:
            error = str(exc)
    return render_template(T + "availability.html", answer=answer, error=error, when=when, backtest=backtest,
                           weight_text=weight_text, protocol=protocol, protocols=PROTOCOLS), (422 if error else 200)


# --- regimens -------------------------------------------------------------------------------------

@bp.route("/dosing/regimens/")
@require("regimens.view")
def regimen_list() -> Any:
    return render_template(T + "regimen_list.html", regimens=reg.list_regimens(db.session))


@bp.route("/dosing/regimens/<int:regimen_id>")
@require("regimens.view")
def regimen_view(regimen_id: int) -> Any:
    from app.signatures import signatures_for

    regimen = ops.get_regimen(db.session, regimen_id)
    return render_template(T + "regimen_view.html", regimen=regimen, signatures=signatures_for(db.session, regimen),
                           history=record_history("dosing_regimen", regimen.id))


REGIMEN_FORM_FIELDS = ("dose_per_kg", "infusions", "interval_days", "tolerance_minus_pct", "tolerance_plus_pct",
                       "max_cd3_per_kg", "max_endotoxin_eu_per_kg", "ligand_window_hours")


@bp.route("/dosing/regimens/<int:regimen_id>/new-version", methods=["POST"])
@require("regimens.author")
def regimen_new_version(regimen_id: int) -> Any:
    """A draft of the next version: the regimen's fields with those changed in the form."""
    base = ops.get_regimen(db.session, regimen_id)
    data: dict[str, Any] = {"code": base.code, "name": base.name, "protocol": base.protocol,
                            "ligand_window_source": form_value("ligand_window_source") or base.ligand_window_source}
    for key in REGIMEN_FORM_FIELDS:
        text = form_value(key)
        if text:
            try:
                data[key] = parse_number(text)
            except (NumberFormatError, ValueError):
                raise ValidationFailed(f"{key.replace('_', ' ')}: type a number.") from None
        else:
            data[key] = getattr(base, key)
    draft = reg.create_regimen_draft(db.session, data, change_summary=form_value("change_summary") or None)
    flash(f"{draft.label} created as a draft.", "success")
    return redirect(url_for("dosing.regimen_view", regimen_id=draft.id))


@bp.route("/dosing/regimens/<int:regimen_id>/submit", methods=["POST"])
@require("regimens.author")
def regimen_submit(regimen_id: int) -> Any:
    regimen = reg.submit_regimen_for_review(db.session, ops.get_regimen(db.session, regimen_id))
    flash(f"{regimen.label} sent for QA approval.", "success")
    return redirect(url_for("dosing.regimen_view", regimen_id=regimen_id))


@bp.route("/dosing/regimens/<int:regimen_id>/return", methods=["POST"])
@require("regimens.approve")
def regimen_return(regimen_id: int) -> Any:
    regimen = reg.return_regimen_to_draft(db.session, ops.get_regimen(db.session, regimen_id), form_value("reason"))
    flash(f"{regimen.label} returned to draft.", "warning")
    return redirect(url_for("dosing.regimen_view", regimen_id=regimen_id))


@bp.route("/dosing/regimens/<int:regimen_id>/approve", methods=["POST"])
@require("regimens.approve")
def regimen_approve(regimen_id: int) -> Any:
    regimen = reg.approve_regimen(db.session, ops.get_regimen(db.session, regimen_id),
                                  username=form_value("sign_username"), password=request.form.get("sign_password", ""),
                                  current_user=current_user, comment=form_value("sign_comment") or None)
    flash(f"{regimen.label} approved: availability uses it from now on.", "success")
    return redirect(url_for("dosing.regimen_view", regimen_id=regimen_id))
