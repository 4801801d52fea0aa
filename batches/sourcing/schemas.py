"""Marshmallow schemas of batches.sourcing: the shape, format and ranges of what is entered at intake.

The tablet form and the REST API load the same schema, so both give the same messages.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, ValidationError, fields, post_load, pre_load, validate, validates_schema

from app.db import utcnow
from app.numbers import NumberFormatError, SiteNumber, example, parse_number
from app.schemas import Schema
from batches.sourcing.isbt128 import DinError, parse_din, parse_product_code
from batches.sourcing.models import ABO_RH_TYPES, EVENT_TYPES, MARKER_RESULTS, MARKERS, STATUSES
from batches.sourcing.operations import CLOCK_TOLERANCE, collection_date_errors

class CellCount(fields.Field):
    """A positive cell count, accepted as 1.2e9, 1.2E9 or 1.2x10^9; shown as a number."""

    def __init__(self, label: str, maximum: float, **kwargs: Any):
        self.label = label
        self.maximum = maximum
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("required", f"Enter the {label}.")
        # read from a number or a text such as "1.2x10^9"; always answered as a number
        kwargs.setdefault("metadata", {"oneOf": [{"type": "number"}, {"type": "string", "example": "1.2x10^9"}],
                                       "description": f"{label}: a number, 1.2e9, 1.2E9 or 1.2x10^9"})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> float:
        try:
            count = parse_number(value)
        except NumberFormatError as exc:
            raise ValidationError(f"Write the {self.label} as a number such as {example('1.2')}e9 or "
                                  f"{example('1.2')}x10^9. {exc}") from None
        if count <= 0:
            raise ValidationError(f"The {self.label} must be more than zero.")
        if count > self.maximum:
            raise ValidationError(f"The {self.label} of {count:.3g} is not plausible for one unit "
                                  f"(more than {self.maximum:.0e}); check the exponent.")
        return count

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> float | None:
        return None if value is None else float(value)


def _number(label: str, unit: str, minimum: float, maximum: float, *, min_inclusive: bool = True,
            required: bool = True) -> fields.Float:
    range_text = f"between {minimum:g} and {maximum:g} {unit}".rstrip()
    return SiteNumber(
        required=required, allow_nan=False,
        validate=validate.Range(min=minimum, max=maximum, min_inclusive=min_inclusive,
                                error=f"The {label} must be {range_text}."),
        error_messages={"required": f"Enter the {label}.", "invalid": f"Enter the {label} as a number ({unit}).",
                        "special": f"Enter the {label} as a number ({unit})."})


class DinField(fields.Field):
    """A DIN, scanned or keyed with its check character; loaded as its 13 characters."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("metadata", {"type": "string", "example": "=G12349865432100",
                                       "description": "Scanned (=, 13 characters, 2 flag digits) or keyed with the "
                                                      "boxed check character (G123498654321H)"})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        try:
            return parse_din(str(value)).din
        except DinError as exc:
            raise ValidationError(str(exc)) from None


class ProductCodeField(fields.Field):
    """An ISBT 128 product code, scanned or keyed."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("metadata", {"type": "string", "example": "S1362V00"})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        try:
            return parse_product_code(str(value))
        except DinError as exc:
            raise ValidationError(str(exc)) from None


class MarkerResult(fields.Field):
    """non_reactive / reactive / not_done (labels such as 'Non-reactive' or 'not done' are accepted too)."""

    def __init__(self, label: str, **kwargs: Any):
        self.label = label
        super().__init__(required=True, error_messages={"required": f"Give the {label} result."},
                         metadata={"type": "string", "enum": list(MARKER_RESULTS)}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        key = re.sub(r"[\s-]+", "_", str(value).strip().lower())
        if key not in MARKER_RESULTS:
            raise ValidationError(f"The {self.label} result must be non-reactive, reactive or not done.")
        return key


HLA_ALLELE = re.compile(r"(?:(?:A|B|DRB1)\*)?[0-9]{2,3}(?::[0-9]{2,3}){0,3}[NLSCAQ]?")


def _hla(locus: str) -> fields.Str:
    def check(value: str) -> None:
        alleles = [a for a in re.split(r"[,/\s]+", value.strip()) if a]
        if not 1 <= len(alleles) <= 2 or not all(HLA_ALLELE.fullmatch(a.upper()) for a in alleles):
            raise ValidationError(f"Give one or two HLA-{locus} alleles, e.g. {locus}*02:01, {locus}*24:02.")

    return fields.Str(required=True, validate=[validate.Length(max=60, error="At most 60 characters."), check],
                      error_messages={"required": f"Enter the HLA-{locus} typing."})


class SiteDateTime(fields.DateTime):
    """A date-time; without a zone it is read in the site's time zone; stored in UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValidationError("Enter a date and time as YYYY-MM-DD HH:MM.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_site_zone())
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00+05:00 lies before the first representable UTC time
            raise ValidationError("Enter a date and time as YYYY-MM-DD HH:MM.") from None


def _site_zone() -> ZoneInfo:
    from flask import current_app, has_app_context

    return ZoneInfo(current_app.config["SITE_TIMEZONE"]) if has_app_context() else ZoneInfo("UTC")


def _date(label: str) -> fields.Date:
    return fields.Date(required=True, error_messages={"required": f"Enter the {label}.",
                                                      "invalid": f"Enter the {label} as YYYY-MM-DD."})


def _yes_no(label: str) -> fields.Boolean:
    return fields.Boolean(required=True, error_messages={"required": f"Answer: {label}?",
                                                         "invalid": f"Answer yes or no: {label}?"})


def _position(label: str, required: bool = True) -> fields.Str:
    presence: dict[str, Any] = {"required": True} if required else {"load_default": None}
    return fields.Str(validate=validate.Regexp(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,19}\Z",
                                               error=f"The {label} is up to 20 letters or digits."),
                      error_messages={"required": f"Enter the {label}."}, **presence)


def _freezer(required: bool = True) -> fields.Str:
    presence: dict[str, Any] = {"required": True} if required else {"load_default": None}
    return fields.Str(validate=validate.Regexp(r"[A-Z0-9][A-Z0-9_-]{0,39}\Z",
                                               error="The freezer is its equipment asset code, e.g. LN2-01."),
                      error_messages={"required": "Scan or enter the freezer's asset code."}, **presence)


def _clean_entries(data: Any) -> Any:
    """Entries trimmed, blank ones counted as not entered, the freezer's asset code upper-case."""
    if not isinstance(data, Mapping):
        return data
    cleaned = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
    cleaned = {k: v for k, v in cleaned.items() if v not in ("", None)}
    if isinstance(cleaned.get("storage_freezer"), str):
        cleaned["storage_freezer"] = cleaned["storage_freezer"].upper()
    return cleaned


class CordBloodUnitIntakeSchema(Schema):
    """What an operator records when a unit arrives."""

    class Meta:
        unknown = EXCLUDE

    din = DinField(required=True, error_messages={"required": "Scan the DIN barcode or type the DIN with its "
                                                              "check character."})
    product_code = ProductCodeField(required=True, error_messages={"required": "Enter the product code."})
    source_bank = fields.Str(required=True, validate=validate.Length(min=2, max=200, error="Enter the bank's name "
                                                                     "(2 to 200 characters)."),
                             error_messages={"required": "Enter the source cord blood bank."})
    collection_date = _date("collection date")
    volume_ml = _number("volume", "mL", 0, 1000, min_inclusive=False)
    tnc_cells = CellCount("total nucleated cell count (TNC)", 1e12, required=True)
    cd34_cells = CellCount("CD34+ cell count", 1e10, required=True)
    viability_percent = _number("viability", "%", 0, 100)
    abo_rh = fields.Str(required=True, validate=validate.OneOf(ABO_RH_TYPES, error="Choose the ABO/Rh type: "
                                                                                   + ", ".join(ABO_RH_TYPES) + "."),
                        error_messages={"required": "Choose the ABO/Rh type."})
    hla_a = _hla("A")
    hla_b = _hla("B")
    hla_drb1 = _hla("DRB1")
    marker_hiv_ab = MarkerResult(MARKERS["hiv_ab"])
    marker_hiv_nat = MarkerResult(MARKERS["hiv_nat"])
    marker_hbsag = MarkerResult(MARKERS["hbsag"])
    marker_anti_hbc = MarkerResult(MARKERS["anti_hbc"])
    marker_hcv_ab = MarkerResult(MARKERS["hcv_ab"])
    marker_hcv_nat = MarkerResult(MARKERS["hcv_nat"])
    marker_syphilis = MarkerResult(MARKERS["syphilis"])
    marker_htlv = MarkerResult(MARKERS["htlv"])
    marker_cmv = MarkerResult(MARKERS["cmv"])
    maternal_sample_date = _date("maternal sample date")
    shipper_temperature_c = _number("shipper temperature", "C", -273, 40)
    data_logger_reviewed = _yes_no("data logger reviewed")
    seal_intact = _yes_no("seal intact")
    received_by = fields.Str(load_default=None, validate=validate.Length(max=80))
    received_at = SiteDateTime(load_default=None)
    storage_freezer = _freezer()
    storage_rack = _position("rack")
    storage_box = _position("box")
    storage_slot = _position("slot")

    @pre_load
    def _normalise(self, data: Any, **kwargs: Any) -> Any:
        """Blank form fields count as not entered; codes are upper-case; ABO/Rh accepts 'O pos'."""
        cleaned = _clean_entries(data)
        if not isinstance(cleaned, Mapping):
            return cleaned
        if isinstance(cleaned.get("abo_rh"), str):
            abo = cleaned["abo_rh"].upper().replace(" ", "").replace("RH", "")
            cleaned["abo_rh"] = abo.replace("POS", "+").replace("NEG", "-")
        for key in ("hla_a", "hla_b", "hla_drb1"):
            if isinstance(cleaned.get(key), str):
                cleaned[key] = cleaned[key].upper()
        return cleaned

    @validates_schema
    def _dates(self, data: dict[str, Any], **kwargs: Any) -> None:
        now = utcnow()
        errors: dict[str, list[str]] = {}
        if "collection_date" in data:
            errors.update(collection_date_errors(data["collection_date"], data.get("maternal_sample_date"),
                                                 now.astimezone(_site_zone()).date()))
        received_at = data.get("received_at")
        if received_at is not None:
            if received_at > now + CLOCK_TOLERANCE:
                errors["received_at"] = ["The receipt time cannot be in the future."]
            elif "collection_date" in data and received_at.astimezone(_site_zone()).date() < data["collection_date"]:
                errors["received_at"] = ["The unit cannot be received before it was collected."]
        if errors:
            raise ValidationError(errors)


class CbuCriterionResultSchema(Schema):
    criterion = fields.Str()
    label = fields.Str()
    requirement = fields.Str()
    actual = fields.Str()
    passed = fields.Bool()


class CbuCustodyEventSchema(Schema):
    id = fields.Int()
    event_type = fields.Str(metadata={"enum": list(EVENT_TYPES)})
    occurred_at = fields.DateTime()
    performed_by = fields.Str()
    from_location = fields.Str()
    to_location = fields.Str()
    batch_lot_number = fields.Str(allow_none=True)
    comment = fields.Str(allow_none=True)


class CordBloodUnitSchema(Schema):
    """A unit as returned by the API."""

    id = fields.Int()
    din = fields.Str()
    product_code = fields.Str()
    source_bank = fields.Str()
    collection_date = fields.Date()
    volume_ml = fields.Float()
    tnc_cells = fields.Float()
    cd34_cells = fields.Float()
    viability_percent = fields.Float()
    abo_rh = fields.Str()
    hla_a = fields.Str()
    hla_b = fields.Str()
    hla_drb1 = fields.Str()
    markers = fields.Method("_markers")
    maternal_sample_date = fields.Date()
    eligibility = fields.Str()
    eligibility_reasons = fields.List(fields.Str(), attribute="eligibility_reason_list")
    shipper_temperature_c = fields.Float()
    data_logger_reviewed = fields.Bool()
    seal_intact = fields.Bool()
    received_by = fields.Str()
    received_at = fields.DateTime()
    recorded_by = fields.Str()
    recorded_at = fields.DateTime()
    criteria_version = fields.Int(attribute="criteria.version")
    criteria_passed = fields.Bool()
    criterion_results = fields.List(fields.Nested(CbuCriterionResultSchema))
    status = fields.Str(metadata={"enum": list(STATUSES)})
    custody_state = fields.Str()
    storage_freezer = fields.Str(allow_none=True)
    storage_rack = fields.Str(allow_none=True)
    storage_box = fields.Str(allow_none=True)
    storage_slot = fields.Str(allow_none=True)
    batch_lot_number = fields.Str(allow_none=True)
    exceptional_release = fields.Bool(metadata={"description": "Permanent 'not evaluated / exceptional release' "
                                                               "flag; follows the unit into every later record."})
    custody_events = fields.List(fields.Nested(CbuCustodyEventSchema))

    def _markers(self, unit: Any) -> dict[str, str]:
        return {key: unit.marker(key) for key in MARKERS}


class CordBloodUnitQuerySchema(Schema):
    din = fields.Str(load_default=None)
    bank = fields.Str(load_default=None)
    status = fields.Str(load_default=None, validate=validate.OneOf(STATUSES))
    received_from = fields.Date(load_default=None)
    received_to = fields.Date(load_default=None, metadata={"description": "inclusive"})
    assignable = fields.Bool(load_default=False, metadata={"description": "only units accepted and in storage"})


class CbuStatusChangeSchema(Schema):
    """A QA transition, e-signed: both credential components are required each time."""

    status = fields.Str(required=True, validate=validate.OneOf(STATUSES[1:]))
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000),
                        error_messages={"required": "Give the reason for the status change."})
    username = fields.Str(required=True, error_messages={"required": "Sign with your user ID."})
    password = fields.Str(required=True, load_only=True, error_messages={"required": "Sign with your password."})


class CbuExceptionalReleaseSchema(Schema):
    justification = fields.Str(required=True, error_messages={"required": "Write the justification."})
    username = fields.Str(required=True)
    password = fields.Str(required=True, load_only=True)


class CbuCustodyActionSchema(Schema):
    """A movement, from the tablet form or the API; which fields each action needs is checked by the operation."""

    action = fields.Str(required=True, validate=validate.OneOf(["remove", "return", "dispose"],
                                                               error="Choose remove, return or dispose."),
                        error_messages={"required": "Choose remove, return or dispose."})
    reason = fields.Str(load_default=None, validate=validate.Length(max=2000, error="At most 2000 characters."))
    destination = fields.Str(load_default=None, validate=validate.Length(max=200, error="At most 200 characters."))
    storage_freezer = _freezer(required=False)
    storage_rack = _position("rack", required=False)
    storage_box = _position("box", required=False)
    storage_slot = _position("slot", required=False)

    @pre_load
    def _normalise(self, data: Any, **kwargs: Any) -> Any:
        return _clean_entries(data)


class CbuAcceptanceCriteriaSchema(Schema):
    """An acceptance criteria version (drafts are created with these fields)."""

    id = fields.Int(dump_only=True)
    version = fields.Int(dump_only=True)
    status = fields.Str(dump_only=True)
    min_tnc_cells = CellCount("minimum TNC", 1e12, load_default=None, allow_none=True)
    min_cd34_cells = CellCount("minimum CD34+ count", 1e10, load_default=None, allow_none=True)
    min_viability_percent = fields.Float(load_default=None, validate=validate.Range(
        0, 100, error="The minimum viability is a percentage between 0 and 100."))
    max_shipper_temperature_c = fields.Float(load_default=None, validate=validate.Range(
        -273, 0, min_inclusive=False, error="The shipper temperature limit is in degrees C, below 0."))
    max_collection_age_days = fields.Int(load_default=None, validate=validate.Range(
        1, 36500, error="The maximum age is a number of days, at least 1."))
    required_markers = fields.List(fields.Str(validate=validate.OneOf(list(MARKERS))), load_default=None,
                                   attribute="required_marker_list", data_key="required_markers")
    change_description = fields.Str(load_default=None)
    created_at = fields.DateTime(dump_only=True)
    created_by = fields.Str(dump_only=True)
    approved_at = fields.DateTime(dump_only=True, allow_none=True)
    approved_by = fields.Str(dump_only=True, allow_none=True)

    @post_load
    def _marker_key(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Loaded under the name create_criteria_draft takes (None: the defaults)."""
        data["required_markers"] = data.pop("required_marker_list", None)
        return data


def first_errors(messages: Any) -> dict[str, list[str]]:
    """Marshmallow messages as {field: [messages]} for the form's inline errors."""
    if isinstance(messages, dict):
        return {k: (v if isinstance(v, list) else [str(v)]) for k, v in messages.items()}
    return {"_": [str(m) for m in messages]}
