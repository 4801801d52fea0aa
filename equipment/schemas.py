"""Marshmallow schemas of the equipment REST API: shape and format; the rules are in operations."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

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
    created_at = fields.DateTime(dump_only=True)


class UsabilitySchema(Schema):
    usable = fields.Bool()
    reason = fields.Str(allow_none=True)


class TagSchema(Schema):
    id = fields.Int(dump_only=True)
    asset_id = fields.Int(dump_only=True)
    node_id = fields.Str(required=True)
    parameter = fields.Str(required=True)
    unit = fields.Str(load_default="")
    low_limit = fields.Float(allow_none=True, load_default=None)
    high_limit = fields.Float(allow_none=True, load_default=None)
    on_delay_s = fields.Float(load_default=0.0)
    off_delay_s = fields.Float(load_default=0.0)
    deadband = fields.Float(load_default=0.0)
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
