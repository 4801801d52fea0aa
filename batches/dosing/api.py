"""REST API for patients, their weights and dose availability: the same rules as the pages."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app import db
from app.errors import ValidationFailed
from app.permissions import require
from batches.dosing import operations as ops
from batches.dosing import schemas as s
from batches.dosing.availability import availability, availability_for_patient

PREFIX = "/api/v1"
patients_blp = Blueprint("patients_api", __name__, url_prefix=f"{PREFIX}/patients",
                         description="Pseudonymous patients (a clinician sees their own) and their weights")
availability_blp = Blueprint("dose_availability_api", __name__, url_prefix=f"{PREFIX}/dose-availability",
                             description="Which lots and bags can supply each infusion of a regimen, and why not")
BLUEPRINTS = [patients_blp, availability_blp]


@patients_blp.route("")
class Patients(MethodView):
    @require("patients.view")
    @patients_blp.response(200, s.PatientSchema(many=True))
    def get(self) -> Any:
        """The caller's patients (all patients for pharmacists and QA)."""
        return ops.visible_patients(db.session, current_user)

    @require("patients.register")
    @patients_blp.arguments(s.PatientSchema)
    @patients_blp.response(201, s.PatientSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a patient; no name is ever stored."""
        return ops.register_patient(db.session, current_user, **data)


@patients_blp.route("/<int:patient_id>")
class PatientItem(MethodView):
    @require("patients.view")
    @patients_blp.response(200, s.PatientSchema)
    def get(self, patient_id: int) -> Any:
        return ops.get_patient(db.session, current_user, patient_id)


@patients_blp.route("/<int:patient_id>/weights")
class PatientWeights(MethodView):
    @require("patients.view")
    @patients_blp.response(200, s.WeightSchema(many=True))
    def get(self, patient_id: int) -> Any:
        """The patient's weights, newest first."""
        return ops.get_patient(db.session, current_user, patient_id).weights

    @require("patients.record_weight")
    @patients_blp.arguments(s.WeightSchema)
    @patients_blp.response(201, s.WeightSchema)
    def post(self, data: dict[str, Any], patient_id: int) -> Any:
        patient = ops.get_patient(db.session, current_user, patient_id)
        return ops.record_weight(db.session, current_user, patient, data["weight_kg"], data["measured_on"])


@availability_blp.route("")
class DoseAvailability(MethodView):
    @require("dose_availability.view")
    @availability_blp.arguments(s.AvailabilityQuerySchema, location="query")
    @availability_blp.response(200)
    def get(self, args: dict[str, Any]) -> Any:
        """For a patient, or a weight and a protocol: per infusion the lots that can supply it (bags,
        delivered cells, CD3+ and endotoxin per kg) and every lot that cannot, with the reason."""
        kwargs = {"first_infusion_at": args["first_infusion_at"], "dose_model": args["dose_model"]}
        if args["patient_id"] is not None:
            patient = ops.get_patient(db.session, current_user, args["patient_id"])
            answer = availability_for_patient(db.session, patient, **kwargs)
        else:
            if args["weight_kg"] is None or args["protocol"] is None:
                raise ValidationFailed("Give a patient, or a weight in kg and a protocol.")
            answer = availability(db.session, weight_kg=args["weight_kg"], protocol=args["protocol"], **kwargs)
        return s.answer_as_dict(answer)
