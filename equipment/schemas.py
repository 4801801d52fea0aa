"""Marshmallow schemas of the equipment REST API: shape and format; the rules are in operations."""
from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from app.numbers import SiteNumber
from app.schemas import Schema
from equipment.models import ASSET_TYPES, SECURITY_MODES, SECURITY_POLICIES


class AssetSchema(Schema):
    id = fields.Int(dump_only=True)
    code = fields.Str(required=True, validate=validate.Length(min=2, max=40))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    asset_type = fields.Str(required=True, validate=validate.OneOf(list(ASSET_TYPES)))
    location = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    status = fields.Str(dump_only=True)
    endpoint_url = fields.Str(allow_none=True, load_default=None)
    security_policy = fields.Str(load_default="None", validate=validate.OneOf(SECURITY_POLICIES))
    security_mode = fields.Str(load_default="None", validate=validate.OneOf(SECURITY_MODES))
    opc_username = fields.Str(allow_none=True, load_default=None)
    opc_password = fields.Str(load_only=True, allow_none=True, load_default=None)
    capacity = fields.Int(load_default=1, validate=validate.Range(min=1, max=100))
    created_at = fields.DateTime(dump_only=True)


class UsabilitySchema(Schema):
    usable = fields.Bool()
    reason = fields.Str(allow_none=True)


# Bounds of a tag's alarm settings, for the tablet form (through the operations) and the API alike.
# What is measured (DOMAIN.md) runs from about -196 C (LN2) to a few hundred (rpm, %, kg, Pa): a limit
# beyond a million in any unit is a typing error. An excursion left unalarmed for more than an hour is
# not monitoring (ISA-18.2 on-delays are seconds to minutes; 10 min is typical), nor is an alarm that
# stays up for an hour after the value came back. A deadband wider than 100 units is no deadband; it
# must also be narrower than the band between the two limits, checked in the operations.
MAX_ABS_LIMIT = 1_000_000.0
MAX_ALARM_DELAY_S = 3600.0
MAX_DEADBAND = 100.0
TAG_BOUNDS: dict[str, tuple[float, float, str]] = {
    "low_limit": (-MAX_ABS_LIMIT, MAX_ABS_LIMIT, "Between -1,000,000 and 1,000,000."),
    "high_limit": (-MAX_ABS_LIMIT, MAX_ABS_LIMIT, "Between -1,000,000 and 1,000,000."),
    "on_delay_s": (0.0, MAX_ALARM_DELAY_S, "Between 0 and 3600 seconds (one hour)."),
    "off_delay_s": (0.0, MAX_ALARM_DELAY_S, "Between 0 and 3600 seconds (one hour)."),
    "deadband": (0.0, MAX_DEADBAND, "Between 0 and 100, in the unit of the tag."),
}


def _bounded(name: str) -> validate.Range:
    low, high, message = TAG_BOUNDS[name]
    return validate.Range(min=low, max=high, error=message)


class TagSchema(Schema):
    id = fields.Int(dump_only=True)
    asset_id = fields.Int(dump_only=True)
    node_id = fields.Str(required=True)
    parameter = fields.Str(required=True)
    unit = fields.Str(load_default="")
    low_limit = SiteNumber(allow_none=True, load_default=None, validate=_bounded("low_limit"))
    high_limit = SiteNumber(allow_none=True, load_default=None, validate=_bounded("high_limit"))
    on_delay_s = SiteNumber(load_default=0.0, validate=_bounded("on_delay_s"),
                              metadata={"description": "seconds an excursion must last before it alarms"})
    off_delay_s = SiteNumber(load_default=0.0, validate=_bounded("off_delay_s"),
                               metadata={"description": "seconds back inside the limit before the alarm clears"})
    deadband = SiteNumber(load_default=0.0, validate=_bounded("deadband"),
                            metadata={"description": "in the tag's unit; narrower than the band between the limits"})
    active = fields.Bool(dump_only=True)


class WindowQuerySchema(Schema):
    start = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601 with a time zone"})
    end = fields.AwareDateTime(load_default=None)


class SamplesQuerySchema(Schema):
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    max_points = fields.Int(load_default=2000, validate=validate.Range(min=10, max=10000))


class ChartPointSchema(Schema):
    at = fields.DateTime()
    minimum = fields.Float()
    maximum = fields.Float()
    mean = fields.Float()
    count = fields.Int()


class AlarmSchema(Schema):
    id = fields.Int()
    asset_id = fields.Int()
    tag_id = fields.Int()
    parameter = fields.Str()
    unit = fields.Str()
    limit_kind = fields.Str()
    limit_value = fields.Float()
    excursion_started_at = fields.DateTime()
    raised_at = fields.DateTime()
    cleared_at = fields.DateTime(allow_none=True)
    peak_value = fields.Float()
    state = fields.Str()
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledged_by = fields.Str(allow_none=True)
    ack_comment = fields.Str(allow_none=True)
    shelved_until = fields.DateTime(allow_none=True)


class AcknowledgeSchema(Schema):
    comment = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class GapSchema(Schema):
    id = fields.Int()
    asset_id = fields.Int()
    tag_id = fields.Int(allow_none=True)
    cause = fields.Str()
    started_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    detail = fields.Str(allow_none=True)


class ReadingSchema(Schema):
    tag_id = fields.Int()
    parameter = fields.Str()
    value = fields.Float(allow_none=True)
    unit = fields.Str()
    source_time = fields.DateTime(allow_none=True)
    age_seconds = fields.Float(allow_none=True)
    in_alarm = fields.Bool()
    good = fields.Bool()


class BrowseQuerySchema(Schema):
    node = fields.Str(load_default=None, validate=validate.Length(max=300),
                      metadata={"description": "NodeId whose children to list (default: the Objects folder)"})


class BrowsedNodeSchema(Schema):
    node_id = fields.Str()
    browse_name = fields.Str()
    display_name = fields.Str()
    node_class = fields.Str()
    data_type = fields.Str(allow_none=True)
    value = fields.Method("_value", allow_none=True)
    mapped = fields.Bool(metadata={"description": "already a tag of this asset"})

    def _value(self, node: dict[str, Any]) -> Any:
        value = node["value"]
        return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
