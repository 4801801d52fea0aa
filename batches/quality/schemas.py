"""Marshmallow schemas of the quality REST API: shape and format only; the rules live in the operations."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from batches.execution.schemas import ESignSchema  # noqa: F401  (one e-signature body for the whole API)


class SpecificationSchema(Schema):
    id = fields.Int(dump_only=True)
    code = fields.Str(dump_only=True)
    version = fields.Int(dump_only=True)
    name = fields.Str(dump_only=True)
    product = fields.Str(dump_only=True)
    status = fields.Str(dump_only=True)
    definition_sha256 = fields.Str(dump_only=True)
    change_summary = fields.Str(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    created_by = fields.Str(dump_only=True)
    approved_at = fields.DateTime(dump_only=True, allow_none=True)
    approved_by = fields.Str(dump_only=True, allow_none=True)
    superseded_at = fields.DateTime(dump_only=True, allow_none=True)


class SpecificationDetailSchema(SpecificationSchema):
    tests = fields.List(fields.Dict(), dump_only=True, metadata={
        "description": "each test: key, name, method, result_type, unit, operator, limit, options, accepted, "
                       "per_kg_limit, per_kg_unit, gating (release | may_be_pending), sample_type, time_point, "
                       "in_process_entry"})


class SpecificationCreateSchema(Schema):
    definition = fields.Str(required=True, validate=validate.Length(min=1, max=200_000),
                            metadata={"description": "the specification in TOML"})
    change_summary = fields.Str(load_default=None, validate=validate.Length(max=2000))


class SpecificationUpdateSchema(Schema):
    definition = fields.Str(required=True, validate=validate.Length(min=1, max=200_000))


class SpecificationReturnSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class PerKgLimitSchema(Schema):
    test = fields.Str()
    name = fields.Str()
    result_unit = fields.Str()
    limit = fields.Float()
    unit = fields.Str()


class LotSchema(Schema):
    id = fields.Int()
    batch_id = fields.Int()
    lot_number = fields.Str()
    product = fields.Str()
    status = fields.Str()
    specification_id = fields.Int(allow_none=True)
    testing_started_at = fields.DateTime(allow_none=True)
    per_kg = fields.List(fields.Nested(PerKgLimitSchema), data_key="per_kg_limits",
                         metadata={"description": "limits per kg of recipient, checked at dose allocation"})


class ProductUnitSchema(Schema):
    id = fields.Int()
    product_identifier = fields.Str()
    batch_id = fields.Int()
    lot_number = fields.Str()
    product = fields.Str()
    division = fields.Int()
    cord_blood_unit_id = fields.Int()
    cord_blood_din = fields.Str()
    volume_ml = fields.Float(allow_none=True)
    viable_cells = fields.Float()
    viable_cells_source = fields.Str()
    filled_at = fields.DateTime()
    expires_at = fields.DateTime()
    storage_condition = fields.Str()
    storage_location = fields.Str(allow_none=True)
    status = fields.Str()
    issuable = fields.Bool()
    voided_at = fields.DateTime(allow_none=True)
    void_reason = fields.Str(allow_none=True)


class UnitQuerySchema(Schema):
    identifier = fields.Str(load_default=None, validate=validate.Length(min=1, max=120),
                            metadata={"description": "a scanned or typed product identifier"})
    batch_id = fields.Int(load_default=None)
    cord_blood_unit_id = fields.Int(load_default=None)


class StorageLocationSchema(Schema):
    storage_location = fields.Str(required=True, validate=validate.Length(min=1, max=120))
    reason = fields.Str(load_default=None, validate=validate.Length(max=2000))
