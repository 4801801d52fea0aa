"""Tablet pages: batch list, start a batch, batch overview, step runner; recipes, materials, deviations."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app import db
from app.db import utcnow
from app.errors import DomainError, NotFound, ValidationFailed
from app.permissions import require
from app.signatures import signatures_for
from app.web import form_value, record_history, site_zone
from batches.execution import deviations as deviation_ops
from batches.execution import materials as material_ops
from batches.execution import operations as ops
from batches.execution import recipes as recipe_ops
from batches.execution.exceptions import review_exceptions, reviews_of, sync_equipment_exceptions
from batches.execution.limits import limits_text, readable_formula
from batches.execution.models import DEVIATION_CLASSES, QC_STATUSES, Batch, Material, StepEntry
from batches.execution.overview import batch_overview, entry_view_rows

bp = Blueprint("execution", __name__, static_folder="static", static_url_path="/static/execution")
T = "batches/execution/"


@bp.app_template_filter("limits_text")
def _limits_text(spec: dict[str, Any]) -> str:
    return limits_text(spec)


@bp.app_template_filter("formula")
def _formula(expression: str, labels: dict[str, str]) -> str:
    return readable_formula(expression, labels)


@bp.app_template_filter("window")
def _window(start: datetime, end: datetime) -> str:
    """A due window in the site's time: the end's date is named when it is on another day."""
    zone = site_zone()
    first, last = start.astimezone(zone), end.astimezone(zone)
    shown = last.strftime("%H:%M") if first.date() == last.date() else last.strftime("%a %d %b %H:%M")
    return f"{first:%a %d %b %H:%M} – {shown}"


def _version() -> int | None:
    raw = request.form.get("version", "")
    if not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed("The form is damaged (version). Reload the page.") from None


def _sign_fields() -> dict[str, Any]:
    return {"username": form_value("sign_username"), "password": request.form.get("sign_password", ""),
            "current_user": current_user, "comment": form_value("sign_comment") or None}


# --- batches --------------------------------------------------------------------------------------

@bp.route("/batches/")
@require("batches.view")
def batch_list() -> Any:
    sess = db.session
    open_batches = ops.list_batches(sess, ("planned", "in_progress", "on_hold", "completed", "in_review"),
                                    with_steps=True)
    mine_ids = set(sess.execute(select(StepEntry.batch_id).where(
        StepEntry.recorded_by_id == current_user.id, StepEntry.batch_id.in_([b.id for b in open_batches]))
        .distinct()).scalars())
    today_end = datetime.combine(utcnow().astimezone(site_zone()).date() + timedelta(days=1),
                                 datetime.min.time(), tzinfo=site_zone())
    rows = []
    for batch in open_batches:
        step = ops.next_step(batch)
        due_at = ops.planned_start(step) if step is not None else None
        rows.append({"batch": batch, "step": step, "due_at": due_at,
                     "due_by": ops.due_by(step) if step is not None else None,
                     "late": step is not None and ops.is_late(step),
                     "due_today": batch.status == "in_progress" and due_at is not None and due_at < today_end,
                     "mine": batch.id in mine_ids})
    view = request.args.get("view", "due")
    shown = {"mine": [r for r in rows if r["mine"]], "due": [r for r in rows if r["due_today"]]}.get(view, rows)
    closed = ops.list_batches(sess, ("aborted", "released", "rejected"), limit=20)
    return render_template(T + "batch_list.html", rows=shown, view=view, closed=closed,
                           counts={"mine": sum(r["mine"] for r in rows), "due": sum(r["due_today"] for r in rows),
                                   "all": len(rows)})


@bp.route("/batches/start", methods=["GET", "POST"])
@require("batches.start")
def batch_start() -> Any:
    from batches.sourcing.operations import assignable_units

    sess = db.session
    errors: dict[str, list[str]] = {}
    message = None
    if request.method == "POST":
        try:
            unit_id = int(request.form.get("unit_id") or 0)
            recipe_id = int(request.form.get("recipe_id") or 0)
        except ValueError:
            unit_id = recipe_id = 0
        if not unit_id:
            errors["unit_id"] = ["Choose the cord blood unit."]
        if not recipe_id:
            errors["recipe_id"] = ["Choose the recipe."]
        if not errors:
            try:
                batch = ops.start_batch(sess, unit_id=unit_id, recipe_id=recipe_id, **_sign_fields())
            except DomainError as exc:
                sess.rollback()
                errors, message = exc.errors, exc.message
                status = exc.status_code
            else:
                flash(f"Batch {batch.lot_number} started from unit {batch.cord_blood_din}.", "success")
                return redirect(url_for("execution.batch_view", batch_id=batch.id))
        else:
            message, status = "Please choose a unit and a recipe.", 422
        return render_template(T + "batch_start.html", units=assignable_units(sess),
                               recipes=recipe_ops.approved_recipes(sess), errors=errors, message=message,
                               form=request.form), status
    return render_template(T + "batch_start.html", units=assignable_units(sess),
                           recipes=recipe_ops.approved_recipes(sess), errors=errors, message=message, form={})


@bp.route("/batches/<int:batch_id>")
@require("batches.view")
def batch_view(batch_id: int) -> Any:
    sess = db.session
    batch = ops.get_batch(sess, batch_id)
    sync_equipment_exceptions(sess, batch)
    overview = batch_overview(sess, batch)
    return render_template(T + "batch_view.html", batch=batch, o=overview, reviews=reviews_of(sess, batch),
                           signatures=signatures_for(sess, batch), history=record_history("batch", batch.id))


def _batch_action(batch_id: int, action: str) -> Any:
    sess = db.session
    batch = ops.get_batch(sess, batch_id)
    reason = form_value("reason")
    if action == "hold":
        ops.hold_batch(sess, batch, reason, _version())
        flash(f"Batch {batch.lot_number} is on hold.", "warning")
    elif action == "resume":
        ops.resume_batch(sess, batch, reason, _version())
        flash(f"Batch {batch.lot_number} resumed.", "success")
    elif action == "abort":
        ops.abort_batch(sess, batch, reason=reason, expected_version=_version(), **{
            k: v for k, v in _sign_fields().items() if k != "comment"})
        flash(f"Batch {batch.lot_number} aborted.", "warning")
    elif action == "submit":
        ops.submit_batch_for_review(sess, batch, _version(), **_sign_fields())
        flash(f"Batch {batch.lot_number} sent to QA review.", "success")
    return redirect(url_for("execution.batch_view", batch_id=batch.id))


@bp.route("/batches/<int:batch_id>/hold", methods=["POST"])
@require("batches.hold")
def batch_hold(batch_id: int) -> Any:
    return _batch_action(batch_id, "hold")


@bp.route("/batches/<int:batch_id>/resume", methods=["POST"])
@require("batches.hold")
def batch_resume(batch_id: int) -> Any:
    return _batch_action(batch_id, "resume")


@bp.route("/batches/<int:batch_id>/abort", methods=["POST"])
@require("batches.abort")
def batch_abort(batch_id: int) -> Any:
    return _batch_action(batch_id, "abort")


@bp.route("/batches/<int:batch_id>/submit-review", methods=["POST"])
@require("batches.submit_review")
def batch_submit_review(batch_id: int) -> Any:
    return _batch_action(batch_id, "submit")


@bp.route("/batches/<int:batch_id>/exception-reviews", methods=["POST"])
@require("batches.review_exceptions")
def exception_review(batch_id: int) -> Any:
    ids = []
    for raw in request.form.getlist("exception_id"):
        try:
            ids.append(int(raw))
        except ValueError:
            raise ValidationFailed("The form is damaged (exception). Reload the page.") from None
    fields = _sign_fields()
    fields.pop("comment")
    review = review_exceptions(db.session, ops.get_batch(db.session, batch_id), ids, form_value("review_comment"),
                               **fields)
    count = len(review.covered.splitlines())
    flash(f"Review decision signed for {count} exception{'s' if count != 1 else ''}.", "success")
    return redirect(url_for("execution.batch_view", batch_id=batch_id) + "#exceptions")


# --- step runner ----------------------------------------------------------------------------------

def _runner(batch_id: int, step_id: int, *, errors: dict[str, list[str]] | None = None, message: str | None = None,
            form: Any = None, status: int = 200) -> Any:
    sess = db.session
    batch = ops.get_batch(sess, batch_id)
    step = ops.get_step(sess, step_id, batch)
    entries = ops.batch_entries(sess, batch)
    current = ops.live_entries(entries)
    history = [e for e in entries if e.step_id == step.id]
    steps = batch.steps
    index = steps.index(step)
    errors = errors or {}
    missing = ops.missing_entries(sess, step, current)
    calculated = {e["label"] for e in step.spec["entries"] if e["type"] == "calculation"}
    material_units = dict(sess.execute(select(Material.code, Material.unit)).all())
    return render_template(
        T + "step_runner.html", batch=batch, step=step, spec=step.spec, rows=entry_view_rows(step, current, history),
        errors=errors, message=message, form=form or {}, signatures=signatures_for(sess, step),
        missing=missing, missing_typed=[m for m in missing if m not in calculated],
        missing_calculated=[m for m in missing if m in calculated], material_units=material_units,
        confirmable={key for key, msgs in errors.items() if ops.HARD_LIMIT_ERROR in msgs}, due_at=ops.planned_start(step), due_by=ops.due_by(step),
        late=ops.is_late(step), early=ops.is_early(step), earliest=ops.earliest_start(step), earlier_open=[s for s in steps[:index] if s.status != "complete"],
        previous_step=steps[index - 1] if index > 0 else None,
        following_step=steps[index + 1] if index + 1 < len(steps) else None,
        history=history, values={k: e.value_number for k, e in current.items()},
    ), status


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>")
@require("batches.view")
def step_runner(batch_id: int, step_id: int) -> Any:
    return _runner(batch_id, step_id)


def _step_post(batch_id: int, step_id: int, work: Any, success: str) -> Any:
    sess = db.session
    try:
        batch = ops.get_batch(sess, batch_id)
        step = ops.get_step(sess, step_id, batch)
        work(sess, batch, step)
    except DomainError as exc:
        sess.rollback()
        if exc.status_code == 404:
            raise
        return _runner(batch_id, step_id, errors=exc.errors, message=exc.message, form=request.form,
                       status=exc.status_code)
    flash(success, "success")
    step = ops.get_step(sess, step_id)
    if step.status == "complete":  # on to the next step to do, or to the batch when none is left
        following = ops.next_step(step.batch)
        if following is None:
            return redirect(url_for("execution.batch_view", batch_id=batch_id))
        return redirect(url_for("execution.step_runner", batch_id=batch_id, step_id=following.id))
    return redirect(url_for("execution.step_runner", batch_id=batch_id, step_id=step_id))


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>/take", methods=["POST"])
@require("batches.execute")
def step_take(batch_id: int, step_id: int) -> Any:
    return _step_post(batch_id, step_id, lambda sess, batch, step: ops.take_step(
        sess, step, current_user, reason=form_value("reason"), expected_version=_version()),
        "You have taken this step: nobody else can enter data in it until you sign it or let go of it.")


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>/let-go", methods=["POST"])
@require("batches.execute")
def step_let_go(batch_id: int, step_id: int) -> Any:
    return _step_post(batch_id, step_id, lambda sess, batch, step: ops.let_go_of_step(
        sess, step, current_user, take_over_reason=form_value("reason")), "You let go of the step: anyone on the floor can take it now.")


def entry_inputs(step_spec: dict[str, Any]) -> dict[str, ops.EntryInput]:
    """The step's entries as posted by the runner form."""
    inputs = {}
    for entry in step_spec["entries"]:
        key = entry["key"]
        values = [v.strip() for v in request.form.getlist(key) if v.strip()]
        inputs[key] = ops.EntryInput(value=values[0] if values else "",
                                     quantity=form_value(f"{key}__quantity") or None,
                                     confirm=request.form.get(f"{key}__confirm") == "yes",
                                     comment=form_value(f"{key}__comment") or None,
                                     override_reason=form_value(f"{key}__override") or None)
    return inputs


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>/entries", methods=["POST"])
@require("batches.execute")
def step_entries(batch_id: int, step_id: int) -> Any:
    return _step_post(batch_id, step_id, lambda sess, batch, step: ops.record_entries(
        sess, step, current_user, entry_inputs(step.spec), expected_version=_version(),
        reason=form_value("reason") or None), "Saved.")


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>/sign", methods=["POST"])
@require("batches.execute")
def step_sign(batch_id: int, step_id: int) -> Any:
    meaning = form_value("meaning")
    label = "performed" if meaning == "performed" else "verified"
    return _step_post(batch_id, step_id, lambda sess, batch, step: ops.sign_step(
        sess, step, meaning=meaning, expected_version=_version(), **_sign_fields()), f"Step signed as {label}.")


@bp.route("/batches/<int:batch_id>/steps/<int:step_id>/entries/<int:entry_id>/correct", methods=["POST"])
@require("batches.execute")
def entry_correct(batch_id: int, step_id: int, entry_id: int) -> Any:
    def work(sess: Any, batch: Batch, step: Any) -> None:
        entry = ops.get_entry(sess, entry_id)
        if entry.step_id != step.id:
            raise ValidationFailed("That entry is not part of this step.")
        ops.correct_entry(sess, entry, current_user, ops.EntryInput(
            value=form_value("value"), quantity=form_value("quantity") or None,
            confirm=request.form.get("confirm") == "yes", comment=form_value("comment") or None),
            reason=form_value("reason"), expected_version=_version())

    return _step_post(batch_id, step_id, work, "Corrected. The original value is kept; sign the step again.")


# --- recipes --------------------------------------------------------------------------------------

@bp.route("/recipes/")
@require("recipes.view")
def recipe_list() -> Any:
    return render_template(T + "recipe_list.html", recipes=recipe_ops.list_recipes(db.session))


@bp.route("/recipes/<int:recipe_id>")
@require("recipes.view")
def recipe_view(recipe_id: int) -> Any:
    recipe = recipe_ops.get_recipe(db.session, recipe_id)
    labels = {key: spec["label"] for key, spec in recipe_ops.entry_specs(recipe).items()}
    return render_template(T + "recipe_view.html", recipe=recipe, spec=recipe.spec, labels=labels,
                           steps=recipe_ops.iter_steps(recipe.spec), source=recipe_ops.recipe_as_toml(recipe),
                           signatures=signatures_for(db.session, recipe), history=record_history("recipe", recipe.id))


@bp.route("/recipes/new", methods=["GET", "POST"])
@require("recipes.author")
def recipe_new() -> Any:
    sess = db.session
    if request.method == "POST":
        try:
            recipe = recipe_ops.create_recipe_draft(sess, request.form.get("definition", ""),
                                                    source_name=form_value("source_name") or None,
                                                    change_summary=form_value("change_summary") or None)
        except DomainError as exc:
            sess.rollback()
            return render_template(T + "recipe_edit.html", recipe=None, text=request.form.get("definition", ""),
                                   change_summary=form_value("change_summary"), errors=exc.errors,
                                   message=exc.message), exc.status_code
        flash(f"{recipe.label} saved as a draft.", "success")
        return redirect(url_for("execution.recipe_view", recipe_id=recipe.id))
    text = ""
    if request.args.get("from"):
        source_id = request.args.get("from", type=int)
        if source_id is None:
            raise NotFound(f"Recipe {request.args['from']!r} does not exist.")
        text = recipe_ops.recipe_as_toml(recipe_ops.get_recipe(sess, source_id))
    return render_template(T + "recipe_edit.html", recipe=None, text=text, change_summary="", errors={}, message=None)


@bp.route("/recipes/<int:recipe_id>/edit", methods=["GET", "POST"])
@require("recipes.author")
def recipe_edit(recipe_id: int) -> Any:
    sess = db.session
    recipe = recipe_ops.get_recipe(sess, recipe_id)
    if request.method == "POST":
        try:
            recipe_ops.update_recipe_draft(sess, recipe, request.form.get("definition", ""))
        except DomainError as exc:
            sess.rollback()
            recipe = recipe_ops.get_recipe(sess, recipe_id)
            return render_template(T + "recipe_edit.html", recipe=recipe, text=request.form.get("definition", ""),
                                   change_summary="", errors=exc.errors, message=exc.message), exc.status_code
        flash(f"{recipe.label} updated.", "success")
        return redirect(url_for("execution.recipe_view", recipe_id=recipe.id))
    return render_template(T + "recipe_edit.html", recipe=recipe, text=recipe_ops.recipe_as_toml(recipe),
                           change_summary="", errors={}, message=None)


@bp.route("/recipes/<int:recipe_id>/submit", methods=["POST"])
@require("recipes.author")
def recipe_submit(recipe_id: int) -> Any:
    recipe = recipe_ops.submit_recipe_for_review(db.session, recipe_ops.get_recipe(db.session, recipe_id))
    flash(f"{recipe.label} sent to QA for review.", "success")
    return redirect(url_for("execution.recipe_view", recipe_id=recipe_id))


@bp.route("/recipes/<int:recipe_id>/return", methods=["POST"])
@require("recipes.approve")
def recipe_return(recipe_id: int) -> Any:
    recipe = recipe_ops.return_recipe_to_draft(db.session, recipe_ops.get_recipe(db.session, recipe_id),
                                               form_value("reason"))
    flash(f"{recipe.label} returned to draft.", "warning")
    return redirect(url_for("execution.recipe_view", recipe_id=recipe_id))


@bp.route("/recipes/<int:recipe_id>/approve", methods=["POST"])
@require("recipes.approve")
def recipe_approve(recipe_id: int) -> Any:
    recipe = recipe_ops.approve_recipe(db.session, recipe_ops.get_recipe(db.session, recipe_id), **_sign_fields())
    flash(f"{recipe.label} approved. Batches started from now on use it.", "success")
    return redirect(url_for("execution.recipe_view", recipe_id=recipe_id))


# --- materials ------------------------------------------------------------------------------------

def _parse_date(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"'{text}' is not a date (YYYY-MM-DD).", errors={field: ["Use YYYY-MM-DD."]}) from None


@bp.route("/materials/")
@require("materials.view")
def material_list() -> Any:
    sess = db.session
    return render_template(T + "materials.html", materials=material_ops.list_materials(sess),
                           lots=material_ops.list_lots(sess), qc_statuses=QC_STATUSES, today=utcnow().date(),
                           problem=material_ops.lot_problem, errors={}, form={})


@bp.route("/materials/new", methods=["POST"])
@require("materials.manage")
def material_new() -> Any:
    material = material_ops.create_material(db.session, code=form_value("code"), name=form_value("name"),
                                            unit=form_value("unit"))
    flash(f"Material {material.code} added.", "success")
    return redirect(url_for("execution.material_list"))


@bp.route("/materials/lots/new", methods=["POST"])
@require("materials.manage")
def lot_new() -> Any:
    from batches.execution.limits import parse_number

    material = material_ops.get_material_by_code(db.session, form_value("material_code"))
    quantity_text = form_value("quantity")
    lot = material_ops.receive_lot(db.session, material, lot_number=form_value("lot_number"),
                                   expiry_date=_parse_date(form_value("expiry_date"), "expiry_date"),
                                   quantity=parse_number(quantity_text, "Quantity") if quantity_text else None,
                                   supplier=form_value("supplier"), qc_status="quarantined")
    flash(f"Lot {lot.lot_number} of {material.code} received ({lot.qc_status}).", "success")
    return redirect(url_for("execution.material_list"))


@bp.route("/materials/lots/<int:lot_id>/status", methods=["POST"])
@require("materials.qc_status")
def lot_status(lot_id: int) -> Any:
    fields = _sign_fields()
    fields.pop("comment")
    lot = material_ops.set_lot_qc_status(db.session, material_ops.get_lot(db.session, lot_id),
                                         form_value("qc_status"), form_value("reason"), **fields)
    flash(f"Lot {lot.lot_number} is now {lot.qc_status}.", "success")
    return redirect(url_for("execution.material_list"))


# --- deviations -----------------------------------------------------------------------------------

@bp.route("/deviations/")
@require("deviations.view")
def deviation_list() -> Any:
    status = request.args.get("status") or None
    return render_template(T + "deviation_list.html",
                           deviations=deviation_ops.list_deviations(db.session, status=status), status=status)


@bp.route("/deviations/new", methods=["GET", "POST"])
@require("deviations.open")
def deviation_new() -> Any:
    sess = db.session
    if request.method == "POST":
        try:
            batch = None
            if form_value("batch_id"):
                batch_id = request.form.get("batch_id", type=int)
                if batch_id is None:
                    raise ValidationFailed("Choose the batch from the list.", errors={"batch_id": ["Unknown batch."]})
                batch = ops.get_batch(sess, batch_id)
            deviation = deviation_ops.open_deviation_by_hand(sess, title=form_value("title"),
                                                             description=form_value("description"), batch=batch)
        except DomainError as exc:
            sess.rollback()
            return render_template(T + "deviation_new.html", batches=ops.list_batches(sess), errors=exc.errors,
                                   message=exc.message, form=request.form), exc.status_code
        flash(f"Deviation {deviation.number} opened.", "success")
        return redirect(url_for("execution.deviation_view", deviation_id=deviation.id))
    return render_template(T + "deviation_new.html", batches=ops.list_batches(sess), errors={}, message=None,
                           form={"batch_id": request.args.get("batch_id", "")})


@bp.route("/deviations/<int:deviation_id>")
@require("deviations.view")
def deviation_view(deviation_id: int) -> Any:
    deviation = deviation_ops.get_deviation(db.session, deviation_id)
    return render_template(T + "deviation_view.html", d=deviation, classes=DEVIATION_CLASSES,
                           signatures=signatures_for(db.session, deviation),
                           history=record_history("deviation", deviation.id))


@bp.route("/deviations/<int:deviation_id>/assess", methods=["POST"])
@require("deviations.manage")
def deviation_assess(deviation_id: int) -> Any:
    deviation = deviation_ops.get_deviation(db.session, deviation_id)
    deviation_ops.assess_deviation(db.session, deviation, classification=form_value("classification") or None,
                                   impact_assessment=form_value("impact_assessment"))
    flash(f"{deviation.number}: assessment saved.", "success")
    return redirect(url_for("execution.deviation_view", deviation_id=deviation_id))


@bp.route("/deviations/<int:deviation_id>/close", methods=["POST"])
@require("deviations.manage")
def deviation_close(deviation_id: int) -> Any:
    deviation = deviation_ops.get_deviation(db.session, deviation_id)
    deviation_ops.close_deviation(db.session, deviation, **_sign_fields())
    flash(f"{deviation.number} closed.", "success")
    return redirect(url_for("execution.deviation_view", deviation_id=deviation_id))

