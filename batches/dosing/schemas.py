"""Marshmallow schemas of the dosing REST API: shape and format only; the rules live in the operations."""
from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from app.numbers import SiteNumber
from app.schemas import Schema
from batches.dosing.models import PROTOCOLS
from batches.dosing.availability import DOSE_MODELS


class PatientSchema(Schema):
    id = fields.Int(dump_only=True)
    study_id = fields.Str(required=True, validate=validate.Length(min=1, max=40))
    hospital_id = fields.Str(required=True, validate=validate.Length(min=1, max=40),
                             metadata={"description": "the identifier the wristband barcode carries"})
    initials = fields.Str(required=True, validate=validate.Length(min=1, max=5))
    date_of_birth = fields.Date(required=True)
    protocol = fields.Str(required=True, validate=validate.OneOf(PROTOCOLS))
    consent_date = fields.Date(required=True)
    treating_clinician_id = fields.Int(load_default=None)
    created_at = fields.DateTime(dump_only=True)
    created_by = fields.Str(dump_only=True)


class WeightSchema(Schema):
    id = fields.Int(dump_only=True)
    weight_kg = SiteNumber(required=True)
    measured_on = fields.Date(required=True)
    recorded_by = fields.Str(dump_only=True)
    recorded_at = fields.DateTime(dump_only=True)


class AvailabilityQuerySchema(Schema):
    patient_id = fields.Int(load_default=None, metadata={"description": "a patient (their weight and protocol)"})
    weight_kg = SiteNumber(load_default=None)
    protocol = fields.Str(load_default=None, validate=validate.OneOf(PROTOCOLS))
    first_infusion_at = fields.AwareDateTime(load_default=None, default_timezone=None)
    dose_model = fields.Str(load_default=None, validate=validate.OneOf(DOSE_MODELS),
                            metadata={"description": "defaults to the site setting DOSE_MODEL"})


def answer_as_dict(answer: Any) -> dict[str, Any]:
    def option(o: Any) -> dict[str, Any] | None:
        if o is None:
            return None
        return {"lot_number": o.lot_number, "conditional_release": o.conditional,
                "delivered_viable_cells": o.delivered_cells, "cd3_per_kg": o.cd3_per_kg,
                "endotoxin_eu_per_kg": o.endotoxin_per_kg, "volume_ml": o.volume_ml, "discarded_ml": o.discarded_ml,
                "bags": [{**b, "expires_at": b["expires_at"].isoformat()} for b in o.bags]}

    return {
        "protocol": answer.protocol, "weight_kg": answer.weight_kg, "dose_model": answer.dose_model,
        "regimen": {"id": answer.regimen.id, "label": answer.regimen.label, "dose_per_kg": answer.regimen.dose_per_kg,
                    "infusions": answer.regimen.infusions, "interval_days": answer.regimen.interval_days},
        "available": answer.available, "lots_considered": answer.lots_considered,
        "infusions": [{"number": i.number, "planned_at": i.planned_at.isoformat(), "viable_cells_needed": i.cells_needed,
                       "viable_cells_low": i.cells_low, "viable_cells_high": i.cells_high,
                       "options": [option(o) for o in i.options], "lots_not_examined": i.not_examined,
                       "refused": [{"lot_number": k, "reason": v} for k, v in i.refused.items()]}
                      for i in answer.infusions],
        "plan": [option(p) for p in answer.plan],
    }
