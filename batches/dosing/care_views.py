"""Clinician and pharmacist pages of dosing care: the reservation and infusion schedule of a patient as a
timeline, reserving bags, the pharmacy issue page, the bedside scan page, the infusion record with two
signatures, the follow-up worklist, recalls and the chain of identity; and the part's registration."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app import db
from app.db import utcnow
from app.errors import DomainError, NotFound, ValidationFailed
from app.numbers import NumberFormatError, parse_number
from app.permissions import require
from app.signatures import signatures_for
from app.web import form_date, form_value, parse_local_datetime, record_history
from batches.dosing import care_permissions  # noqa: F401  (declares the permissions before the views)
from batches.dosing import bedside as bedside_ops
from batches.dosing import dispensing, followup, infusions
from batches.dosing import operations as dosing_ops
from batches.dosing import reservations as res_ops
from batches.dosing.care_models import DoseReservation
from batches.dosing.models import Patient
from batches.quality.models import FinalProductUnit, QualityLot

bp = Blueprint("care", __name__, static_folder="care_static", static_url_path="/care/static")
T = "batches/dosing/care/"
_signals_connected = False


def init_app(app: Any, api: Any) -> None:
    """Register the pages, the API, the recall receiver, the expiry service and command."""
    global _signals_connected
    from app.shell import register_nav, register_service
    from batches.dosing import care_api
    from batches.quality.signals import lot_disposition_changed

    if not _signals_connected:
        lot_disposition_changed.connect(res_ops.on_lot_disposition_changed)
        _signals_connected = True
    app.register_blueprint(bp)
    for blp in care_api.BLUEPRINTS:
        api.register_blueprint(blp)
    register_nav("Dose schedule", "care.index", "care.view", "Reservations and infusions per patient, as a timeline", 50)
    register_nav("Bedside check", "care.bedside", "care.infuse", "Scan the bag and the wristband before infusing", 51)
    register_nav("Pharmacy issue", "care.pharmacy", "care.issue", "Issue reserved bags to the ward", 52)
    register_nav("Follow-up", "care.worklist", "care.follow_up", "Trial visits and assessments due this week", 53)
    register_service("reservations", _run_expiry_service)
    app.cli.add_command(care_api.dosing_care_cli)


def _run_expiry_service() -> None:
    from flask import current_app

    from app.shell import run_periodically

    app = current_app._get_current_object()
    run_periodically(app, "reservation-expiry", float(app.config.get("RESERVATION_EXPIRY_SECONDS") or 300),
                     res_ops.expire_reservations)


def _sign() -> dict[str, Any]:
    return {"username": form_value("sign_username"), "password": request.form.get("sign_password", ""),
            "current_user": current_user}


# --- patients and their timeline ----------------------------------------------------------------

@bp.route("/care/")
@require("care.view")
def index() -> Any:
    sess = db.session
    patients = dosing_ops.visible_patients(db.session, current_user)
    live = {r.patient_id: r for r in res_ops.list_reservations(sess, current_user, ("reserved", "issued"))}
    return render_template(T + "index.html", patients=patients, live=live)


def proposals(sess: Any, patient: Patient) -> tuple[list[dict[str, Any]], str | None]:
    """What the reserve form offers: for each infusion not yet covered, the bags the availability answer
    plans for it (one lot, a valid dose for the patient's weight), from the planned time of the first
    infusion (counted back from the latest live reservation, else an hour from now); or why nothing can be proposed."""
    from batches.dosing.availability import availability_for_patient
    from batches.dosing.operations import current_regimen

    regimen = current_regimen(sess, patient.protocol)
    if regimen is None:
        return [], f"No approved dosing regimen for {patient.protocol}: QA must approve one first."
    live = [r for r in res_ops.reservations_of(sess, patient) if r.live]
    first_at = utcnow() + timedelta(hours=1)
    if live:
        r = max(live, key=lambda x: x.infusion_number)  # the schedule follows the latest planned infusion
        first_at = r.planned_at - timedelta(days=regimen.interval_days * (r.infusion_number - 1))
    try:
        answer = availability_for_patient(sess, patient, first_infusion_at=first_at,
                                          skip_infusions={r.infusion_number for r in live})
    except ValidationFailed as exc:
        return [], exc.message
    offered = []
    for inf, option in zip(answer.infusions, answer.plan):
        if option is None:
            continue
        units = {u.id: u for u in sess.execute(select(FinalProductUnit).where(
            FinalProductUnit.id.in_([b["id"] for b in option.bags]))).scalars()}
        offered.append({"number": inf.number, "planned_at": inf.planned_at, "option": option,
                        "cells_needed": inf.cells_needed, "units": [units[b["id"]] for b in option.bags]})
    return offered, None


def timeline_of(sess: Any, patient: Patient) -> list[dict[str, Any]]:
    """Reservations, infusions, follow-up items and adverse events of the patient in time order."""
    items: list[dict[str, Any]] = []
    by_reservation = {i.reservation_id: i for i in infusions.infusions_of(sess, patient)}
    for reservation in res_ops.reservations_of(sess, patient):
        infusion = by_reservation.get(reservation.id)
        items.append({"kind": "infusion" if infusion else "reservation", "when": infusion.started_at if infusion
                      else reservation.planned_at, "reservation": reservation, "infusion": infusion})
    today = followup.site_today()
    for visit in followup.visits_of(sess, patient):
        items.append({"kind": "follow_up", "day": visit.due_on, "visit": visit,
                      "state": followup.visit_state(visit, today)})
    for event in followup.adverse_events_of(sess, patient):
        items.append({"kind": "adverse_event", "day": event.onset_on, "event": event})

    def key(item: dict[str, Any]) -> tuple[date, int]:
        when = item.get("when")
        day = followup._local_date(when) if when is not None else item["day"]
        return (day, 0 if when is not None else 1)

    return sorted(items, key=key)


def _schedule_page(patient_id: int, message: str | None = None, errors: dict | None = None, status: int = 200) -> Any:
    sess = db.session
    patient = res_ops.get_patient(sess, patient_id, current_user)
    live_numbers = {r.infusion_number for r in res_ops.reservations_of(sess, patient) if r.live}
    offered, no_offer = proposals(sess, patient)
    return render_template(T + "schedule.html", patient=patient, timeline=timeline_of(sess, patient),
                           offered=offered, no_offer=no_offer, live_numbers=live_numbers, message=message,
                           errors=errors or {}, form=request.form, now=utcnow(),
                           relations=followup.AE_RELATIONS), status


@bp.route("/care/patients/<int:patient_id>")
@require("care.view")
def schedule(patient_id: int) -> Any:
    return _schedule_page(patient_id)


def _int(name: str, label: str) -> int:
    raw = form_value(name)
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(f"{label}: enter a whole number.", errors={name: ["A whole number."]}) from None


@bp.route("/care/patients/<int:patient_id>/reservations", methods=["POST"])
@require("care.reserve")
def reserve(patient_id: int) -> Any:
    sess = db.session
    try:
        patient = res_ops.get_patient(sess, patient_id, current_user)
        planned_at = parse_local_datetime(form_value("planned_at"))
        if planned_at is None:
            raise ValidationFailed("Enter the planned infusion date and time.", errors={"planned_at": ["Required."]})
        ids = []
        for raw in request.form.getlist("unit_ids"):
            if not raw.isdecimal():
                raise ValidationFailed("Choose bags from the list.", errors={"unit_ids": ["Unknown bag."]})
            ids.append(int(raw))
        reservation = res_ops.reserve_bags(sess, patient, infusion_number=_int("infusion_number", "Infusion number"),
                                           planned_at=planned_at, unit_ids=ids, note=form_value("note") or None,
                                           comment=form_value("sign_comment") or None, **_sign())
    except DomainError as exc:
        sess.rollback()
        return _schedule_page(patient_id, exc.message, exc.errors, exc.status_code)
    flash(f"Reservation {reservation.number}: {len(reservation.bags)} bag(s) of lot {reservation.lot_number} held for "
          f"infusion {reservation.infusion_number}.", "success")
    return redirect(url_for("care.reservation_view", reservation_id=reservation.id))


# --- reservations -------------------------------------------------------------------------------

def _reservation_page(reservation_id: int, message: str | None = None, errors: dict | None = None,
                      status: int = 200) -> Any:
    sess = db.session
    reservation = res_ops.get_reservation(sess, reservation_id, current_user)
    patient = sess.get(Patient, reservation.patient_id)
    infusion = infusions.infusion_of(sess, reservation)
    custody = {b.unit_id: res_ops.custody_of(sess, b.unit_id) for b in reservation.bags}
    return render_template(T + "reservation.html", r=reservation, patient=patient, infusion=infusion,
                           custody=custody, checked=bedside_ops.checked_units(sess, reservation),
                           problems=dispensing.issue_problems(sess, reservation) if reservation.status == "reserved"
                           else [], signatures=signatures_for(sess, reservation),
                           infusion_signatures=signatures_for(sess, infusion) if infusion else [],
                           history=record_history("dose_reservation", reservation.id), message=message,
                           errors=errors or {}), status


@bp.route("/care/reservations/<int:reservation_id>")
@require("care.view")
def reservation_view(reservation_id: int) -> Any:
    return _reservation_page(reservation_id)


@bp.route("/care/reservations/<int:reservation_id>/release", methods=["POST"])
@require("care.reserve")
def reservation_release(reservation_id: int) -> Any:
    sess = db.session
    try:
        reservation = res_ops.release_reservation(sess, res_ops.get_reservation(sess, reservation_id, current_user),
                                                  form_value("reason"), current_user)
    except DomainError as exc:
        sess.rollback()
        return _reservation_page(reservation_id, exc.message, exc.errors, exc.status_code)
    flash(f"Reservation {reservation.number} released: its bags are available again.", "success")
    return redirect(url_for("care.reservation_view", reservation_id=reservation_id))


# --- pharmacy -----------------------------------------------------------------------------------

def _pharmacy_page(message: str | None = None, errors: dict | None = None, status: int = 200) -> Any:
    sess = db.session
    waiting = res_ops.list_reservations(sess, current_user, ("reserved",))
    issued = res_ops.list_reservations(sess, current_user, ("issued",))
    patients = {p.id: p for p in sess.execute(select(Patient).where(
        Patient.id.in_([r.patient_id for r in waiting + issued] or [0]))).scalars()}
    return render_template(T + "pharmacy.html", waiting=waiting, issued=issued, patients=patients,
                           problems={r.id: dispensing.issue_problems(sess, r) for r in waiting}, message=message,
                           errors=errors or {}), status


@bp.route("/care/pharmacy")
@require("care.issue")
def pharmacy() -> Any:
    return _pharmacy_page()


@bp.route("/care/reservations/<int:reservation_id>/issue", methods=["POST"])
@require("care.issue")
def reservation_issue(reservation_id: int) -> Any:
    sess = db.session
    try:
        reservation = dispensing.issue_reservation(sess, res_ops.get_reservation(sess, reservation_id, current_user),
                                                   location=form_value("location"), current_user=current_user)
    except DomainError as exc:
        sess.rollback()
        return _pharmacy_page(exc.message, exc.errors, exc.status_code)
    flash(f"Reservation {reservation.number} issued to {form_value('location')}.", "success")
    return redirect(url_for("care.pharmacy"))


# --- bedside ------------------------------------------------------------------------------------

def _bedside_page(reservation: DoseReservation | None = None, message: str | None = None, status: int = 200,
                  checked: set[int] | None = None) -> Any:
    sess = db.session
    patient = sess.get(Patient, reservation.patient_id) if reservation else None
    return render_template(T + "bedside.html", r=reservation, patient=patient, message=message,
                           checked=checked if checked is not None else
                           (bedside_ops.checked_units(sess, reservation) if reservation else set())), status


@bp.route("/care/bedside", methods=["GET", "POST"])
@require("care.infuse")
def bedside() -> Any:
    sess = db.session
    reservation_id = request.values.get("reservation_id", type=int)
    reservation = res_ops.get_reservation(sess, reservation_id, current_user) if reservation_id else None
    if request.method == "GET":
        return _bedside_page(reservation)
    try:
        result = bedside_ops.check_at_bedside(sess, wristband=form_value("wristband"),
                                              bag_identifier=form_value("bag_identifier"),
                                              current_user=current_user, reservation_id=reservation_id)
    except DomainError as exc:
        sess.rollback()
        return _bedside_page(res_ops.get_reservation(sess, reservation_id, current_user) if reservation_id else None,
                             exc.message, exc.status_code)
    if result.complete:
        flash(f"Bag {result.bag.unit.product_identifier} and the wristband of {result.patient.study_id} match "
              f"reservation {result.reservation.number}: record the infusion.", "success")
        return redirect(url_for("care.infusion_form", reservation_id=result.reservation.id))
    flash(f"Bag {result.bag.unit.product_identifier} matches; scan the next bag of reservation "
          f"{result.reservation.number}.", "success")
    return redirect(url_for("care.bedside", reservation_id=result.reservation.id))


# --- infusion -----------------------------------------------------------------------------------

def _infusion_page(reservation_id: int, message: str | None = None, errors: dict | None = None,
                   status: int = 200) -> Any:
    sess = db.session
    reservation = res_ops.get_reservation(sess, reservation_id, current_user)
    return render_template(T + "infusion.html", r=reservation, patient=sess.get(Patient, reservation.patient_id),
                           checked=bedside_ops.checked_units(sess, reservation), message=message,
                           errors=errors or {}, form=request.form), status


@bp.route("/care/reservations/<int:reservation_id>/infusion", methods=["GET", "POST"])
@require("care.infuse")
def infusion_form(reservation_id: int) -> Any:
    sess = db.session
    if request.method == "GET":
        return _infusion_page(reservation_id)
    try:
        reservation = res_ops.get_reservation(sess, reservation_id, current_user)
        volume = None
        if form_value("volume_ml"):
            try:
                volume = parse_number(form_value("volume_ml"))
            except NumberFormatError as exc:
                raise ValidationFailed(f"Volume infused: {exc}", errors={"volume_ml": [str(exc)]}) from None
        data = infusions.InfusionInput(
            started_at=parse_local_datetime(form_value("started_at")),
            ended_at=parse_local_datetime(form_value("ended_at")), volume_ml=volume,
            reaction=form_value("reaction") == "yes", reaction_description=form_value("reaction_description") or None)
        infusion = infusions.record_infusion(sess, reservation, data, witness_username=form_value("witness_username"),
                                             witness_password=request.form.get("witness_password", ""), **_sign())
    except DomainError as exc:
        sess.rollback()
        return _infusion_page(reservation_id, exc.message, exc.errors, exc.status_code)
    flash(f"Infusion {infusion.infusion_number} recorded, administered by {infusion.administered_by} and witnessed "
          f"by {infusion.witnessed_by}.", "success")
    return redirect(url_for("care.schedule", patient_id=infusion.patient_id))


# --- follow-up ------------------------------------------------------------------------------------

@bp.route("/care/follow-up")
@require("care.follow_up")
def worklist() -> Any:
    today = followup.site_today()
    return render_template(T + "worklist.html", items=followup.worklist(db.session, current_user, today), today=today,
                           week_end=today + timedelta(days=6 - today.weekday()))


@bp.route("/care/follow-up/<int:visit_id>/done", methods=["POST"])
@require("care.follow_up")
def visit_done(visit_id: int) -> Any:
    sess = db.session
    visit = followup.get_visit(sess, visit_id, current_user)
    followup.complete_visit(sess, visit, done_on=form_date("done_on"), outcome=form_value("outcome"),
                            current_user=current_user)
    flash(f"{visit.label} recorded as done.", "success")
    return redirect(request.form.get("next") if request.form.get("next", "").startswith("/care/")
                    else url_for("care.schedule", patient_id=visit.patient_id))


@bp.route("/care/patients/<int:patient_id>/adverse-events", methods=["POST"])
@require("care.follow_up")
def adverse_event(patient_id: int) -> Any:
    sess = db.session
    try:
        patient = res_ops.get_patient(sess, patient_id, current_user)
        grade = form_value("ctcae_grade")
        event = followup.record_adverse_event(
            sess, patient, term=form_value("term"), onset_on=form_date("onset_on"),
            ctcae_grade=int(grade) if grade.isdecimal() else None, relation=form_value("relation"),
            serious=form_value("serious") == "yes", seriousness=form_value("seriousness") or None,
            dose_limiting=form_value("dose_limiting") == "yes", description=form_value("description") or None,
            current_user=current_user)
    except DomainError as exc:
        sess.rollback()
        return _schedule_page(patient_id, exc.message, exc.errors, exc.status_code)
    flash(f"Adverse event recorded: {event.term}, CTCAE grade {event.ctcae_grade}.", "success")
    return redirect(url_for("care.schedule", patient_id=patient_id) + "#adverse-events")


# --- recall and chain of identity ---------------------------------------------------------------

@bp.route("/care/recalls/<int:lot_id>")
@require("care.view")
def recall_view(lot_id: int) -> Any:
    sess = db.session
    lot = sess.get(QualityLot, lot_id)
    if lot is None:
        raise NotFound(f"Lot {lot_id} does not exist.")
    rows = []
    for reservation in res_ops.reservations_of_lot(sess, lot):
        patient = sess.get(Patient, reservation.patient_id)
        rows.append({"r": reservation, "patient": patient,
                     "visible": res_ops.may_see_patient(current_user, patient)})
    return render_template(T + "recall.html", lot=lot, rows=rows)


@bp.route("/care/chain-of-identity")
@require("care.view")
def chain_view() -> Any:
    args = {k: (request.args.get(k) or "").strip() or None for k in ("identifier", "din", "lot_number", "study_id")}
    if not any(args.values()):
        return render_template(T + "chain.html", chain=None, message=None, args=args)
    try:
        chain = infusions.walk_chain_of_identity(db.session, current_user, **args)
    except DomainError as exc:
        return render_template(T + "chain.html", chain=None, message=exc.message, args=args), exc.status_code
    return render_template(T + "chain.html", chain=chain, message=None, args=args)
