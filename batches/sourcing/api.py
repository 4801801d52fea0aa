"""REST API of cord blood sourcing under /api/v1/cord-blood-units and /api/v1/cbu-acceptance-criteria.

The same schemas and operations as the tablet pages: 422 with per-field errors, 409 for duplicates and
state conflicts.
"""
from __future__ import annotations

from typing import Any

from flask import jsonify, url_for
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import fields

from app import db
from app.errors import Conflict
from app.permissions import require
from app.schemas import Schema
from app.signatures import signatures_for
from app.web import site_zone
from batches.sourcing import operations
from batches.sourcing.schemas import (
    CordBloodUnitIntakeSchema,
    CordBloodUnitSchema,
    CbuAcceptanceCriteriaSchema,
    CbuCustodyActionSchema,
    CbuCustodyEventSchema,
    CbuExceptionalReleaseSchema,
    CbuStatusChangeSchema,
    CordBloodUnitQuerySchema,
)

units_blp = Blueprint("cord_blood_units_api", __name__, url_prefix="/api/v1/cord-blood-units",
                      description="Cord blood units: intake, eligibility, acceptance, QA disposition, custody")
criteria_blp = Blueprint("cbu_criteria_api", __name__, url_prefix="/api/v1/cbu-acceptance-criteria",
                         description="Versioned, QA-approved acceptance criteria for cord blood units")


class CbuSignatureSchema(Schema):
    meaning = fields.Str(attribute="signature.meaning")
    signer_username = fields.Str(attribute="signature.signer_username")
    signer_full_name = fields.Str(attribute="signature.signer_full_name")
    signed_at = fields.DateTime(attribute="signature.signed_at")
    comment = fields.Str(attribute="signature.comment", allow_none=True)
    status = fields.Str()


class CordBloodUnitDetailSchema(CordBloodUnitSchema):
    signatures = fields.Method("_signatures")

    def _signatures(self, unit: Any) -> list[dict[str, Any]]:
        return CbuSignatureSchema(many=True).dump(signatures_for(db.session, unit))


class CbuCriteriaApproveSchema(Schema):
    username = fields.Str(required=True)
    password = fields.Str(required=True, load_only=True)
    comment = fields.Str(load_default=None)


@units_blp.route("")
class CordBloodUnits(MethodView):
    @require("sourcing.view")
    @units_blp.arguments(CordBloodUnitQuerySchema, location="query")
    @units_blp.response(200, CordBloodUnitSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Search units by DIN, bank, status and receipt date; `assignable=true` lists units a batch can use."""
        if query["assignable"]:
            return operations.assignable_units(db.session)
        return operations.search_units(
            db.session, din=query["din"], bank=query["bank"], status=query["status"],
            received_from=query["received_from"], received_to=query["received_to"], zone=site_zone())

    @require("sourcing.receive")
    @units_blp.arguments(CordBloodUnitIntakeSchema)
    @units_blp.response(201, CordBloodUnitDetailSchema)
    @units_blp.alt_response(409, description="The DIN is already recorded (body links to the existing unit), "
                                             "or the storage slot is occupied")
    def post(self, data: dict[str, Any]) -> Any:
        """Receive a unit: the DIN is scanned (=, 13 characters, 2 flags) or keyed with its check character."""
        try:
            return operations.receive_unit(db.session, data)
        except Conflict as exc:
            if not exc.link:
                raise
            existing = operations.find_unit_by_din(db.session, data["din"])
            body = {"code": 409, "status": "Conflict", "message": exc.message, "errors": exc.errors,
                    "existing_unit": url_for("cord_blood_units_api.CordBloodUnitItem", unit_id=existing.id),
                    "link": exc.link}
            return jsonify(body), 409


@units_blp.route("/<int:unit_id>")
class CordBloodUnitItem(MethodView):
    @require("sourcing.view")
    @units_blp.response(200, CordBloodUnitDetailSchema)
    def get(self, unit_id: int) -> Any:
        """One unit with its criteria results, eligibility, custody events and signatures."""
        return operations.get_unit(db.session, unit_id)


@units_blp.route("/<int:unit_id>/status")
class CordBloodUnitStatus(MethodView):
    @require("sourcing.disposition")
    @units_blp.arguments(CbuStatusChangeSchema)
    @units_blp.response(200, CordBloodUnitDetailSchema)
    def post(self, data: dict[str, Any], unit_id: int) -> Any:
        """QA transition (quarantine, accepted, rejected), e-signed with user ID and password and a reason."""
        unit = operations.get_unit(db.session, unit_id)
        operations.change_status(db.session, unit, data["status"], reason=data["reason"], username=data["username"],
                                 password=data["password"], current_user=current_user)
        return unit


@units_blp.route("/<int:unit_id>/exceptional-release")
class CordBloodUnitExceptionalRelease(MethodView):
    @require("sourcing.disposition")
    @units_blp.arguments(CbuExceptionalReleaseSchema)
    @units_blp.response(201, CordBloodUnitDetailSchema)
    def post(self, data: dict[str, Any], unit_id: int) -> Any:
        """First QA signs the justification; a second QA then accepts the unit through /status."""
        unit = operations.get_unit(db.session, unit_id)
        operations.request_exceptional_release(db.session, unit, justification=data["justification"],
                                               username=data["username"], password=data["password"],
                                               current_user=current_user)
        return unit


@units_blp.route("/<int:unit_id>/custody-events")
class CordBloodUnitCustody(MethodView):
    @require("sourcing.view")
    @units_blp.response(200, CbuCustodyEventSchema(many=True))
    def get(self, unit_id: int) -> Any:
        """The chain of custody, oldest first."""
        return operations.get_unit(db.session, unit_id).custody_events

    @require("sourcing.custody")
    @units_blp.arguments(CbuCustodyActionSchema)
    @units_blp.response(201, CbuCustodyEventSchema)
    def post(self, data: dict[str, Any], unit_id: int) -> Any:
        """Record a movement: remove (destination, reason), return (storage position) or dispose (reason)."""
        unit = operations.get_unit(db.session, unit_id)
        operations.record_movement(db.session, unit, data)
        return unit.custody_events[-1]


@criteria_blp.route("")
class CriteriaVersions(MethodView):
    @require("sourcing.view")
    @criteria_blp.response(200, CbuAcceptanceCriteriaSchema(many=True))
    def get(self) -> Any:
        """Every version, newest first."""
        return operations.list_criteria(db.session)

    @require("sourcing.criteria")
    @criteria_blp.arguments(CbuAcceptanceCriteriaSchema)
    @criteria_blp.response(201, CbuAcceptanceCriteriaSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """A draft version; omitted values take the defaults. Not in force until approved."""
        description = data.pop("change_description", None)
        return operations.create_criteria_draft(db.session, data, change_description=description)


@criteria_blp.route("/<int:criteria_id>/approve")
class CriteriaApprove(MethodView):
    @require("sourcing.criteria")
    @criteria_blp.arguments(CbuCriteriaApproveSchema)
    @criteria_blp.response(200, CbuAcceptanceCriteriaSchema)
    def post(self, data: dict[str, Any], criteria_id: int) -> Any:
        """QA e-signs a draft; it is in force for units received from then on."""
        version = operations.get_criteria(db.session, criteria_id)
        return operations.approve_criteria(db.session, version, username=data["username"],
                                           password=data["password"], current_user=current_user,
                                           comment=data["comment"])
