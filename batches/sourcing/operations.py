"""Business rules of cord blood sourcing: intake, eligibility, acceptance criteria, QA disposition, custody.

Operations flush and never commit; every refusal is a DomainError in the operator's terms.

Contract used by batch execution:

- ``assignable_units(session)``: units that are accepted and in storage.
- ``get_assignable_unit(session, unit_id)``: the unit, or NotFound / Conflict saying why it cannot be used;
  it locks the unit's row until the transaction ends, so call it before writing anything else.
- ``assign_unit_to_batch(session, unit, batch_lot_number=...)``: records the thaw (removal from storage to
  the batch) as a custody event; the unit can never be assigned again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import audit_reason, current_actor
from app.db import advisory_xact_lock, utcnow
from app.errors import Conflict, NotFound, PermissionDenied, ReasonRequired, ValidationFailed
from app.permissions import can
from app.signatures import sign_record
from app.users import User
from app.web import format_cells
from batches.sourcing.models import (
    CRITERIA_APPROVED,
    CRITERIA_DRAFT,
    CUSTODY_DISPOSED,
    CUSTODY_IN_STORAGE,
    CUSTODY_ISSUED,
    CUSTODY_REMOVED,
    ELIGIBLE,
    EVENT_DISPOSAL,
    EVENT_RECEIPT,
    EVENT_REMOVAL,
    EVENT_RETURN,
    EVENT_STORAGE,
    EVENT_THAW,
    INCOMPLETE,
    INELIGIBLE,
    MARKERS,
    NOT_DONE,
    REACTIVE,
    RELEASE_COMPLETED,
    RELEASE_PENDING,
    STATUS_ACCEPTED,
    STATUS_QUARANTINE,
    STATUS_RECEIVED,
    STATUS_REJECTED,
    CbuAcceptanceCriteria,
    CbuCriterionResult,
    CbuCustodyEvent,
    CbuExceptionalRelease,
    CordBloodUnit,
    format_position,
)

# 21 CFR 1271.80(b): the birth mother's specimen is collected within 7 days of recovery.
MATERNAL_SAMPLE_WINDOW_DAYS = 7
# Typed times may run slightly ahead of the server clock (tablet clocks, minute rounding).
CLOCK_TOLERANCE = timedelta(minutes=5)

# Defaults proposed for a new criteria version; QA approves (or changes) them before they are in force.
DEFAULT_CRITERIA: dict[str, Any] = {
    "min_tnc_cells": 1.0e9,
    "min_cd34_cells": 2.0e6,
    "min_viability_percent": 70.0,
    "max_shipper_temperature_c": -150.0,
    "max_collection_age_days": 15 * 365,
    "required_markers": ["hiv_ab", "hiv_nat", "hbsag", "anti_hbc", "hcv_ab", "hcv_nat", "syphilis", "htlv", "cmv"],
}

STATUS_LABELS = {
    STATUS_RECEIVED: "received (awaiting quarantine)",
    STATUS_QUARANTINE: "in quarantine",
    STATUS_ACCEPTED: "accepted",
    STATUS_REJECTED: "rejected",
}
# Allowed QA transitions and the meaning each signature carries.
TRANSITIONS: dict[tuple[str, str], str] = {
    (STATUS_RECEIVED, STATUS_QUARANTINE): "quarantined",
    (STATUS_QUARANTINE, STATUS_ACCEPTED): "accepted",
    (STATUS_QUARANTINE, STATUS_REJECTED): "rejected",
}
RECEIVING_AREA = "Receiving"
# Ids are 32-bit integers in the database; a larger one in a URL names no record (and would not bind).
MAX_ID = 2**31 - 1


# --- acceptance criteria --------------------------------------------------------------------------

def get_criteria(session: Session, criteria_id: int) -> CbuAcceptanceCriteria:
    criteria = session.get(CbuAcceptanceCriteria, criteria_id) if 0 < criteria_id <= MAX_ID else None
    if criteria is None:
        raise NotFound("No such criteria version.")
    return criteria


def list_criteria(session: Session) -> list[CbuAcceptanceCriteria]:
    """Every criteria version, newest first."""
    return list(session.execute(select(CbuAcceptanceCriteria).order_by(CbuAcceptanceCriteria.version.desc())).scalars())


def criteria_in_force(session: Session, at: datetime) -> CbuAcceptanceCriteria:
    """The approved criteria version in force at a moment (the latest approved at or before it)."""
    criteria = session.execute(
        select(CbuAcceptanceCriteria)
        .where(CbuAcceptanceCriteria.status == CRITERIA_APPROVED, CbuAcceptanceCriteria.approved_at <= at)
        .order_by(CbuAcceptanceCriteria.approved_at.desc(), CbuAcceptanceCriteria.version.desc()).limit(1)
    ).scalar_one_or_none()
    if criteria is None:
        raise Conflict("No QA-approved acceptance criteria were in force at the time of receipt; QA must "
                       "approve a criteria version before units received then can be recorded.")
    return criteria


def _check_criteria_values(values: Mapping[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    for key, label in (("min_tnc_cells", "Minimum TNC"), ("min_cd34_cells", "Minimum CD34+ cells")):
        if not values.get(key) or values[key] <= 0:
            errors[key] = [f"{label} must be a positive cell count."]
    viability = values.get("min_viability_percent")
    if viability is None or not 0 <= viability <= 100:
        errors["min_viability_percent"] = ["Minimum viability is a percentage between 0 and 100."]
    temperature = values.get("max_shipper_temperature_c")
    if temperature is None or not -273 < temperature < 0:
        errors["max_shipper_temperature_c"] = ["The shipper temperature limit is in degrees C, below 0."]
    age = values.get("max_collection_age_days")
    if not age or age <= 0:
        errors["max_collection_age_days"] = ["The maximum age is a positive number of days."]
    unknown = [m for m in values.get("required_markers", []) if m not in MARKERS]
    if unknown:
        errors["required_markers"] = [f"Unknown marker: {', '.join(unknown)}."]
    if errors:
        raise ValidationFailed("Please correct the acceptance criteria.", errors=errors)


def create_criteria_draft(session: Session, values: Mapping[str, Any], *, change_description: str | None = None
                          ) -> CbuAcceptanceCriteria:
    """A new draft version; it is not in force until QA approves it."""
    merged = {**DEFAULT_CRITERIA, **{k: v for k, v in values.items() if v is not None}}
    _check_criteria_values(merged)
    next_version = (session.execute(select(func.max(CbuAcceptanceCriteria.version))).scalar_one() or 0) + 1
    criteria = CbuAcceptanceCriteria(
        version=next_version, status=CRITERIA_DRAFT,
        min_tnc_cells=float(merged["min_tnc_cells"]), min_cd34_cells=float(merged["min_cd34_cells"]),
        min_viability_percent=float(merged["min_viability_percent"]),
        max_shipper_temperature_c=float(merged["max_shipper_temperature_c"]),
        max_collection_age_days=int(merged["max_collection_age_days"]),
        required_markers=",".join(m for m in MARKERS if m in merged["required_markers"]),
        change_description=(change_description or "").strip() or None,
        created_at=utcnow(), created_by=current_actor().username)
    session.add(criteria)
    session.flush()
    return criteria


def approve_criteria(session: Session, criteria: CbuAcceptanceCriteria, *, username: str, password: str,
                     current_user: Any, comment: str | None = None) -> CbuAcceptanceCriteria:
    """QA e-signs a draft version; it is in force for units received from now on."""
    _require_qa(current_user, "approve acceptance criteria")
    if criteria.status != CRITERIA_DRAFT:
        raise Conflict(f"Criteria version {criteria.version} is already approved.")
    sign_record(session, criteria, meaning="approved", username=username, password=password,
                current_user=current_user, comment=comment)
    with audit_reason(session, comment or f"criteria version {criteria.version} approved"):
        criteria.status = CRITERIA_APPROVED
        criteria.approved_at = utcnow()
        criteria.approved_by = current_user.username
    return criteria


# --- eligibility and criteria evaluation ----------------------------------------------------------

@dataclass(frozen=True)
class Eligibility:
    """The donor-eligibility determination derived from the maternal marker results, with its reasons."""

    status: str
    reasons: tuple[str, ...]


def determine_eligibility(markers: Mapping[str, str | None], required: Iterable[str]) -> Eligibility:
    """Any reactive marker makes the donor ineligible; a required marker not done leaves it incomplete."""
    required = list(required)
    reactive = [MARKERS[k] for k in MARKERS if markers.get(k) == REACTIVE]
    missing = [MARKERS[k] for k in MARKERS if k in required and markers.get(k) in (None, "", NOT_DONE)]
    reasons = [f"{label}: reactive" for label in reactive]
    reasons += [f"{label}: required but not done" for label in missing]
    if reactive:
        return Eligibility(INELIGIBLE, tuple(reasons))
    if missing:
        return Eligibility(INCOMPLETE, tuple(reasons))
    return Eligibility(ELIGIBLE, ("All required maternal markers non-reactive",))


@dataclass(frozen=True)
class CriterionOutcome:
    criterion: str
    label: str
    requirement: str
    actual: str
    passed: bool


def evaluate_criteria(criteria: CbuAcceptanceCriteria, values: Mapping[str, Any]) -> list[CriterionOutcome]:
    """Each criterion of a version, pass or fail, for a unit's received data."""
    eligibility = determine_eligibility(_markers_of(values), criteria.required_marker_list)
    required_labels = ", ".join(MARKERS[m] for m in criteria.required_marker_list) or "none"
    return [
        CriterionOutcome("tnc", "Total nucleated cells", f">= {format_cells(criteria.min_tnc_cells)}",
                         format_cells(values["tnc_cells"]), values["tnc_cells"] >= criteria.min_tnc_cells),
        CriterionOutcome("cd34", "CD34+ cells", f">= {format_cells(criteria.min_cd34_cells)}",
                         format_cells(values["cd34_cells"]), values["cd34_cells"] >= criteria.min_cd34_cells),
        CriterionOutcome("viability", "Viability", f">= {criteria.min_viability_percent:g} %",
                         f"{values['viability_percent']:g} %",
                         values["viability_percent"] >= criteria.min_viability_percent),
        CriterionOutcome("shipper_temperature", "Shipper temperature at receipt",
                         f"<= {criteria.max_shipper_temperature_c:g} C", f"{values['shipper_temperature_c']:g} C",
                         values["shipper_temperature_c"] <= criteria.max_shipper_temperature_c),
        CriterionOutcome("required_markers", "Required maternal markers non-reactive", required_labels,
                         "; ".join(eligibility.reasons), eligibility.status == ELIGIBLE),
        CriterionOutcome("data_logger", "Shipper data logger reviewed", "reviewed",
                         "reviewed" if values["data_logger_reviewed"] else "not reviewed",
                         bool(values["data_logger_reviewed"])),
        CriterionOutcome("seal", "Shipper seal intact", "intact",
                         "intact" if values["seal_intact"] else "broken", bool(values["seal_intact"])),
    ]


def _markers_of(values: Mapping[str, Any]) -> dict[str, str | None]:
    return {key: values.get(f"marker_{key}") for key in MARKERS}


# --- intake ---------------------------------------------------------------------------------------

def _claim_position(session: Session, freezer: str, rack: str, box: str, slot: str,
                    except_unit: CordBloodUnit | None = None) -> None:
    """Refuse a storage position another unit occupies, naming that unit.

    Writers that want the same position wait for each other first (PostgreSQL advisory lock; SQLite writers
    are serialised at BEGIN), so the second one sees the first one's unit and gets this message rather
    than the generic refusal of the unique index, which stays the database's backstop.
    """
    advisory_xact_lock(session, f"cord_blood_unit storage position {(freezer, rack, box, slot)!r}")
    _check_position_free(session, freezer, rack, box, slot, except_unit=except_unit)


def _check_position_free(session: Session, freezer: str, rack: str, box: str, slot: str,
                         except_unit: CordBloodUnit | None = None) -> None:
    # The same rows the unique index covers: any unit whose position columns hold this position.
    stmt = select(CordBloodUnit).where(
        CordBloodUnit.storage_freezer == freezer, CordBloodUnit.storage_rack == rack,
        CordBloodUnit.storage_box == box, CordBloodUnit.storage_slot == slot)
    if except_unit is not None and except_unit.id is not None:
        stmt = stmt.where(CordBloodUnit.id != except_unit.id)
    occupant = session.execute(stmt.limit(1)).scalar_one_or_none()
    if occupant is not None:
        raise Conflict(f"Storage position {format_position(freezer, rack, box, slot)} already holds unit "
                       f"{occupant.din}. Choose a free slot.", errors={"storage_slot": ["This slot is occupied."]})


def find_unit_by_din(session: Session, din: str) -> CordBloodUnit | None:
    return session.execute(select(CordBloodUnit).where(CordBloodUnit.din == din)).scalar_one_or_none()


def receive_unit(session: Session, data: Mapping[str, Any]) -> CordBloodUnit:
    """Record a unit received from a bank, evaluated against the criteria in force at receipt.

    ``data`` is the loaded intake schema (shape and ranges already checked); this adds the rules that need
    the database: duplicate DIN, collection age limit of the criteria version, storage slot, receiver.
    """
    now = utcnow()
    existing = find_unit_by_din(session, data["din"])
    if existing is not None:
        raise Conflict(f"DIN {data['din']} is already recorded (unit received "
                       f"{existing.received_at:%Y-%m-%d}). Open the existing unit instead.",
                       errors={"din": ["This DIN is already in the system."]},
                       link=f"/sourcing/units/{existing.id}")
    received_at = data.get("received_at") or now
    criteria = criteria_in_force(session, received_at)
    errors: dict[str, list[str]] = {}
    oldest = (received_at - timedelta(days=criteria.max_collection_age_days)).date()
    if data["collection_date"] < oldest:
        errors["collection_date"] = [f"The unit was collected more than {criteria.max_collection_age_days} days "
                                     f"before receipt (acceptance criteria version {criteria.version})."]
    received_by = (data.get("received_by") or current_actor().username).strip().lower()
    receiver = session.execute(select(User).where(User.username == received_by)).scalar_one_or_none()
    if receiver is None or not receiver.active:
        errors["received_by"] = [f"'{received_by}' is not an active user ID."]
    if errors:
        raise ValidationFailed("Please correct the highlighted fields; nothing was saved.", errors=errors)
    _claim_position(session, data["storage_freezer"], data["storage_rack"], data["storage_box"],
                    data["storage_slot"])

    eligibility = determine_eligibility(_markers_of(data), criteria.required_marker_list)
    outcomes = evaluate_criteria(criteria, data)
    actor = current_actor().username
    unit = CordBloodUnit(
        din=data["din"], product_code=data["product_code"], source_bank=data["source_bank"],
        collection_date=data["collection_date"], volume_ml=data["volume_ml"], tnc_cells=data["tnc_cells"],
        cd34_cells=data["cd34_cells"], viability_percent=data["viability_percent"], abo_rh=data["abo_rh"],
        hla_a=data["hla_a"], hla_b=data["hla_b"], hla_drb1=data["hla_drb1"],
        **{f"marker_{key}": data[f"marker_{key}"] for key in MARKERS},
        maternal_sample_date=data["maternal_sample_date"],
        eligibility=eligibility.status, eligibility_reasons="\n".join(eligibility.reasons),
        shipper_temperature_c=data["shipper_temperature_c"], data_logger_reviewed=data["data_logger_reviewed"],
        seal_intact=data["seal_intact"], received_by=received_by, received_at=received_at,
        recorded_by=actor, recorded_at=now, criteria_id=criteria.id,
        criteria_passed=all(o.passed for o in outcomes), status=STATUS_RECEIVED,
        custody_state=CUSTODY_IN_STORAGE, storage_freezer=data["storage_freezer"],
        storage_rack=data["storage_rack"], storage_box=data["storage_box"], storage_slot=data["storage_slot"],
        exceptional_release=False, updated_at=now)
    session.add(unit)
    session.flush()
    for outcome in outcomes:
        session.add(CbuCriterionResult(unit_id=unit.id, criteria_id=criteria.id, criterion=outcome.criterion,
                                       label=outcome.label, requirement=outcome.requirement,
                                       actual=outcome.actual[:200], passed=outcome.passed))
    shipper = f"Dry shipper from {data['source_bank']}"
    session.add(CbuCustodyEvent(unit_id=unit.id, event_type=EVENT_RECEIPT, occurred_at=received_at,
                                performed_by=received_by, from_location=shipper, to_location=RECEIVING_AREA))
    session.add(CbuCustodyEvent(unit_id=unit.id, event_type=EVENT_STORAGE, occurred_at=now, performed_by=actor,
                                from_location=RECEIVING_AREA, to_location=unit.storage_position or ""))
    session.flush()
    session.refresh(unit)
    return unit


# --- queries --------------------------------------------------------------------------------------

def get_unit(session: Session, unit_id: int) -> CordBloodUnit:
    unit = session.get(CordBloodUnit, unit_id) if 0 < unit_id <= MAX_ID else None
    if unit is None:
        raise NotFound(f"There is no cord blood unit with id {unit_id}.")
    return unit


def _day_start(day: date, zone: tzinfo, days_later: int = 0) -> datetime | None:
    """Midnight starting a day in the given zone, in UTC; None beyond either end of the calendar (no bound)."""
    try:
        return datetime.combine(day + timedelta(days=days_later), time.min, tzinfo=zone).astimezone(timezone.utc)
    except OverflowError:
        return None


def search_units(session: Session, *, din: str | None = None, bank: str | None = None, status: str | None = None,
                 received_from: date | None = None, received_to: date | None = None, zone: tzinfo = timezone.utc,
                 limit: int = 200) -> list[CordBloodUnit]:
    """Units matching the filters, most recently received first. A DIN may be partial or eye-readable; the
    receipt days (both inclusive) are days in ``zone``, the site's time zone."""
    stmt = select(CordBloodUnit)
    if din:
        cleaned = "".join(ch for ch in din.upper() if ch.isascii() and ch.isalnum())[:13]
        stmt = stmt.where(CordBloodUnit.din.contains(cleaned))
    if bank:
        stmt = stmt.where(func.lower(CordBloodUnit.source_bank).contains(bank.strip().lower(), autoescape=True))
    if status:
        stmt = stmt.where(CordBloodUnit.status == status)
    start = _day_start(received_from, zone) if received_from else None
    end = _day_start(received_to, zone, days_later=1) if received_to else None
    if start:
        stmt = stmt.where(CordBloodUnit.received_at >= start)
    if end:
        stmt = stmt.where(CordBloodUnit.received_at < end)
    return list(session.execute(stmt.order_by(CordBloodUnit.received_at.desc(), CordBloodUnit.id.desc())
                                .limit(limit)).scalars())


def assignable_units(session: Session) -> list[CordBloodUnit]:
    """Units that can start a batch: accepted by QA and in storage, oldest receipt first."""
    return list(session.execute(
        select(CordBloodUnit).where(CordBloodUnit.status == STATUS_ACCEPTED,
                                    CordBloodUnit.custody_state == CUSTODY_IN_STORAGE)
        .order_by(CordBloodUnit.received_at, CordBloodUnit.id)
    ).scalars())


def why_not_assignable(unit: CordBloodUnit) -> str | None:
    """The reason a unit cannot be assigned to a batch, in the operator's terms; None if it can."""
    if unit.custody_state == CUSTODY_ISSUED:
        return f"Unit {unit.din} was already issued to batch {unit.batch_lot_number}."
    if unit.custody_state == CUSTODY_DISPOSED:
        return f"Unit {unit.din} was disposed of."
    if unit.status == STATUS_RECEIVED:
        return f"Unit {unit.din} is awaiting quarantine and QA acceptance."
    if unit.status == STATUS_QUARANTINE:
        return f"Unit {unit.din} is in quarantine: QA has not accepted it."
    if unit.status == STATUS_REJECTED:
        return f"Unit {unit.din} was rejected by QA."
    if unit.custody_state != CUSTODY_IN_STORAGE:
        return f"Unit {unit.din} is not in storage (removed); return it to storage first."
    return None


def get_assignable_unit(session: Session, unit_id: int) -> CordBloodUnit:
    """The unit, locked for this transaction, if it can be assigned to a batch; NotFound if missing, Conflict
    saying why otherwise."""
    unit = get_unit(session, unit_id)
    lock_unit_for_custody(session, unit)
    reason = why_not_assignable(unit)
    if reason:
        raise Conflict(reason, errors={"unit_id": [reason]})
    return unit


def assign_unit_to_batch(session: Session, unit: CordBloodUnit, *, batch_lot_number: str) -> None:
    """Remove the unit from storage for thaw into a batch; it can never be assigned again."""
    batch_lot_number = (batch_lot_number or "").strip()
    if not batch_lot_number:
        raise ValidationFailed("A batch lot number is required to assign a unit.",
                               errors={"batch_lot_number": ["Enter the batch lot number."]})
    lock_unit_for_custody(session, unit)  # two batches must not take the same unit
    reason = why_not_assignable(unit)
    if reason:
        raise Conflict(reason, errors={"unit_id": [reason]})
    _move(session, unit, EVENT_THAW, to_location=f"Batch {batch_lot_number} (thaw)",
          new_state=CUSTODY_ISSUED, batch_lot_number=batch_lot_number,
          reason=f"assigned to batch {batch_lot_number}")


def _lock_supported(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- custody --------------------------------------------------------------------------------------

def lock_unit_for_custody(session: Session, unit: CordBloodUnit) -> None:
    """Lock the unit's row until the transaction ends, then re-read it: every custody move calls this first.

    Two moves of the same unit (two tablets, a tablet and a batch) then run one after the other, and the
    second checks the state the first one committed, not the state its page was showing. Lock order on
    PostgreSQL, the same on every custody path so two of them cannot deadlock: this unit row, then a
    storage position (``_claim_position``); the audit chain comes last, at commit. So a caller takes this
    lock before it writes anything else in the transaction.
    """
    session.flush()  # keep this request's own pending changes: the refresh below re-reads the row
    if _lock_supported(session):  # SQLite writers already hold the database write lock from BEGIN
        session.execute(select(CordBloodUnit.id).where(CordBloodUnit.id == unit.id).with_for_update())
    session.refresh(unit)


def _move(session: Session, unit: CordBloodUnit, event_type: str, *, to_location: str, new_state: str,
          reason: str, comment: str | None = None, batch_lot_number: str | None = None,
          position: tuple[str, str, str, str] | None = None) -> CbuCustodyEvent:
    """Record one custody event and the unit's new state; the caller has locked the unit and checked it."""
    from_location = unit.storage_position if unit.custody_state == CUSTODY_IN_STORAGE else _last_location(unit)
    now = utcnow()
    event = CbuCustodyEvent(unit_id=unit.id, event_type=event_type, occurred_at=now,
                            performed_by=current_actor().username, from_location=from_location or "",
                            to_location=to_location, batch_lot_number=batch_lot_number,
                            comment=(comment or "").strip() or None)
    with audit_reason(session, reason):
        unit.custody_state = new_state
        unit.updated_at = now
        if batch_lot_number:
            unit.batch_lot_number = batch_lot_number
        if position is not None:
            unit.storage_freezer, unit.storage_rack, unit.storage_box, unit.storage_slot = position
        elif new_state != CUSTODY_IN_STORAGE:
            unit.storage_freezer = unit.storage_rack = unit.storage_box = unit.storage_slot = None
        session.add(event)
    session.refresh(unit, attribute_names=["custody_events"])
    return event


def _last_location(unit: CordBloodUnit) -> str:
    return unit.custody_events[-1].to_location if unit.custody_events else ""


def remove_from_storage(session: Session, unit: CordBloodUnit, *, destination: str, reason: str) -> CbuCustodyEvent:
    """Take a unit out of storage for a reason other than thaw (inspection, transfer to another freezer)."""
    if not (reason or "").strip():
        raise ReasonRequired("Removing a unit from storage needs a reason.", errors={"reason": ["Give the reason."]})
    if not (destination or "").strip():
        raise ValidationFailed("Say where the unit is going.", errors={"destination": ["Enter the destination."]})
    lock_unit_for_custody(session, unit)
    if unit.custody_state != CUSTODY_IN_STORAGE:
        raise Conflict(f"Unit {unit.din} is not in storage, so it cannot be removed.")
    return _move(session, unit, EVENT_REMOVAL, to_location=destination.strip(), new_state=CUSTODY_REMOVED,
                 reason=reason.strip(), comment=reason)


def return_to_storage(session: Session, unit: CordBloodUnit, *, freezer: str, rack: str, box: str, slot: str,
                      comment: str | None = None) -> CbuCustodyEvent:
    """Put a removed unit back into a storage position."""
    lock_unit_for_custody(session, unit)
    if unit.custody_state != CUSTODY_REMOVED:
        raise Conflict(f"Unit {unit.din} is not out of storage, so it cannot be returned.")
    _claim_position(session, freezer, rack, box, slot, except_unit=unit)
    return _move(session, unit, EVENT_RETURN, to_location=format_position(freezer, rack, box, slot),
                 new_state=CUSTODY_IN_STORAGE, reason=comment or "returned to storage", comment=comment,
                 position=(freezer, rack, box, slot))


def dispose_unit(session: Session, unit: CordBloodUnit, *, reason: str) -> CbuCustodyEvent:
    """Destroy a unit (rejected, damaged, expired); the record stays."""
    if not (reason or "").strip():
        raise ReasonRequired("Disposing of a unit needs a reason.", errors={"reason": ["Give the reason."]})
    lock_unit_for_custody(session, unit)
    if unit.custody_state in (CUSTODY_ISSUED, CUSTODY_DISPOSED):
        raise Conflict(f"Unit {unit.din} has already left custody ({unit.custody_state}).")
    return _move(session, unit, EVENT_DISPOSAL, to_location="Disposed (biohazard waste)", new_state=CUSTODY_DISPOSED,
                 reason=reason.strip(), comment=reason)


def record_movement(session: Session, unit: CordBloodUnit, values: Mapping[str, Any]) -> CbuCustodyEvent:
    """Remove, return or dispose, as chosen on the tablet form or in an API body."""
    action = (values.get("action") or "").strip()
    if action == "remove":
        return remove_from_storage(session, unit, destination=values.get("destination") or "",
                                   reason=values.get("reason") or "")
    if action == "return":
        position = {k: (values.get(f"storage_{k}") or "").strip() for k in ("freezer", "rack", "box", "slot")}
        missing = {f"storage_{k}": [f"Enter the {k}."] for k, v in position.items() if not v}
        if missing:
            raise ValidationFailed("Give the full storage position.", errors=missing)
        return return_to_storage(session, unit, freezer=position["freezer"].upper(), rack=position["rack"],
                                 box=position["box"], slot=position["slot"], comment=values.get("reason"))
    if action == "dispose":
        return dispose_unit(session, unit, reason=values.get("reason") or "")
    raise ValidationFailed("Choose remove, return or dispose.", errors={"action": ["Unknown movement."]})


# --- QA disposition -------------------------------------------------------------------------------

def _require_qa(current_user: Any, action: str) -> None:
    if not can(current_user, "sourcing.disposition"):
        raise PermissionDenied(f"Only QA can {action}.")


def acceptance_blockers(unit: CordBloodUnit) -> list[str]:
    """Why a unit cannot be accepted without an exceptional release (ineligible donor, failed criteria)."""
    blockers = []
    if unit.eligibility != ELIGIBLE:
        blockers.append(f"Donor eligibility is {unit.eligibility}: " + "; ".join(unit.eligibility_reason_list))
    blockers += [f"{r.label}: {r.actual} (required {r.requirement})" for r in unit.criterion_results
                 if not r.passed and r.criterion != "required_markers"]
    return blockers


def allowed_transitions(unit: CordBloodUnit) -> list[str]:
    return [to for (frm, to) in TRANSITIONS if frm == unit.status]


def _signature_comment(text: str, comment: str | None) -> str:
    comment = (comment or "").strip()
    return f"{text}; {comment}" if comment else text


def change_status(session: Session, unit: CordBloodUnit, to_status: str, *, reason: str, username: str,
                  password: str, current_user: Any, comment: str | None = None) -> CordBloodUnit:
    """A QA transition (quarantine, accept, reject), e-signed; the reason (and any comment) is the signature's
    comment and the audit trail's reason."""
    _require_qa(current_user, "change the status of a cord blood unit")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A status change needs a reason.", errors={"reason": ["Give the reason."]})
    meaning = TRANSITIONS.get((unit.status, to_status))
    if meaning is None:
        allowed = ", ".join(allowed_transitions(unit)) or "none"
        raise Conflict(f"Unit {unit.din} is {STATUS_LABELS.get(unit.status, unit.status)}; it cannot become "
                       f"{to_status}. Allowed next: {allowed}.")
    release = None
    if to_status == STATUS_ACCEPTED:
        blockers = acceptance_blockers(unit)
        release = unit.pending_exceptional_release
        if blockers and release is None:
            raise Conflict(f"Unit {unit.din} cannot be accepted: " + " | ".join(blockers) + ". An exceptional "
                           "release needs a documented justification signed by QA and a second QA signature.")
        if release is not None and release.requested_by == current_user.username:
            raise Conflict("You signed the exceptional release justification; a second, different QA person "
                           "must accept the unit.")
    sign_record(session, unit, meaning=meaning, username=username, password=password,
                current_user=current_user, comment=_signature_comment(reason, comment))
    with audit_reason(session, reason):
        unit.status = to_status
        unit.updated_at = utcnow()
        if release is not None:
            unit.exceptional_release = True  # permanent: never cleared by any operation
            release.status = RELEASE_COMPLETED
            release.completed_at = utcnow()
            release.completed_by = current_user.username
    return unit


def request_exceptional_release(session: Session, unit: CordBloodUnit, *, justification: str, username: str,
                                password: str, current_user: Any, comment: str | None = None
                                ) -> CbuExceptionalRelease:
    """First QA documents and signs why a unit outside eligibility or criteria may be used."""
    _require_qa(current_user, "request an exceptional release")
    justification = (justification or "").strip()
    if len(justification) < 20:
        raise ValidationFailed("An exceptional release needs a documented justification (at least 20 characters).",
                               errors={"justification": ["Write the justification in full."]})
    if unit.status != STATUS_QUARANTINE:
        raise Conflict(f"Only a unit in quarantine can be released exceptionally; unit {unit.din} is "
                       f"{STATUS_LABELS.get(unit.status, unit.status)}.")
    if not acceptance_blockers(unit):
        raise Conflict(f"Unit {unit.din} meets every criterion and is eligible: accept it normally.")
    if unit.pending_exceptional_release is not None:
        raise Conflict("An exceptional release is already waiting for the second QA signature.")
    release = CbuExceptionalRelease(unit_id=unit.id, justification=justification, requested_at=utcnow(),
                                    requested_by=current_user.username, status=RELEASE_PENDING)
    session.add(release)
    session.flush()
    sign_record(session, release, meaning="approved", username=username, password=password,
                current_user=current_user, comment=_signature_comment("exceptional release justification", comment))
    session.refresh(unit, attribute_names=["exceptional_releases"])
    return release


def collection_date_errors(collection_date: date, maternal_sample_date: date | None, today: date) -> dict[str, list[str]]:
    """Date rules that need no database: not in the future; maternal sample within 7 days of collection."""
    errors: dict[str, list[str]] = {}
    if collection_date > today:
        errors["collection_date"] = ["The collection date cannot be in the future."]
    if maternal_sample_date is not None:
        if maternal_sample_date > today:
            errors["maternal_sample_date"] = ["The maternal sample date cannot be in the future."]
        elif abs((maternal_sample_date - collection_date).days) > MATERNAL_SAMPLE_WINDOW_DAYS:
            errors["maternal_sample_date"] = [f"The maternal sample must be taken within "
                                              f"{MATERNAL_SAMPLE_WINDOW_DAYS} days of collection "
                                              "(21 CFR 1271.80)."]
    return errors
