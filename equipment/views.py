"""Tablet pages: equipment list with live state, asset page (chart, alarms, gaps, calibration, usage,
tags), registration, address-space browsing, alarm acknowledge, shelving and unshelving."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from app import db
from app.db import utcnow
from app.errors import DomainError, ValidationFailed
from app.permissions import require
from app.web import form_value, parse_local_datetime, safe_next, site_time, site_zone
from equipment import operations as ops
from equipment.telemetry import CLOCK_TOLERANCE_S
from equipment.chart import telemetry_chart_drawing, telemetry_chart_svg, telemetry_chart_svg_document
from equipment.models import (ASSET_STATUSES, ASSET_TYPES, CONCURRENT_ASSET_TYPES, MAX_CAPACITY, SECURITY_MODES,
                              SECURITY_POLICIES)
from equipment.schemas import TAG_BOUNDS

bp = Blueprint("equipment", __name__, url_prefix="/equipment", static_folder="static",
               static_url_path="/static")

RANGES = {"1h": timedelta(hours=1), "8h": timedelta(hours=8), "24h": timedelta(days=1), "7d": timedelta(days=7),
          "14d": timedelta(days=14)}
# A chart window must stay a day clear of the calendar's ends, so that showing it in any zone cannot overflow.
EARLIEST = datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=1)


@bp.app_template_filter("security_label")
def security_label(name: str | None) -> str:
    """OPC UA calls no security "None": say it in words on a page."""
    return "no security" if name in (None, "None") else name


def _asset_state(asset: Any) -> dict[str, Any]:
    sess = db.session
    calibration = ops.service_status(sess, asset, "calibration")
    return {
        "asset": asset,
        "readings": ops.latest_readings(sess, asset.id),
        "alarms": ops.alarms_needing_attention(sess, asset.id),
        "gaps": ops.open_gaps(sess, asset.id),
        "calibration": calibration,
        "usability": ops.asset_usability(sess, asset, calibration=calibration),
        "rejected": ops.rejected_telemetry_count(sess, asset.id),
    }


def _drawable(start: datetime | None, end: datetime | None) -> bool:
    """Both ends given with a time zone, in order, and inside the range a chart can show."""
    return (start is not None and end is not None and start.tzinfo is not None and end.tzinfo is not None
            and EARLIEST < start < end < LATEST)


@bp.route("/")
@require("equipment.view")
def equipment_list() -> Any:
    states = [_asset_state(a) for a in ops.list_assets(db.session)]
    return render_template("equipment/list.html", states=states)


@bp.route("/new", methods=["GET", "POST"])
@require("equipment.manage")
def asset_new() -> Any:
    form: dict[str, Any] = {"security_policy": "None", "security_mode": "None", "capacity": "1"}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            asset = ops.create_asset(db.session, code=form_value("code"), name=form_value("name"),
                                     asset_type=form_value("asset_type"), location=form_value("location"),
                                     endpoint_url=form_value("endpoint_url"),
                                     security_policy=form_value("security_policy", "None"),
                                     security_mode=form_value("security_mode", "None"),
                                     opc_username=form_value("opc_username"),
                                     opc_password=request.form.get("opc_password") or None,
                                     capacity=form_value("capacity") or "1")
        except DomainError as exc:
            db.session.rollback()
            return render_template("equipment/new.html", form=form, errors=exc.errors, message=exc.message,
                                   **_choices()), exc.status_code
        flash(f"{asset.code} registered. Record its calibration before it can be used.", "success")
        return redirect(url_for("equipment.asset_page", asset_id=asset.id))
    return render_template("equipment/new.html", form=form, errors={}, message=None, **_choices())


def _choices() -> dict[str, Any]:
    return {"asset_types": list(ASSET_TYPES.items()), "statuses": list(ASSET_STATUSES.items()),
            "policies": [(p, security_label(p)) for p in SECURITY_POLICIES],
            "modes": [(m, security_label(m)) for m in SECURITY_MODES], "max_capacity": MAX_CAPACITY,
            "concurrent_types": [ASSET_TYPES[t] for t in ASSET_TYPES if t in CONCURRENT_ASSET_TYPES]}


def _window() -> tuple[Any, Any, str]:
    """The chart window from the query: a preset range, or typed start and end in the site zone."""
    chosen = request.args.get("range", "24h")
    end = utcnow()
    typed_start = typed_end = None
    try:
        typed_start = parse_local_datetime(request.args.get("start"))
        typed_end = parse_local_datetime(request.args.get("end"))
    except ValidationFailed as exc:
        flash(exc.message, "error")
    except OverflowError:  # a date at the calendar's edge that the site zone pushes past it
        flash("That date is out of range.", "error")
    if _drawable(typed_start, typed_end):
        return typed_start, typed_end, "custom"
    if chosen not in RANGES:
        chosen = "24h"
    return end - RANGES[chosen], end, chosen


@bp.route("/<int:asset_id>")
@require("equipment.view")
def asset_page(asset_id: int) -> Any:
    return _render_asset(ops.get_asset(db.session, asset_id))


def _render_asset(asset: Any, status_code: int = 200, capacity_form: dict[str, str] | None = None,
                  capacity_errors: dict[str, list[str]] | None = None, capacity_message: str | None = None) -> Any:
    state = _asset_state(asset)
    start, end, chosen = _window()
    tags = list(asset.tags)
    tag_id = request.args.get("tag", type=int) or (tags[0].id if tags else None)
    tag = next((t for t in tags if t.id == tag_id), None)
    chart = None
    if tag is not None:
        chart = telemetry_chart_svg(telemetry_chart_drawing(db.session, asset, tag, start, end, zone=site_zone()),
                                    asset, tag)
    return render_template(
        "equipment/asset.html", **state, tags=tags, tag_id=tag_id, start=start, end=end, chosen=chosen,
        ranges=list(RANGES), chart=chart, window_alarms=ops.alarms_in_window(db.session, asset.id, start, end),
        window_gaps=ops.gaps_in_window(db.session, asset.id, start, end),
        recent_alarms=ops.recent_alarms(db.session, asset.id, 20), shelved=ops.shelved_alarms(db.session, asset.id),
        services=sorted(asset.service_records, key=lambda r: r.performed_on, reverse=True),
        maintenance=ops.service_status(db.session, asset, "maintenance"),
        usages=ops.usage_log(db.session, asset.id), statuses=list(ASSET_STATUSES.items()),
        max_shelve=ops.MAX_SHELVE_MINUTES,
        link=ops.link_status(db.session, asset.id), clock_tolerance=CLOCK_TOLERANCE_S,
        occupants=ops.open_usages(db.session, asset.id), concurrent=asset.asset_type in CONCURRENT_ASSET_TYPES,
        max_capacity=MAX_CAPACITY, capacity_form=capacity_form or {}, capacity_errors=capacity_errors or {},
        capacity_message=capacity_message,
    ), status_code


@bp.route("/<int:asset_id>/capacity", methods=["GET", "POST"])
@require("equipment.manage")
def asset_capacity(asset_id: int) -> Any:
    """Change how many records may occupy the asset at once; a refusal is shown on the asset page, unsaved
    (reloading that page's address leads back to the asset page)."""
    asset = ops.get_asset(db.session, asset_id)
    if request.method == "GET":
        return redirect(url_for("equipment.asset_page", asset_id=asset.id, _anchor="capacity"))
    try:
        ops.set_capacity(db.session, asset, form_value("capacity"), form_value("reason"))
    except DomainError as exc:
        db.session.rollback()
        asset = ops.get_asset(db.session, asset_id)
        return _render_asset(asset, exc.status_code, capacity_form=request.form.to_dict(),
                             capacity_errors=exc.errors, capacity_message=exc.message)
    flash(f"{asset.code} now holds up to {asset.capacity} record{'s' if asset.capacity != 1 else ''} at once.",
          "success")
    return redirect(url_for("equipment.asset_page", asset_id=asset.id, _anchor="capacity"))


@bp.route("/<int:asset_id>/chart.svg")
@require("equipment.view")
def chart_svg(asset_id: int) -> Any:
    asset = ops.get_asset(db.session, asset_id)
    tag = ops.get_tag(db.session, request.args.get("tag", type=int) or 0)
    if tag.asset_id != asset.id:
        raise ValidationFailed("That parameter belongs to other equipment.")
    try:
        start = datetime.fromisoformat(request.args.get("start", ""))
        end = datetime.fromisoformat(request.args.get("end", ""))
    except ValueError:
        start = end = None
    if not _drawable(start, end):
        end = utcnow()
        start = end - RANGES["24h"]
    drawing = telemetry_chart_drawing(db.session, asset, tag, start, end, zone=site_zone())
    svg = telemetry_chart_svg_document(drawing, asset, tag)
    return Response(svg, mimetype="image/svg+xml")


@bp.route("/<int:asset_id>/status", methods=["POST"])
@require("equipment.status")
def asset_status(asset_id: int) -> Any:
    asset = ops.get_asset(db.session, asset_id)
    ops.set_asset_status(db.session, asset, form_value("status"), form_value("reason"))
    flash(f"{asset.code} is now {asset.status_label.lower()}.", "success")
    return redirect(url_for("equipment.asset_page", asset_id=asset.id))


@bp.route("/<int:asset_id>/service", methods=["POST"])
@require("equipment.calibrate")
def asset_service(asset_id: int) -> Any:
    asset = ops.get_asset(db.session, asset_id)
    record = ops.record_service(db.session, asset, kind=form_value("kind"), performed_on=form_value("performed_on"),
                                due_on=form_value("due_on"), result=form_value("result"),
                                performed_by=form_value("performed_by"),
                                certificate_ref=form_value("certificate_ref"), notes=form_value("notes"))
    flash(f"{record.kind.title()} recorded; next due {record.due_on.isoformat()}.", "success")
    return redirect(url_for("equipment.asset_page", asset_id=asset.id))


@bp.route("/<int:asset_id>/connection", methods=["POST"])
@require("equipment.manage")
def asset_connection(asset_id: int) -> Any:
    asset = ops.get_asset(db.session, asset_id)
    ops.update_connection(db.session, asset, endpoint_url=form_value("endpoint_url"),
                          security_policy=form_value("security_policy", "None"),
                          security_mode=form_value("security_mode", "None"),
                          opc_username=form_value("opc_username"), opc_password=request.form.get("opc_password"),
                          reason=form_value("reason"))
    flash("Connection saved; the collector picks it up within a minute.", "success")
    return redirect(url_for("equipment.asset_page", asset_id=asset.id))


def _tag_values() -> dict[str, Any]:
    return {key: request.form.get(key, "") for key in
            ("node_id", "parameter", "unit", "low_limit", "high_limit", "on_delay_s", "off_delay_s", "deadband")}


@bp.route("/<int:asset_id>/tags", methods=["POST"])
@require("equipment.manage")
def tag_add(asset_id: int) -> Any:
    asset = ops.get_asset(db.session, asset_id)
    tag = ops.add_tag(db.session, asset, **_tag_values())
    flash(f"{tag.parameter} added ({tag.node_id}).", "success")
    return redirect(url_for("equipment.asset_page", asset_id=asset.id))


@bp.route("/tags/<int:tag_id>", methods=["GET", "POST"])
@require("equipment.manage")
def tag_edit(tag_id: int) -> Any:
    tag = ops.get_tag(db.session, tag_id)
    if request.method == "POST":
        values = _tag_values()
        values["active"] = request.form.get("active") == "on"
        try:
            ops.update_tag(db.session, tag, form_value("reason"), **values)
        except DomainError as exc:  # show the form again with what was typed and each field's message
            db.session.rollback()
            return render_template("equipment/tag.html", tag=tag, asset=tag.asset, form={**values,
                                   "reason": request.form.get("reason", "")}, errors=exc.errors,
                                   message=exc.message, bounds=TAG_BOUNDS), exc.status_code
        flash(f"{tag.parameter} saved.", "success")
        return redirect(url_for("equipment.asset_page", asset_id=tag.asset_id))
    form = {key: getattr(tag, key) for key in ("node_id", "parameter", "unit", "low_limit", "high_limit",
                                               "on_delay_s", "off_delay_s", "deadband", "active")}
    return render_template("equipment/tag.html", tag=tag, asset=tag.asset, form=form, errors={}, message=None,
                           bounds=TAG_BOUNDS)


@bp.route("/<int:asset_id>/browse")
@require("equipment.manage")
def browse(asset_id: int) -> Any:
    from equipment.opcua.browse import browse_children

    asset = ops.get_asset(db.session, asset_id)
    node = request.args.get("node") or None
    error, children = None, []
    if not asset.endpoint_url:
        error = "Set the OPC UA endpoint of this equipment first."
    else:
        try:
            children = asyncio.run(browse_children(asset, node))
        except Exception as exc:  # the endpoint is down or refuses us: say so in plain words
            error = f"Could not browse {asset.endpoint_url}: {type(exc).__name__} {exc}".strip()
    mapped = {t.node_id for t in asset.tags}
    return render_template("equipment/browse.html", asset=asset, node=node, children=children, error=error,
                           mapped=mapped)


@bp.route("/alarms/<int:alarm_id>/acknowledge", methods=["POST"])
@require("equipment.alarms")
def alarm_acknowledge(alarm_id: int) -> Any:
    alarm = ops.get_alarm(db.session, alarm_id)
    ops.acknowledge_alarm(db.session, alarm, form_value("comment"))
    flash(f"Alarm on {alarm.parameter} acknowledged.", "success")
    if request.form.get("next"):
        return redirect(safe_next(request.form.get("next")))
    return redirect(url_for("equipment.asset_page", asset_id=alarm.asset_id))


@bp.route("/alarms/<int:alarm_id>/shelve", methods=["POST"])
@require("equipment.alarms")
def alarm_shelve(alarm_id: int) -> Any:
    alarm = ops.get_alarm(db.session, alarm_id)
    ops.shelve_alarm(db.session, alarm, form_value("minutes"), form_value("reason"))
    flash(f"Alarm on {alarm.parameter} shelved until {site_time(alarm.shelved_until, '%H:%M %Z')}.", "success")
    return redirect(url_for("equipment.asset_page", asset_id=alarm.asset_id))


@bp.route("/alarms/<int:alarm_id>/unshelve", methods=["POST"])
@require("equipment.alarms")
def alarm_unshelve(alarm_id: int) -> Any:
    alarm = ops.get_alarm(db.session, alarm_id)
    ops.unshelve_alarm(db.session, alarm, form_value("reason"))
    flash(f"Alarm on {alarm.parameter} is back on the active list.", "success")
    return redirect(url_for("equipment.asset_page", asset_id=alarm.asset_id))
