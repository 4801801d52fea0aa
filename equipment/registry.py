"""Equipment registry: assets, their OPC UA connection and tags, calibration and maintenance, usage.

Operations flush and audit; they never commit (the request or the collector's unit of work does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import utcnow
from app.errors import Conflict, NotFound, ReasonRequired, ValidationFailed
from app.numbers import NumberFormatError, parse_number
from equipment.models import (
    ASSET_STATUSES,
    ASSET_TYPES,
    CONCURRENT_ASSET_TYPES,
    MAX_CAPACITY,
    SECURITY_MODES,
    SECURITY_POLICIES,
    SERVICE_KINDS,
    SERVICE_RESULTS,
    Asset,
    AssetUsage,
    ServiceRecord,
    Tag,
)
from equipment.schemas import TAG_BOUNDS

CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._-]{1,39}")
ENDPOINT_PATTERN = re.compile(r"^opc\.tcp://[^\s/:]+(:\d{1,5})?(/\S*)?$")


@dataclass
class Usability:
    """Whether an asset may be used now, and why not when it may not."""

    usable: bool
    reason: str | None
    asset: Asset | None


def _require_reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(f"{what} needs a reason.", errors={"reason": ["Give the reason for the change."]})
    return reason


def _clean(value: Any) -> str:
    return (value or "").strip() if isinstance(value, str) or value is None else str(value).strip()


def _check_lengths(errors: dict[str, list[str]], model: Any, **values: str | None) -> None:
    """Refuse text longer than its column (PostgreSQL would refuse it at flush with a server error)."""
    for field, value in values.items():
        limit = model.__table__.c[field].type.length
        if value and len(value) > limit:
            errors.setdefault(field, []).append(f"At most {limit} characters.")


# --- assets -------------------------------------------------------------------------------------

def get_asset(sess: Session, asset_id: int) -> Asset:
    asset = sess.get(Asset, asset_id)
    if asset is None:
        raise NotFound("No such equipment.")
    return asset


def find_asset(sess: Session, code: str) -> Asset | None:
    """The asset with this code (as typed or scanned; case and surrounding spaces ignored)."""
    code = _clean(code).upper()
    if not code:
        return None
    return sess.execute(select(Asset).where(Asset.code == code)).scalar_one_or_none()


def list_assets(sess: Session) -> list[Asset]:
    return list(sess.execute(select(Asset).order_by(Asset.code)).scalars())


def _validate_connection(errors: dict[str, list[str]], endpoint_url: str | None, policy: str, mode: str,
                         opc_username: str | None) -> None:
    if endpoint_url and not ENDPOINT_PATTERN.match(endpoint_url):
        errors["endpoint_url"] = ["Use an OPC UA address such as opc.tcp://10.0.0.5:4840."]
    _check_lengths(errors, Asset, endpoint_url=endpoint_url, opc_username=opc_username)
    if policy not in SECURITY_POLICIES:
        errors["security_policy"] = [f"Choose one of {', '.join(SECURITY_POLICIES)}."]
    if mode not in SECURITY_MODES:
        errors["security_mode"] = [f"Choose one of {', '.join(SECURITY_MODES)}."]
    elif policy in SECURITY_POLICIES and (policy == "None") != (mode == "None"):
        errors["security_mode"] = ["Policy None goes with mode None; Basic256Sha256 needs Sign or SignAndEncrypt."]


def _set_connection(asset: Asset, endpoint_url: str | None, security_policy: str, security_mode: str,
                    opc_username: str | None, opc_password: str | None) -> None:
    """Store a validated connection; a blank password keeps the stored one, no user means no password."""
    asset.endpoint_url = endpoint_url
    asset.security_policy = security_policy
    asset.security_mode = security_mode
    asset.opc_username = opc_username
    if not opc_username:
        asset.opc_password_encrypted = None
    elif opc_password:
        from equipment.opcua.security import encrypt_secret

        asset.opc_password_encrypted = encrypt_secret(opc_password)


def create_asset(sess: Session, *, code: str, name: str, asset_type: str, location: str,
                 endpoint_url: str | None = None, security_policy: str = "None", security_mode: str = "None",
                 opc_username: str | None = None, opc_password: str | None = None,
                 status: str = "available", capacity: Any = 1) -> Asset:
    """Register a piece of equipment; its code is what operators scan."""
    code = _clean(code).upper()
    name, location, asset_type = _clean(name), _clean(location), _clean(asset_type)
    endpoint_url, opc_username = _clean(endpoint_url) or None, _clean(opc_username) or None
    errors: dict[str, list[str]] = {}
    if not CODE_PATTERN.fullmatch(code):
        errors["code"] = ["2 to 40 capital letters, digits, dot, dash or underscore (e.g. CO2-INC-01)."]
    if not name:
        errors["name"] = ["Give the equipment a name."]
    if not location:
        errors["location"] = ["Say where the equipment is (room)."]
    if asset_type not in ASSET_TYPES:
        errors["asset_type"] = ["Choose the type of equipment."]
    if status not in ASSET_STATUSES:
        errors["status"] = ["Choose a status."]
    _check_lengths(errors, Asset, name=name, location=location)
    _validate_connection(errors, endpoint_url, security_policy, security_mode, opc_username)
    places = _capacity(capacity, asset_type, errors)
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    if find_asset(sess, code) is not None:
        raise Conflict(f"Equipment {code} is already registered.", errors={"code": ["Already registered."]})
    asset = Asset(code=code, name=name, asset_type=asset_type, location=location, status=status,
                  capacity=places, created_at=utcnow())
    _set_connection(asset, endpoint_url, security_policy, security_mode, opc_username, opc_password)
    sess.add(asset)
    sess.flush()
    return asset


def _capacity(value: Any, asset_type: str, errors: dict[str, list[str]]) -> int:
    """How many records may occupy the asset at once: a whole number, above 1 only where the type allows it."""
    text = _clean(value) or "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_CAPACITY:
        errors["capacity"] = [f"A whole number from 1 to {MAX_CAPACITY}."]
        return 1
    if int(text) > 1 and asset_type not in CONCURRENT_ASSET_TYPES:
        errors["capacity"] = [f"A {ASSET_TYPES.get(asset_type, asset_type).lower()} holds one record at a time."]
    return int(text)


def set_capacity(sess: Session, asset: Asset, capacity: Any, reason: str) -> None:
    """Change how many records may occupy the asset at once (not below those occupying it now)."""
    reason = _require_reason(reason, "Changing the capacity")
    errors: dict[str, list[str]] = {}
    places = _capacity(capacity, asset.asset_type, errors)
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    in_use = open_usages(sess, asset.id)
    if places < len(in_use):
        raise Conflict(f"{asset.code} is occupied by {len(in_use)} records now ({_usage_names(in_use)}); "
                       f"end some first.", errors={"capacity": ["Below the records occupying it now."]})
    with audit_reason(sess, reason):
        asset.capacity = places
    sess.flush()


def update_connection(sess: Session, asset: Asset, *, endpoint_url: str | None, security_policy: str,
                      security_mode: str, opc_username: str | None, opc_password: str | None,
                      reason: str) -> None:
    """Change how the collector reaches an asset; a blank password keeps the stored one."""
    reason = _require_reason(reason, "Changing an OPC UA connection")
    endpoint_url, opc_username = _clean(endpoint_url) or None, _clean(opc_username) or None
    errors: dict[str, list[str]] = {}
    _validate_connection(errors, endpoint_url, security_policy, security_mode, opc_username)
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    with audit_reason(sess, reason):
        _set_connection(asset, endpoint_url, security_policy, security_mode, opc_username, opc_password)


def set_asset_status(sess: Session, asset: Asset, status: str, reason: str) -> None:
    """Put an asset out of service, into cleaning, or back to available (with a reason)."""
    reason = _require_reason(reason, "Changing the equipment status")
    if status not in ASSET_STATUSES:
        raise ValidationFailed("Choose a status.", errors={"status": [f"One of {', '.join(ASSET_STATUSES)}."]})
    usages = open_usages(sess, asset.id) if status == "available" else []
    if usages:
        raise Conflict(f"{asset.code} is still in use by {_usage_names(usages)}; end that use first.")
    with audit_reason(sess, reason):
        asset.status = status


# --- calibration and maintenance ------------------------------------------------------------------

def _parse_date(value: Any, field: str, errors: dict[str, list[str]]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(_clean(value))
    except ValueError:
        errors[field] = ["Enter a date as YYYY-MM-DD."]
        return None


def record_service(sess: Session, asset: Asset, *, kind: str, performed_on: Any, due_on: Any, result: str,
                   performed_by: str, certificate_ref: str | None = None, notes: str | None = None) -> ServiceRecord:
    """Record a calibration or maintenance and the date the next one is due."""
    errors: dict[str, list[str]] = {}
    if kind not in SERVICE_KINDS:
        errors["kind"] = ["Choose calibration or maintenance."]
    if result not in SERVICE_RESULTS:
        errors["result"] = ["Choose pass or fail."]
    performed = _parse_date(performed_on, "performed_on", errors)
    due = _parse_date(due_on, "due_on", errors)
    if performed and performed > utcnow().date():
        errors["performed_on"] = ["A service cannot be recorded before it is done (date is in the future)."]
    if performed and due and due <= performed:
        errors["due_on"] = ["The next due date must be after the date performed."]
    performed_by, certificate_ref = _clean(performed_by), _clean(certificate_ref) or None
    if not performed_by:
        errors["performed_by"] = ["Say who performed it (person or service company)."]
    _check_lengths(errors, ServiceRecord, performed_by=performed_by, certificate_ref=certificate_ref)
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    record = ServiceRecord(asset_id=asset.id, kind=kind, performed_on=performed, due_on=due, result=result,
                           performed_by=performed_by, certificate_ref=certificate_ref,
                           notes=_clean(notes) or None, created_at=utcnow())
    sess.add(record)
    sess.flush()
    sess.expire(asset, ["service_records"])
    return record


def latest_service(sess: Session, asset_id: int, kind: str) -> ServiceRecord | None:
    """The most recent valid (not voided) record of this kind."""
    return sess.execute(
        select(ServiceRecord).where(ServiceRecord.asset_id == asset_id, ServiceRecord.kind == kind,
                                    ServiceRecord.voided_at.is_(None))
        .order_by(ServiceRecord.performed_on.desc(), ServiceRecord.id.desc()).limit(1)
    ).scalar_one_or_none()


@dataclass
class ServiceStatus:
    kind: str
    record: ServiceRecord | None
    due_on: date | None
    overdue: bool
    failed: bool
    due_soon: bool

    @property
    def label(self) -> str:
        if self.record is None:
            return "none on record"
        if self.failed:
            return f"failed on {self.record.performed_on.isoformat()}"
        if self.overdue:
            return f"overdue since {self.due_on.isoformat()}"  # type: ignore[union-attr]
        return f"due {self.due_on.isoformat()}"  # type: ignore[union-attr]


def service_status(sess: Session, asset: Asset, kind: str = "calibration", at: datetime | None = None) -> ServiceStatus:
    """Calibration (or maintenance) state of an asset on a day: due date, overdue, failed, due within 14 days."""
    today = (at or utcnow()).date()
    record = latest_service(sess, asset.id, kind)
    if record is None:
        return ServiceStatus(kind, None, None, True, False, False)
    overdue = record.due_on < today
    return ServiceStatus(kind, record, record.due_on, overdue, record.result == "fail",
                         not overdue and record.due_on <= today + timedelta(days=14))


# --- usability and usage log ----------------------------------------------------------------------

def open_usages(sess: Session, asset_id: int) -> list[AssetUsage]:
    return list(sess.execute(
        select(AssetUsage).where(AssetUsage.asset_id == asset_id, AssetUsage.ended_at.is_(None))
        .order_by(AssetUsage.started_at)
    ).scalars())


def _usage_names(usages: list[AssetUsage]) -> str:
    return ", ".join(f"{u.record_type} {u.record_id}" for u in usages)


def check_asset_usable(sess: Session, asset_code: str, at: datetime | None = None) -> Usability:
    """May this asset be used now? Usable when its status is available and calibration is current."""
    asset = find_asset(sess, asset_code)
    if asset is None:
        shown = _clean(asset_code) or "(blank)"
        return Usability(False, f"No equipment with the code {shown} is registered.", None)
    return asset_usability(sess, asset, at)


def asset_usability(sess: Session, asset: Asset, at: datetime | None = None,
                    calibration: ServiceStatus | None = None) -> Usability:
    """The same answer for an asset already loaded (with its calibration status, when already known)."""
    users = open_usages(sess, asset.id) if asset.status == "in_use" else []
    shared = asset.status == "in_use" and users and len(users) < (asset.capacity or 1)
    if asset.status != "available" and not shared:
        reason = f"{asset.code} is {asset.status_label.lower()}"
        if users:
            reason += f" by {_usage_names(users)}"
            if (asset.capacity or 1) > 1:
                reason += f" (all {asset.capacity} places taken)"
        return Usability(False, reason + ".", asset)
    if calibration is None:
        calibration = service_status(sess, asset, "calibration", at)
    if calibration.record is None:
        return Usability(False, f"{asset.code} has no calibration on record.", asset)
    if calibration.failed:
        return Usability(False, f"{asset.code} failed its last calibration on "
                         f"{calibration.record.performed_on.isoformat()}.", asset)
    if calibration.overdue:
        return Usability(False, f"{asset.code} calibration was due {calibration.due_on.isoformat()}.",  # type: ignore[union-attr]
                         asset)
    return Usability(True, None, asset)


def start_usage(sess: Session, asset_code: str, *, record_type: str, record_id: str,
                started_at: datetime | None = None) -> AssetUsage:
    """Log that a record occupies an asset from now (refused with the reason if it may not be used)."""
    record_type, record_id = _clean(record_type), _clean(record_id)
    if not record_type or not record_id:
        raise ValidationFailed("Say which record uses the equipment.",
                               errors={"record_id": ["The record type and identifier are required."]})
    errors: dict[str, list[str]] = {}
    _check_lengths(errors, AssetUsage, record_type=record_type, record_id=record_id)
    if errors:
        raise ValidationFailed("The record type or identifier is too long.", errors=errors)
    at = started_at or utcnow()
    usability = check_asset_usable(sess, asset_code, at)
    if not usability.usable:
        raise Conflict(usability.reason or "This equipment may not be used now.",
                       errors={"asset_code": [usability.reason or "Not usable."]})
    asset = usability.asset
    assert asset is not None
    usage = AssetUsage(asset_id=asset.id, record_type=record_type, record_id=record_id, started_at=at,
                       started_by=current_actor().username)
    sess.add(usage)
    asset.status = "in_use"
    sess.flush()
    return usage


def end_usage(sess: Session, usage: AssetUsage, ended_at: datetime | None = None) -> None:
    """Close a usage; the asset becomes available again when nothing else occupies it."""
    if usage.ended_at is not None:
        raise Conflict(f"This use of the equipment already ended at {usage.ended_at.isoformat()}.")
    at = ended_at or utcnow()
    if at < usage.started_at:
        raise ValidationFailed("The end of use cannot be before its start.",
                               errors={"ended_at": ["Must be after the start of use."]})
    usage.ended_at = at
    sess.flush()
    asset = sess.get(Asset, usage.asset_id)
    if asset is not None and asset.status == "in_use" and not open_usages(sess, asset.id):
        asset.status = "available"
        sess.flush()


def usage_log(sess: Session, asset_id: int, limit: int = 50) -> list[AssetUsage]:
    return list(sess.execute(
        select(AssetUsage).where(AssetUsage.asset_id == asset_id)
        .order_by(AssetUsage.started_at.desc()).limit(limit)
    ).scalars())


# --- tags ---------------------------------------------------------------------------------------

def _float_or_none(value: Any, field: str, errors: dict[str, list[str]]) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_number(value)
    except NumberFormatError as exc:
        errors[field] = [str(exc)]
        return None


def _bounded_float(value: Any, field: str, errors: dict[str, list[str]]) -> float | None:
    number = _float_or_none(value, field, errors)
    low, high, message = TAG_BOUNDS[field]
    if number is not None and not low <= number <= high:
        errors[field] = [message]
    return number


def _validate_tag(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    node_id = _clean(values.get("node_id"))
    parameter = _clean(values.get("parameter"))
    if not node_id:
        errors["node_id"] = ["Give the OPC UA NodeId (e.g. ns=2;s=CO2-INC-01.Temperature) or pick it by browsing."]
    else:
        from asyncua import ua

        try:
            ua.NodeId.from_string(node_id)
        except Exception:  # asyncua raises several types for a malformed NodeId
            errors["node_id"] = ["This is not a valid NodeId (e.g. ns=2;s=Name or ns=2;i=1001)."]
    if not parameter:
        errors["parameter"] = ["Name the parameter (e.g. Temperature)."]
    clean = {"node_id": node_id, "parameter": parameter, "unit": _clean(values.get("unit"))}
    _check_lengths(errors, Tag, **clean)
    for field in ("low_limit", "high_limit"):
        clean[field] = _bounded_float(values.get(field), field, errors)
    for field in ("on_delay_s", "off_delay_s", "deadband"):
        number = _bounded_float(values.get(field), field, errors)
        if number is not None and number < 0:
            errors[field] = ["Cannot be negative."]
        clean[field] = number or 0.0
    low, high = clean["low_limit"], clean["high_limit"]
    if low is not None and high is not None and low >= high:
        errors["high_limit"] = ["The high limit must be above the low limit."]
    elif low is not None and high is not None and "deadband" not in errors and clean["deadband"] >= high - low:
        # a wider deadband could only clear a high alarm below the low limit (and the reverse)
        errors["deadband"] = [f"Must be narrower than the band between the limits ({high - low:g})."]
    if errors:
        raise ValidationFailed("Please correct the highlighted fields.", errors=errors)
    return clean


def _refuse_clashing_tag(sess: Session, asset: Asset, clean: dict[str, Any], tag_id: int | None = None) -> None:
    """Another tag of the asset (other than tag_id) with the same parameter name (any case) or NodeId."""
    stmt = select(Tag).where(Tag.asset_id == asset.id, or_(func.lower(Tag.parameter) == clean["parameter"].lower(),
                                                           Tag.node_id == clean["node_id"]))
    if tag_id is not None:
        stmt = stmt.where(Tag.id != tag_id)
    existing = sess.execute(stmt.order_by(Tag.id).limit(1)).scalar_one_or_none()
    if existing is None:
        return
    if existing.parameter.lower() == clean["parameter"].lower():
        raise Conflict(f"{asset.code} already has a parameter {existing.parameter}.",
                       errors={"parameter": ["Already defined for this equipment."]})
    raise Conflict(f"{clean['node_id']} is already mapped to {existing.parameter}.",
                   errors={"node_id": ["Already mapped."]})


def add_tag(sess: Session, asset: Asset, **values: Any) -> Tag:
    """Map an OPC UA variable to a parameter of the asset, with its alarm settings."""
    clean = _validate_tag(values)
    _refuse_clashing_tag(sess, asset, clean)
    tag = Tag(asset_id=asset.id, created_at=utcnow(), active=True, **clean)
    sess.add(tag)
    sess.flush()
    sess.expire(asset, ["tags"])
    return tag


def update_tag(sess: Session, tag: Tag, reason: str, **values: Any) -> None:
    """Change a tag's mapping, unit, limits or alarm timing (with a reason)."""
    reason = _require_reason(reason, "Changing a tag or its alarm limits")
    clean = _validate_tag(values)
    _refuse_clashing_tag(sess, tag.asset, clean, tag.id)
    with audit_reason(sess, reason):
        for key, value in clean.items():
            setattr(tag, key, value)
        if "active" in values:
            tag.active = bool(values["active"])


def get_tag(sess: Session, tag_id: int) -> Tag:
    tag = sess.get(Tag, tag_id)
    if tag is None:
        raise NotFound("No such tag.")
    return tag
