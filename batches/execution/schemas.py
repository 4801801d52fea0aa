"""Marshmallow schemas of the REST API: shape and format only; the rules live in the operations."""
from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from app.schemas import Schema
from batches.execution.models import DEVIATION_CLASSES, QC_STATUSES


class RecipeSchema(Schema):
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


class RecipeDetailSchema(RecipeSchema):
    spec = fields.Dict(dump_only=True, metadata={"description": "phases, steps and typed entries"})


class RecipeCreateSchema(Schema):
    definition = fields.Str(required=True, metadata={"description": "the recipe in TOML"})
    change_summary = fields.Str(load_default=None)
    source_name = fields.Str(load_default=None)


class ESignSchema(Schema):
    username = fields.Str(required=True)
    password = fields.Str(required=True, load_only=True)
    comment = fields.Str(load_default=None)


class RowVersionSchema(Schema):
    version = fields.Int(load_default=None, metadata={"description": "row version the change was made against"})


class BatchReasonSchema(RowVersionSchema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


class BatchAbortSchema(BatchReasonSchema, ESignSchema):
    pass


class BatchStartSchema(ESignSchema):
    unit_id = fields.Int(required=True)
    recipe_id = fields.Int(required=True)


class BatchSubmitSchema(RowVersionSchema, ESignSchema):
    pass


class ExceptionReviewInputSchema(ESignSchema):
    exception_ids = fields.List(fields.Int(), required=True, validate=validate.Length(min=1, max=500))
    review_comment = fields.Str(required=True, validate=validate.Length(min=1, max=4000))


class ExceptionReviewSchema(Schema):
    id = fields.Int()
    batch_id = fields.Int()
    covered = fields.Str()
    comment = fields.Str()
    reviewed_at = fields.DateTime()
    reviewed_by = fields.Str()


class StepSummarySchema(Schema):
    id = fields.Int()
    position = fields.Int()
    step_key = fields.Str()
    title = fields.Str()
    phase_name = fields.Str()
    status = fields.Str()
    requires_verification = fields.Bool()
    taken_by = fields.Str(allow_none=True)
    row_version = fields.Int(data_key="version")
    planned_day = fields.Float()


class BatchSchema(Schema):
    id = fields.Int()
    lot_number = fields.Str()
    product = fields.Str()
    recipe_id = fields.Int()
    cord_blood_unit_id = fields.Int()
    cord_blood_din = fields.Str()
    exceptional_release = fields.Bool()
    status = fields.Str()
    status_reason = fields.Str(allow_none=True)
    started_at = fields.DateTime()
    started_by = fields.Str()
    completed_at = fields.DateTime(allow_none=True)
    row_version = fields.Int(data_key="version")


class BatchDetailSchema(BatchSchema):
    steps = fields.List(fields.Nested(StepSummarySchema))


class StepEntrySchema(Schema):
    id = fields.Int()
    step_id = fields.Int()
    entry_key = fields.Str()
    entry_type = fields.Str()
    value_text = fields.Str()
    value_number = fields.Float(allow_none=True)
    unit = fields.Str(allow_none=True)
    limit_class = fields.Str()
    comment = fields.Str(allow_none=True)
    material_lot_id = fields.Int(allow_none=True)
    quantity = fields.Float(allow_none=True)
    asset_code = fields.Str(allow_none=True)
    occurred_at = fields.DateTime(allow_none=True)
    recorded_at = fields.DateTime()
    recorded_by = fields.Str()
    replaces_id = fields.Int(allow_none=True)
    voided_at = fields.DateTime(allow_none=True)
    void_reason = fields.Str(allow_none=True)


class StepSignatureSchema(Schema):
    meaning = fields.Str(attribute="signature.meaning")
    signer_username = fields.Str(attribute="signature.signer_username")
    signer_full_name = fields.Str(attribute="signature.signer_full_name")
    signed_at = fields.DateTime(attribute="signature.signed_at")
    status = fields.Str()


class StepDetailSchema(StepSummarySchema):
    entries = fields.List(fields.Nested(StepEntrySchema))
    signatures = fields.List(fields.Nested(StepSignatureSchema))
    definition = fields.Dict()


class StepEntryInputSchema(Schema):
    value = fields.Str(load_default="")
    quantity = fields.Str(load_default=None)
    confirm = fields.Bool(load_default=False)
    comment = fields.Str(load_default=None)
    override_reason = fields.Str(load_default=None)


class RecordEntriesSchema(RowVersionSchema):
    entries = fields.Dict(keys=fields.Str(), values=fields.Nested(StepEntryInputSchema), required=True)
    reason = fields.Str(load_default=None)


class StepSignSchema(ESignSchema, RowVersionSchema):
    meaning = fields.Str(required=True, validate=validate.OneOf(["performed", "verified"]))


class StepTakeSchema(RowVersionSchema):
    reason = fields.Str(load_default=None)


class EntryCorrectionSchema(StepEntryInputSchema, RowVersionSchema):
    reason = fields.Str(required=True)


class BatchExceptionSchema(Schema):
    id = fields.Int()
    batch_id = fields.Int()
    step_id = fields.Int(allow_none=True)
    kind = fields.Str()
    source_table = fields.Str()
    source_id = fields.Str()
    description = fields.Str()
    occurred_at = fields.DateTime()
    raised_by = fields.Str()
    deviation_id = fields.Int(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)
    reviewed_by = fields.Str(allow_none=True)
    review_id = fields.Int(allow_none=True)


class MaterialSchema(Schema):
    id = fields.Int(dump_only=True)
    code = fields.Str(required=True)
    name = fields.Str(required=True)
    unit = fields.Str(required=True)


class MaterialLotSchema(Schema):
    id = fields.Int(dump_only=True)
    material_code = fields.Str(required=True, attribute="material.code")
    lot_number = fields.Str(required=True)
    supplier = fields.Str(load_default=None, allow_none=True)
    expiry_date = fields.Date(required=True)
    qc_status = fields.Str(load_default="quarantined", validate=validate.OneOf(QC_STATUSES))
    quantity_received = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    quantity_remaining = fields.Float(dump_only=True)


class LotQcStatusSchema(ESignSchema):
    qc_status = fields.Str(required=True, validate=validate.OneOf(QC_STATUSES))
    reason = fields.Str(required=True)


class DeviationSchema(Schema):
    id = fields.Int(dump_only=True)
    number = fields.Str(dump_only=True)
    batch_id = fields.Int(load_default=None, allow_none=True)
    step_id = fields.Int(dump_only=True, allow_none=True)
    entry_id = fields.Int(dump_only=True, allow_none=True)
    title = fields.Str(required=True)
    description = fields.Str(required=True)
    classification = fields.Str(dump_only=True, allow_none=True)
    impact_assessment = fields.Str(dump_only=True, allow_none=True)
    automatic = fields.Bool(dump_only=True)
    status = fields.Str(dump_only=True)
    opened_at = fields.DateTime(dump_only=True)
    opened_by = fields.Str(dump_only=True)
    closed_at = fields.DateTime(dump_only=True, allow_none=True)


class DeviationAssessmentSchema(Schema):
    classification = fields.Str(required=True, validate=validate.OneOf(DEVIATION_CLASSES))
    impact_assessment = fields.Str(required=True)


class DeviationQuerySchema(Schema):
    status = fields.Str(load_default=None, validate=validate.OneOf(["open", "closed"]))
    batch_id = fields.Int(load_default=None)


def entry_input(data: dict[str, Any]) -> Any:
    from batches.execution.operations import EntryInput

    return EntryInput(value=data.get("value") or "", quantity=data.get("quantity"), confirm=bool(data.get("confirm")),
                      comment=data.get("comment"), override_reason=data.get("override_reason"))
