"""Marshmallow schemas of the quality REST API: shape and format only; the rules live in the operations."""
from __future__ import annotations

from marshmallow import fields, validate

from app.schemas import Schema

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


class SampleCreateSchema(Schema):
    tests = fields.List(fields.Str(validate=validate.Length(min=1, max=80)), required=True,
                        validate=validate.Length(min=1, max=60))
    sample_type = fields.Str(load_default=None, validate=validate.Length(min=1, max=80))
    time_point = fields.Str(load_default=None, validate=validate.Length(min=1, max=120))


class SampleSchema(Schema):
    id = fields.Int()
    sample_identifier = fields.Str()
    lot_id = fields.Int()
    sample_type = fields.Str()
    time_point = fields.Str()
    test_keys = fields.List(fields.Str(), data_key="tests")
    source = fields.Str()
    drawn_at = fields.DateTime()
    drawn_by = fields.Str()


class ResultCreateSchema(Schema):
    test_key = fields.Str(required=True, validate=validate.Length(min=1, max=80))
    value = fields.Str(required=True, validate=validate.Length(min=1, max=200),
                       metadata={"description": "as typed: a number the site's way, a finding, or pass/fail"})
    unit = fields.Str(load_default=None, validate=validate.Length(max=20))
    method = fields.Str(load_default=None, validate=validate.Length(max=200))
    sample_identifier = fields.Str(load_default=None, validate=validate.Length(max=60))
    investigation_id = fields.Int(load_default=None, metadata={"description": "for a retest inside an open OOS "
                                                                              "investigation"})


class ResultSchema(Schema):
    id = fields.Int()
    lot_id = fields.Int()
    test_key = fields.Str()
    test_name = fields.Str()
    sample_id = fields.Int(allow_none=True)
    source = fields.Str()
    source_entry_id = fields.Int(allow_none=True)
    method = fields.Str()
    raw_value = fields.Str()
    value_number = fields.Float(allow_none=True)
    value_text = fields.Str()
    unit = fields.Str(allow_none=True)
    outcome = fields.Str()
    recorded_at = fields.DateTime()
    recorded_by = fields.Str()
    retest_of_id = fields.Int(allow_none=True)
    investigation_id = fields.Int(allow_none=True)
    reportable = fields.Bool()
    status = fields.Str()
    reviewed_by = fields.Str(allow_none=True)
    invalidated_reason = fields.Str(allow_none=True)


class InvestigationSchema(Schema):
    id = fields.Int()
    number = fields.Str()
    lot_id = fields.Int()
    result_id = fields.Int()
    test_key = fields.Str()
    description = fields.Str()
    status = fields.Str()
    opened_at = fields.DateTime()
    laboratory_error = fields.Bool(allow_none=True)
    phase1_assessment = fields.Str(allow_none=True)
    phase2_assessment = fields.Str(allow_none=True)
    root_cause = fields.Str(allow_none=True)
    conclusion = fields.Str(allow_none=True)
    conclusion_text = fields.Str(allow_none=True)
    reportable_result_id = fields.Int(allow_none=True)
    after_disposition = fields.Bool()
    closed_at = fields.DateTime(allow_none=True)
    closed_by = fields.Str(allow_none=True)


class Phase1Schema(Schema):
    assessment = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    laboratory_error = fields.Bool(required=True)


class Phase2Schema(Schema):
    assessment = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    root_cause = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class InvalidateSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class InvestigationCloseSchema(ESignSchema):
    conclusion = fields.Str(required=True, validate=validate.OneOf(("confirmed", "invalidated")))
    conclusion_text = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    reportable_result_id = fields.Int(required=True)


class BlockerSchema(Schema):
    code = fields.Str()
    message = fields.Str()


class StandingSchema(Schema):
    test = fields.Function(lambda s: s.test["key"])
    name = fields.Function(lambda s: s.test["name"])
    gating = fields.Function(lambda s: s.test["gating"])
    state = fields.Str()
    result_id = fields.Function(lambda s: s.result.id if s.result else None)


class LotReviewSchema(Schema):
    lot = fields.Nested(LotSchema)
    blockers = fields.List(fields.Nested(BlockerSchema))
    standings = fields.List(fields.Nested(StandingSchema))
    exceptions_not_reviewed = fields.Function(lambda r: sum(1 for e in r.exceptions if e.reviewed_at is None))
    changes_after_entry = fields.Function(lambda r: len(r.changes_after_entry))
    broken_signatures = fields.Function(lambda r: len(r.broken_signatures))
    yield_actual = fields.Float(allow_none=True)
    yield_target = fields.Float()


class DispositionCreateSchema(ESignSchema):
    decision = fields.Str(required=True, validate=validate.OneOf(("released", "conditionally_released", "rejected")))
    pending_tests = fields.List(fields.Str(), load_default=list)
    justification = fields.Str(load_default=None, validate=validate.Length(max=2000))
    reason = fields.Str(load_default=None, validate=validate.Length(max=2000))


class DispositionSchema(Schema):
    id = fields.Int()
    lot_id = fields.Int()
    decision = fields.Str()
    reason = fields.Str(allow_none=True)
    pending_keys = fields.List(fields.Str(), data_key="pending_tests")
    decided_at = fields.DateTime()
    decided_by = fields.Str()
